//! The Dovecot launcher against a minimal raw IMAP client (tokio + tokio-rustls with the
//! instance's own CA): logins over plaintext, STARTTLS and implicit TLS, capabilities, `fill`
//! seen by Dovecot (counts, folders, delimiters, flags, keywords, dates, sizes, bytes) and
//! `restart`. Without Dovecot these tests print a note and pass, except under `CI=true`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Flags, FolderPath, InternalDate, utf7};
use mailferry_testkit::corpus::{CorpusSpec, GeneratedMessage, SizeMix};
use mailferry_testkit::{Dovecot, DovecotOptions, require_dovecot};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// One response line with its literals inlined (a literal's bytes follow its `{n}`).
type Line = Vec<u8>;

/// Just enough IMAP to check a server: tagged commands, untagged lines, literals.
struct Client<S> {
    stream: BufReader<S>,
    tag: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn new(stream: S) -> (Self, String) {
        let mut client = Client {
            stream: BufReader::new(stream),
            tag: 0,
        };
        let greeting = client.line().await;
        let greeting = String::from_utf8_lossy(&greeting).into_owned();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        (client, greeting)
    }

    async fn line(&mut self) -> Line {
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

    /// Sends `command`; returns the untagged lines and the tagged status line.
    async fn run(&mut self, command: &str) -> (Vec<Line>, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let wire = format!("{tag} {command}\r\n");
        self.stream
            .get_mut()
            .write_all(wire.as_bytes())
            .await
            .expect("write");
        self.stream.get_mut().flush().await.expect("flush");
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return (
                    untagged,
                    String::from_utf8_lossy(&line).trim_end().to_string(),
                );
            }
            untagged.push(line);
        }
    }

    /// Runs `command` and asserts a tagged OK.
    async fn ok(&mut self, command: &str) -> Vec<Line> {
        let (lines, status) = self.run(command).await;
        assert!(
            status.split(' ').nth(1) == Some("OK"),
            "{command}: {status}"
        );
        lines
    }

    async fn login(&mut self, (user, password): (&str, &str)) {
        self.ok(&format!("LOGIN {user} \"{password}\"")).await;
    }

    async fn capabilities(&mut self) -> Vec<String> {
        let lines = self.ok("CAPABILITY").await;
        let text = String::from_utf8_lossy(&lines[0]).into_owned();
        text.split_whitespace()
            .skip(2)
            .map(str::to_string)
            .collect()
    }

    /// STATUS MESSAGES of a folder (given in its IMAP spelling).
    async fn count(&mut self, mailbox: &str) -> u64 {
        let lines = self.ok(&format!("STATUS \"{mailbox}\" (MESSAGES)")).await;
        let text = String::from_utf8_lossy(&lines[0]).into_owned();
        let n = text.rsplit("MESSAGES ").next().unwrap_or_default();
        n.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or_else(|_| panic!("STATUS line: {text}"))
    }
}

fn tls_connector(dovecot: &Dovecot) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dovecot.ca_pem_path()).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn plain(dovecot: &Dovecot) -> (Client<TcpStream>, String) {
    let tcp = TcpStream::connect((dovecot.host(), dovecot.imap_port()))
        .await
        .expect("connect to imap port");
    Client::new(tcp).await
}

async fn logged_in(dovecot: &Dovecot) -> Client<TcpStream> {
    let (mut client, _) = plain(dovecot).await;
    client.login(dovecot.login()).await;
    client
}

const REQUIRED: [&str; 6] = [
    "LITERAL+",
    "MULTIAPPEND",
    "UIDPLUS",
    "SPECIAL-USE",
    "COMPRESS=DEFLATE",
    "CONDSTORE",
];

fn assert_capabilities(caps: &[String], how: &str) {
    for cap in REQUIRED {
        assert!(
            caps.iter().any(|c| c == cap),
            "{how}: {cap} missing in {caps:?}"
        );
    }
}

