//! A raw IMAP reader, independent of the code under test: plain TCP, `LOGIN`, `SELECT`,
//! `UID FETCH 1:* (BODY.PEEK[])`, literals read by their announced length. Tests that claim
//! byte-exact copies compare what this returns on both servers, not checksums of a canonical
//! form and not what `ImapStore` makes of the answer.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use mailferry_testkit::Dovecot;

/// A logged-in plaintext session (the test servers listen on 127.0.0.1 only).
pub struct RawSession {
    stream: BufReader<TcpStream>,
    tag: u32,
}

impl RawSession {
    /// Connects to `d`'s plaintext port and logs in as `user`.
    pub async fn login(d: &Dovecot, user: &str, password: &str) -> RawSession {
        let tcp = TcpStream::connect((d.host(), d.imap_port()))
            .await
            .expect("connect to the plaintext IMAP port");
        let mut s = RawSession {
            stream: BufReader::new(tcp),
            tag: 0,
        };
        let greeting = s.line().await;
        assert!(greeting.starts_with(b"* OK"), "greeting");
        s.ok(&format!("LOGIN {user} \"{password}\"")).await;
        s
    }

    /// One response line with its literals inlined.
    async fn line(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self
                .stream
                .read_until(b'\n', &mut out)
                .await
                .expect("read from server");
            assert!(n > 0, "server closed: {}", String::from_utf8_lossy(&out));
            let line = &out[start..];
            let literal = line
                .strip_suffix(b"}\r\n")
                .and_then(|l| l.iter().rposition(|&b| b == b'{').map(|i| &l[i + 1..]))
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
            let Some(len) = literal else {
                return out;
            };
            let at = out.len();
            out.resize(at + len, 0);
            self.stream
                .read_exact(&mut out[at..])
                .await
                .expect("literal");
        }
    }

    /// Runs `command`, asserts a tagged OK, returns the untagged lines.
    async fn ok(&mut self, command: &str) -> Vec<Vec<u8>> {
        self.tag += 1;
        let tag = format!("r{} ", self.tag);
        let wire = format!("{tag}{command}\r\n");
        let w = self.stream.get_mut();
        w.write_all(wire.as_bytes()).await.expect("write");
        w.flush().await.expect("flush");
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(tag.as_bytes()) {
                let status = String::from_utf8_lossy(&line);
                assert!(status[tag.len()..].starts_with("OK"), "{command}: {status}");
                return untagged;
            }
            untagged.push(line);
        }
    }

    /// Every message of `mailbox` (IMAP spelling) as the server serves `BODY[]`, in UID order.
    pub async fn bodies(&mut self, mailbox: &str) -> Vec<Vec<u8>> {
        self.ok(&format!("EXAMINE \"{mailbox}\"")).await;
        let lines = self.ok("UID FETCH 1:* (BODY.PEEK[])").await;
        let mut out = Vec::new();
        for line in lines {
            if !line.starts_with(b"* ") || !line.windows(7).any(|w| w == b" FETCH ") {
                continue;
            }
            let marker = memchr::memmem::find(&line, b"BODY[] {").expect("a BODY[] literal");
            let open = marker + b"BODY[] ".len();
            let close = open + memchr::memchr(b'}', &line[open..]).expect("literal length");
            let len: usize = std::str::from_utf8(&line[open + 1..close])
                .ok()
                .and_then(|n| n.parse().ok())
                .expect("literal length");
            let start = close + 3; // "}\r\n"
            out.push(line[start..start + len].to_vec());
        }
        out
    }
}