async fn check_logins(dovecot: &Dovecot) {
    // Plaintext, explicitly allowed by the config.
    let (mut client, greeting) = plain(dovecot).await;
    assert!(greeting.contains("STARTTLS"), "{greeting}");
    client.login(dovecot.login()).await;
    assert_capabilities(&client.capabilities().await, "plaintext");
    let (_, status) = client
        .run(&format!("LOGIN {} wrong", dovecot.login().0))
        .await;
    assert!(
        !status.contains(" OK "),
        "second LOGIN must not succeed: {status}"
    );

    let (mut bad, _) = plain(dovecot).await;
    let (_, status) = bad
        .run(&format!("LOGIN {} wrong-pass", dovecot.login().0))
        .await;
    assert!(status.contains(" NO "), "wrong password: {status}");

    // STARTTLS, verified against the instance's CA by IP address.
    let (mut client, _) = plain(dovecot).await;
    client.ok("STARTTLS").await;
    let tcp = client.stream.into_inner();
    let tls = tls_connector(dovecot)
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("STARTTLS handshake");
    let mut client = Client {
        stream: BufReader::new(tls),
        tag: 100,
    };
    client.login(dovecot.login()).await;
    assert_capabilities(&client.capabilities().await, "STARTTLS");

    // Implicit TLS, verified by DNS name.
    let tcp = TcpStream::connect((dovecot.host(), dovecot.imaps_port()))
        .await
        .expect("connect to imaps port");
    let tls = tls_connector(dovecot)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("implicit TLS handshake");
    let (mut client, _) = Client::new(tls).await;
    client.login(dovecot.login()).await;
    assert_capabilities(&client.capabilities().await, "implicit TLS");
}

#[test]
fn two_instances_with_different_delimiters_serve_plain_starttls_and_tls_logins() {
    if !require_dovecot() {
        return;
    }
    let (dots, slashes) = std::thread::scope(|s| {
        let a = s.spawn(|| Dovecot::start(DovecotOptions::default()));
        let b = s.spawn(|| {
            Dovecot::start(DovecotOptions {
                delimiter: '/',
                ..DovecotOptions::default()
            })
        });
        (
            a.join().expect("thread").expect("start '.' instance"),
            b.join().expect("thread").expect("start '/' instance"),
        )
    });
    let ports = [
        dots.imap_port(),
        dots.imaps_port(),
        slashes.imap_port(),
        slashes.imaps_port(),
    ];
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 4, "ports {ports:?}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        for (dovecot, delimiter) in [(&dots, "\".\""), (&slashes, "\"/\"")] {
            check_logins(dovecot).await;
            let mut client = logged_in(dovecot).await;
            let lines = client.ok("LIST \"\" INBOX").await;
            let text = String::from_utf8_lossy(&lines[0]).into_owned();
            assert!(text.contains(delimiter), "{text}\n{}", dovecot.log());
        }
    });
}

/// Expected per-message facts, in fill order.
fn by_folder(messages: &[GeneratedMessage]) -> BTreeMap<FolderPath, Vec<&GeneratedMessage>> {
    let mut map: BTreeMap<FolderPath, Vec<&GeneratedMessage>> = BTreeMap::new();
    for m in messages {
        map.entry(m.folder.clone()).or_default().push(m);
    }
    map
}

fn imap_name(folder: &FolderPath, delimiter: char) -> String {
    let segments: Vec<String> = folder.segments().iter().map(|s| utf7::encode(s)).collect();
    segments.join(&delimiter.to_string())
}

/// A FETCH line's FLAGS, INTERNALDATE, RFC822.SIZE and BODY[] (if asked for).
fn parse_fetch(line: &[u8]) -> (Flags, InternalDate, usize, Option<Vec<u8>>) {
    let head_end = line
        .windows(7)
        .position(|w| w == b"BODY[] ")
        .unwrap_or(line.len());
    let text = String::from_utf8_lossy(&line[..head_end]).into_owned();
    let flags = text
        .split("FLAGS (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no FLAGS in {text}"));
    let date = text
        .split("INTERNALDATE \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(InternalDate::parse_imap)
        .unwrap_or_else(|| panic!("no INTERNALDATE in {text}"));
    let size = text
        .split("RFC822.SIZE ")
        .nth(1)
        .and_then(|r| r.split([' ', ')']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no RFC822.SIZE in {text}"));
    let body = (head_end < line.len()).then(|| {
        let rest = &line[head_end..];
        let open = rest.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        // The literal ends just before the closing ")\r\n" of the FETCH response.
        rest[open..rest.len() - 3].to_vec()
    });
    (Flags::from_imap(flags.split_whitespace()), date, size, body)
}

async fn check_fill(delimiter: char) {
    let dovecot = Dovecot::start(DovecotOptions {
        delimiter,
        ..DovecotOptions::default()
    })
    .expect("start dovecot");
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Sent"]),
        FolderPath::new(["Entwürfe"]),
        FolderPath::new(["Archive", "2020"]),
    ];
    let messages = CorpusSpec::new(500, SizeMix::small())
        .with_quirks()
        .in_folders(folders.clone())
        .messages();
    // Dovecot indexes INBOX first, so the test proves it notices files added behind it.
    let mut client = logged_in(&dovecot).await;
    assert_eq!(client.count("INBOX").await, 0);

    let written = dovecot
        .fill(dovecot.login().0, messages.clone())
        .expect("fill");
    assert_eq!(written, 500);

    let expected = by_folder(&messages);
    assert_eq!(expected.len(), 4, "the corpus spreads over every folder");
    for (folder, msgs) in &expected {
        let name = imap_name(folder, delimiter);
        assert_eq!(
            client.count(&name).await,
            msgs.len() as u64,
            "{name}\n{}",
            dovecot.log()
        );
    }

    let listed: Vec<String> = client
        .ok("LIST \"\" \"*\"")
        .await
        .iter()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .collect();
    let d = format!("\"{delimiter}\"");
    for want in [
        format!("{d} INBOX"),
        format!("\\Sent) {d} Sent"),
        format!("{d} Entw&APw-rfe"),
        format!("{d} Archive{delimiter}2020"),
    ] {
        assert!(
            listed.iter().any(|l| l.ends_with(&want)),
            "LIST lacks {want}: {listed:#?}"
        );
    }

    // Order, flags, keywords, internal dates, sizes and bytes, folder by folder.
    for (folder, msgs) in &expected {
        let name = imap_name(folder, delimiter);
        client.ok(&format!("SELECT \"{name}\"")).await;
        let lines = client
            .ok("UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
            .await;
        let fetched: Vec<_> = lines
            .iter()
            .filter(|l| l.windows(6).any(|w| w == b" FETCH"))
            .map(|l| parse_fetch(l))
            .collect();
        assert_eq!(fetched.len(), msgs.len(), "{name}");
        for (i, (m, (flags, date, size, body))) in msgs.iter().zip(&fetched).enumerate() {
            let (canonical, _) = canonicalise(Bytes::clone(&m.body));
            assert_eq!(flags, &m.flags, "{name} message {i}");
            assert_eq!(
                date.timestamp, m.internal_date.timestamp,
                "{name} message {i}"
            );
            assert_eq!(*size, canonical.len(), "{name} message {i}");
            assert!(
                body.as_deref() == Some(&canonical[..]),
                "{name} message {i}: BODY[] differs from the filled bytes"
            );
        }
    }
    assert_eq!(
        dovecot.log_errors(),
        Vec::<String>::new(),
        "{}",
        dovecot.log()
    );
}

#[tokio::test]
async fn fill_is_seen_by_dovecot_with_maildirplusplus_folders() {
    if !require_dovecot() {
        return;
    }
    check_fill('.').await;
}

#[tokio::test]
async fn fill_is_seen_by_dovecot_with_fs_layout_folders() {
    if !require_dovecot() {
        return;
    }
    check_fill('/').await;
}

#[tokio::test]
async fn restart_keeps_data_ports_and_users_apart() {
    if !require_dovecot() {
        return;
    }
    let mut dovecot = Dovecot::start(DovecotOptions {
        users: vec![
            ("alice".into(), "secret-pass-1".into()),
            ("bob".into(), "other:pass".replace(':', "-")),
        ],
        ..DovecotOptions::default()
    })
    .expect("start dovecot");
    let messages = CorpusSpec::new(20, SizeMix::small()).messages();
    assert_eq!(dovecot.fill("bob", messages).expect("fill bob"), 20);
    let ports = (dovecot.imap_port(), dovecot.imaps_port());

    dovecot.restart().expect("restart");
    assert_eq!((dovecot.imap_port(), dovecot.imaps_port()), ports);
    let mut bob = plain(&dovecot).await.0;
    bob.login(("bob", "other-pass")).await;
    assert_eq!(bob.count("INBOX").await, 20, "{}", dovecot.log());
    let mut alice = logged_in(&dovecot).await;
    assert_eq!(alice.count("INBOX").await, 0);
    assert!(dovecot.maildir("bob").join("cur").is_dir());

    dovecot.stop();
    assert!(
        TcpStream::connect((dovecot.host(), ports.0)).await.is_err(),
        "stopped Dovecot still accepts"
    );
}

#[test]
fn fill_rejects_what_the_layout_cannot_store() {
    if !require_dovecot() {
        return;
    }
    for (delimiter, folder) in [
        ('.', FolderPath::new(["a.b"])),
        ('/', FolderPath::new(["Archive", "cur"])),
        ('.', FolderPath::new([".."])),
    ] {
        let dovecot = Dovecot::start(DovecotOptions {
            delimiter,
            ..DovecotOptions::default()
        })
        .expect("start dovecot");
        let messages = CorpusSpec::new(1, SizeMix::small())
            .in_folders(vec![folder.clone()])
            .messages();
        let err = dovecot
            .fill("alice", messages)
            .expect_err("unstorable folder");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{folder}: {err}"
        );
        let err = dovecot
            .fill("nobody-here", Vec::new())
            .expect_err("unknown user");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}

fn corpora_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing",
        dir.display()
    );
    eprintln!("note: {} missing; skipping", dir.display());
    None
}

fn corpus_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read corpora dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            corpus_files(&path, out);
        } else if !name.ends_with(".json") && !name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Dovecot serves a Maildir file with bare LFs made CRLF; a NUL byte becomes 0x80 unless the
/// client asks for BINARY.
fn as_dovecot_serves(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(if b == 0 { 0x80 } else { b });
        prev = b;
    }
    out
}

#[tokio::test]
async fn fill_stores_real_world_malformed_messages_with_consistent_sizes() {
    if !require_dovecot() {
        return;
    }
    let Some(dir) = corpora_dir() else {
        return;
    };
    let mut files = Vec::new();
    corpus_files(&dir, &mut files);
    let folder = FolderPath::new(["Corpus"]);
    let mut paths = Vec::new();
    let mut messages = Vec::new();
    for path in files {
        let body = std::fs::read(&path).expect("read corpus file");
        if body.is_empty() {
            continue;
        }
        messages.push(GeneratedMessage {
            folder: folder.clone(),
            body: Bytes::from(body),
            flags: Flags::default(),
            internal_date: InternalDate::from_timestamp(1_500_000_000 + paths.len() as i64 * 60),
        });
        paths.push(path);
    }
    assert!(messages.len() > 500, "{} corpus files", messages.len());
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start dovecot");
    let count = dovecot
        .fill("alice", messages.clone())
        .expect("fill corpus");
    assert_eq!(count, messages.len() as u64);

    let mut client = logged_in(&dovecot).await;
    assert_eq!(client.count("Corpus").await, count);
    client.ok("SELECT Corpus").await;
    let lines = client
        .ok("UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        .await;
    let mut checked = 0;
    for ((line, m), path) in lines
        .iter()
        .filter(|l| l.windows(6).any(|w| w == b" FETCH"))
        .zip(&messages)
        .zip(&paths)
    {
        let (_, date, size, body) = parse_fetch(line);
        let body = body.expect("BODY[]");
        let served = as_dovecot_serves(&m.body);
        let path = path.display();
        // RFC822.SIZE comes from the `W=` in the file name: it must match what is served.
        assert_eq!(size, body.len(), "RFC822.SIZE of {path}");
        let first_difference = body.iter().zip(&served).position(|(a, b)| a != b);
        assert!(
            body == served,
            "{path}: served {} bytes, expected {}, first difference at {first_difference:?}",
            body.len(),
            served.len()
        );
        assert_eq!(date.timestamp, m.internal_date.timestamp, "{path}");
        checked += 1;
    }
    assert_eq!(checked, messages.len());
    assert_eq!(
        dovecot.log_errors(),
        Vec::<String>::new(),
        "{}",
        dovecot.log()
    );
}
