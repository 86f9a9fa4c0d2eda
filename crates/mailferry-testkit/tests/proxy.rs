//! The fault/latency proxy against small local servers: bytes pass unchanged, the added round
//! trip shows in request/response latency but not in bulk throughput, cuts happen at the exact
//! byte offset (both directions counted), and the counters move. The IMAP-aware faults run
//! against a tiny scripted IMAP server: refusals replace whole tagged answers, a BYE lands
//! between responses, a stall holds bytes without closing, random offsets are reproducible, and
//! cuts are classified by where they fell. Timing assertions are ratios with generous margins:
//! the machine is shared and its timers are late under load.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mailferry_testkit::proxy::{CutSites, RandomFaults};
use mailferry_testkit::{Proxy, ProxyOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Deterministic pseudo-random bytes (SplitMix64), so a corrupted byte cannot hide in a pattern.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A local server running `serve` on every connection; returns its address.
async fn server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            stream.set_nodelay(true).expect("nodelay");
            tokio::spawn(serve(stream));
        }
    });
    addr
}

async fn echo_server() -> SocketAddr {
    server(|stream| async move {
        let (mut r, mut w) = stream.into_split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Everything the peer sends until it closes (a reset after data counts as a close).
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("peer neither sent nor closed within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_pass_unchanged_both_ways_through_an_echo_server() {
    let proxy = Proxy::start(echo_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let data = payload(8 << 20, 7);
    let stream = connect(proxy.addr()).await;
    let (mut r, mut w) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.expect("send");
        w.shutdown().await.expect("half-close");
    });
    let mut echoed = Vec::new();
    r.read_to_end(&mut echoed).await.expect("read echo");
    writer.await.expect("writer");
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.cuts(), 0, "a half-close is not a cut");
}

/// The mean time of `rounds` one-byte request/response exchanges.
async fn mean_round_trip(stream: &mut TcpStream, rounds: u32) -> Duration {
    let mut byte = [0u8; 1];
    let start = Instant::now();
    for i in 0..rounds {
        stream.write_all(&[i as u8]).await.expect("ping");
        stream.read_exact(&mut byte).await.expect("pong");
        assert_eq!(byte[0], i as u8);
    }
    start.elapsed() / rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_round_trip_shows_in_request_response_latency_and_changes_live() {
    let rtt = Duration::from_millis(40);
    let proxy = Proxy::start(echo_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let mut stream = connect(proxy.addr()).await;
    let base = mean_round_trip(&mut stream, 20).await;

    proxy.set_round_trip(rtt);
    let delayed = mean_round_trip(&mut stream, 10).await;
    let added = delayed.saturating_sub(base);
    // Sleeps never end early, so the lower bound is tight; the upper one allows a loaded box.
    assert!(
        added >= rtt.mul_f64(0.95),
        "added {added:?} for rtt {rtt:?}"
    );
    assert!(added <= rtt * 3, "added {added:?} for rtt {rtt:?}");

    proxy.set_round_trip(Duration::ZERO);
    let back = mean_round_trip(&mut stream, 20).await;
    assert!(back < rtt / 2, "{back:?} after removing the delay");
    assert_eq!(proxy.connections(), 1);
}

/// Sends `len` bytes to a server that acknowledges with one byte once it has them all;
/// returns the time until the acknowledgement.
async fn bulk_transfer(addr: SocketAddr, data: &[u8]) -> Duration {
    let stream = connect(addr).await;
    let (mut r, mut w) = stream.into_split();
    let start = Instant::now();
    let sent = data.to_vec();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.expect("send") });
    let mut ack = [0u8; 1];
    r.read_exact(&mut ack).await.expect("ack");
    let elapsed = start.elapsed();
    writer.await.expect("writer");
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_a_bulk_transfer_without_throttling_it() {
    const LEN: usize = 32 << 20;
    let sink = server(|mut stream| async move {
        let mut buf = vec![0; 256 * 1024];
        let mut got = 0;
        while got < LEN {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
        let _ = stream.write_all(b"k").await;
    })
    .await;
    let rtt = Duration::from_millis(100);
    let proxy = Proxy::start(sink, ProxyOptions::default())
        .await
        .expect("proxy");
    let data = payload(LEN, 3);
    let plain = bulk_transfer(proxy.addr(), &data).await;
    proxy.set_round_trip(rtt);
    let delayed = bulk_transfer(proxy.addr(), &data).await;
    // Ideal: plain + one round trip. A proxy that slept per read (>= 512 reads of 64 KiB, each
    // delayed rtt/2) would need more than 25 s.
    assert!(delayed >= rtt, "{delayed:?} < the added round trip");
    assert!(
        delayed < plain * 4 + rtt * 4,
        "bulk transfer throttled: {delayed:?} with rtt {rtt:?}, {plain:?} without"
    );
    assert_eq!(proxy.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_a_connection_after_the_configured_bytes_and_only_then() {
    let data = payload(100_000, 11);
    let sent = data.clone();
    let talker = server(move |mut stream| {
        let sent = sent.clone();
        async move {
            let _ = stream.write_all(&sent).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    })
    .await;
    let proxy = Proxy::start(
        talker,
        ProxyOptions {
            round_trip: Duration::from_millis(10),
            cut_after_bytes: Some(30_000),
        },
    )
    .await
    .expect("proxy");
    let received = read_all(&mut connect(proxy.addr()).await).await;
    assert_eq!(received.len(), 30_000);
    assert!(
        received[..] == data[..30_000],
        "bytes before the cut differ"
    );
    assert_eq!((proxy.connections(), proxy.cuts()), (1, 1));

    // The new limit applies to the next connection; without one, everything passes.
    proxy.set_cut_after_bytes(None);
    let received = read_all(&mut connect(proxy.addr()).await).await;
    assert!(
        received == data,
        "uncut connection got {} bytes",
        received.len()
    );
    assert_eq!((proxy.connections(), proxy.cuts()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_offset_counts_both_directions() {
    // The server answers only after the whole request, so the order of bytes is fixed.
    let reply = payload(100_000, 5);
    let sent = reply.clone();
    let responder = server(move |mut stream| {
        let sent = sent.clone();
        async move {
            let mut request = vec![0; 1_000];
            if stream.read_exact(&mut request).await.is_ok() {
                let _ = stream.write_all(&sent).await;
            }
        }
    })
    .await;
    let proxy = Proxy::start(
        responder,
        ProxyOptions {
            round_trip: Duration::ZERO,
            cut_after_bytes: Some(30_000),
        },
    )
    .await
    .expect("proxy");
    let mut stream = connect(proxy.addr()).await;
    stream.write_all(&payload(1_000, 9)).await.expect("request");
    let received = read_all(&mut stream).await;
    assert_eq!(received.len(), 29_000, "30 000 minus the 1 000 sent");
    assert!(received[..] == reply[..29_000]);
    assert_eq!(proxy.cuts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_all_drops_open_connections_and_new_ones_still_work() {
    let proxy = Proxy::start(echo_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let mut open = Vec::new();
    for i in 0..3u8 {
        let mut stream = connect(proxy.addr()).await;
        let mut byte = [0u8; 1];
        stream.write_all(&[i]).await.expect("ping");
        stream.read_exact(&mut byte).await.expect("pong");
        open.push(stream);
    }
    assert_eq!((proxy.connections(), proxy.cuts()), (3, 0));

    proxy.cut_all();
    for stream in &mut open {
        let rest = read_all(stream).await;
        assert!(rest.is_empty(), "{} bytes after the cut", rest.len());
    }
    // Counted before the sockets close, so no waiting is needed.
    assert_eq!(proxy.cuts(), 3);

    let mut fresh = connect(proxy.addr()).await;
    fresh.write_all(b"again").await.expect("send");
    let mut back = [0u8; 5];
    fresh.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"again");
    assert_eq!((proxy.connections(), proxy.cuts()), (4, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_closes_its_connections_and_port() {
    let proxy = Proxy::start(echo_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let addr = proxy.addr();
    let mut stream = connect(addr).await;
    stream.write_all(b"x").await.expect("send");
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.expect("echo");
    drop(proxy);
    assert!(read_all(&mut stream).await.is_empty());
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "proxy port still accepts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const GREETING: &[u8] = b"* OK fake IMAP ready\r\n";
const BODY_LINE: &[u8] = b"Some body text that a FETCH returns as a literal.\r\n";
const BODY_LINES: usize = 400;

/// The untagged FETCH response the fake server sends.
fn fetch_response() -> Vec<u8> {
    let body = BODY_LINE.repeat(BODY_LINES);
    let mut out = format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(b")\r\n");
    out
}

/// A scripted IMAP server: greets, answers `FETCH` with one literal body, reads `APPEND`
/// literals (`{N+}`), and answers every command `TAG OK done`, all in one write.
async fn imap_server() -> SocketAddr {
    server(|stream| async move {
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        if w.write_all(GREETING).await.is_err() {
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let tag = line.split(' ').next().unwrap_or("*").to_string();
            if let Some(n) = line
                .trim_end()
                .strip_suffix("+}")
                .and_then(|l| l.rsplit('{').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                let mut literal = vec![0; n + 2];
                if r.read_exact(&mut literal).await.is_err() {
                    return;
                }
            }
            let mut answer = Vec::new();
            if line.contains(" FETCH ") {
                answer.extend_from_slice(&fetch_response());
            }
            answer.extend_from_slice(format!("{tag} OK done\r\n").as_bytes());
            if w.write_all(&answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Reads lines until the tagged answer of `tag`; returns everything read, or what was read
/// when the peer closed.
async fn until_tagged(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, tag: &str) -> String {
    let mut out = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("an answer within 10 s");
        if read.unwrap_or(0) == 0 {
            return out;
        }
        out.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return out;
        }
    }
}

async fn imap_client(
    proxy: &Proxy,
) -> (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let (r, w) = connect(proxy.addr()).await.into_split();
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.expect("greeting");
    assert_eq!(greeting.as_bytes(), GREETING);
    (r, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nth_tagged_answer_is_refused_whole_and_literals_pass_intact() {
    let proxy = Proxy::start(imap_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    proxy.set_refuse_every(Some(3));
    let (mut r, mut w) = imap_client(&proxy).await;
    let mut tagged = Vec::new();
    for i in 1..=9 {
        let tag = format!("a{i}");
        let verb = if i % 2 == 0 {
            "UID FETCH 1 (BODY[])"
        } else {
            "NOOP"
        };
        w.write_all(format!("{tag} {verb}\r\n").as_bytes())
            .await
            .expect("command");
        let answer = until_tagged(&mut r, &tag).await;
        if i % 2 == 0 {
            let body = String::from_utf8(fetch_response()).expect("text");
            assert!(answer.starts_with(&body), "FETCH {i} arrived whole");
        }
        tagged.push(answer.lines().last().unwrap_or_default().to_string());
    }
    for (i, line) in tagged.iter().enumerate() {
        let refused = (i + 1) % 3 == 0;
        let expected = if refused {
            format!(
                "a{} NO [UNAVAILABLE] Injected by the mailferry test proxy",
                i + 1
            )
        } else {
            format!("a{} OK done", i + 1)
        };
        assert_eq!(line, &expected);
    }
    assert_eq!(proxy.refusals(), 3);
    let by_command: Vec<(String, u64)> = proxy.refusals_by_command().into_iter().collect();
    assert_eq!(
        by_command,
        [("NOOP".to_string(), 2), ("UID FETCH".to_string(), 1)],
        "refusals are named by the command they answered"
    );
    proxy.set_refuse_every(None);
    w.write_all(b"b1 NOOP\r\n").await.expect("command");
    assert_eq!(until_tagged(&mut r, "b1").await, "b1 OK done\r\n");
    assert_eq!((proxy.refusals(), proxy.cuts()), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_is_sent_after_the_response_in_flight_and_then_the_connection_closes() {
    let proxy = Proxy::start(imap_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let command = b"a1 UID FETCH 1 (BODY[])\r\n";
    // The offset falls inside the FETCH literal: the response ends first, then the BYE.
    let offset = GREETING.len() + command.len() + 1_000;
    proxy.set_bye_after_bytes(Some(offset as u64));
    let (mut r, mut w) = imap_client(&proxy).await;
    w.write_all(command).await.expect("command");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s")
        .expect("read");
    let mut expected = fetch_response();
    expected.extend_from_slice(b"* BYE Injected by the mailferry test proxy: shutting down\r\n");
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&expected),
        "whole FETCH response, BYE, close; the tagged OK is never sent"
    );
    assert_eq!((proxy.byes(), proxy.cuts()), (1, 0));

    // Idle at the offset (the client's command crossed it): BYE at once.
    proxy.set_bye_after_bytes(Some((GREETING.len() + 3) as u64));
    let (mut r, mut w) = imap_client(&proxy).await;
    w.write_all(b"a1 NOOP\r\n").await.expect("command");
    let answer = until_tagged(&mut r, "a1").await;
    assert_eq!(
        answer,
        "* BYE Injected by the mailferry test proxy: shutting down\r\n"
    );
    assert_eq!(proxy.byes(), 2);
}

async fn nothing_arrives_for(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, wait: Duration) {
    let mut line = String::new();
    match tokio::time::timeout(wait, r.read_line(&mut line)).await {
        Err(_) => {}
        Ok(read) => panic!("got {read:?} {line:?} from a stalled connection"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_holds_server_bytes_without_closing_until_released() {
    let proxy = Proxy::start(imap_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let (mut r, mut w) = imap_client(&proxy).await;
    proxy.set_stalled(true);
    w.write_all(b"a1 NOOP\r\n").await.expect("command");
    nothing_arrives_for(&mut r, Duration::from_millis(400)).await;
    proxy.set_stalled(false);
    assert_eq!(until_tagged(&mut r, "a1").await, "a1 OK done\r\n");

    // Stalling the open connections leaves new ones alone.
    proxy.stall_open_connections();
    w.write_all(b"a2 NOOP\r\n").await.expect("command");
    nothing_arrives_for(&mut r, Duration::from_millis(400)).await;
    let (mut r2, mut w2) = imap_client(&proxy).await;
    w2.write_all(b"b1 NOOP\r\n").await.expect("command");
    assert_eq!(until_tagged(&mut r2, "b1").await, "b1 OK done\r\n");
    nothing_arrives_for(&mut r, Duration::from_millis(100)).await;
    assert_eq!((proxy.connections(), proxy.cuts()), (2, 0));
}

/// The bytes each of `n` connections receives from a 100 KB talker through a proxy.
async fn received_lengths(faults: RandomFaults, n: usize) -> Vec<usize> {
    let data = payload(100_000, 13);
    let talker = server(move |mut stream| {
        let sent = data.clone();
        async move {
            let _ = stream.write_all(&sent).await;
            let _ = stream.shutdown().await;
        }
    })
    .await;
    let proxy = Proxy::start(talker, ProxyOptions::default())
        .await
        .expect("proxy");
    proxy.set_random_faults(Some(faults));
    let mut lengths = Vec::new();
    for _ in 0..n {
        lengths.push(read_all(&mut connect(proxy.addr()).await).await.len());
    }
    assert_eq!(proxy.cuts(), n as u64);
    lengths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cut_offsets_stay_in_range_and_replay_from_the_seed() {
    let faults = RandomFaults {
        seed: 7,
        min_bytes: 1_000,
        max_bytes: 50_000,
        bye_one_in: 0,
    };
    let first = received_lengths(faults, 6).await;
    assert!(
        first.iter().all(|&l| (1_000..=50_000).contains(&l)),
        "{first:?}"
    );
    assert_eq!(received_lengths(faults, 6).await, first, "same seed");
    let other = RandomFaults { seed: 8, ..faults };
    assert_ne!(received_lengths(other, 6).await, first, "another seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_are_classified_by_where_they_fell() {
    let proxy = Proxy::start(imap_server().await, ProxyOptions::default())
        .await
        .expect("proxy");
    let greeting = GREETING.len() as u64;
    // Inside the greeting: nothing outstanding.
    proxy.set_cut_after_bytes(Some(5));
    assert_eq!(read_all(&mut connect(proxy.addr()).await).await.len(), 5);
    // Right after a complete command, before any answer.
    let noop = b"a1 NOOP\r\n";
    proxy.set_cut_after_bytes(Some(greeting + noop.len() as u64));
    let (mut r, mut w) = imap_client(&proxy).await;
    w.write_all(noop).await.expect("command");
    assert_eq!(until_tagged(&mut r, "a1").await, "");
    // Inside the body a FETCH returns.
    let fetch = b"a1 UID FETCH 1 (BODY[])\r\n";
    proxy.set_cut_after_bytes(Some(greeting + fetch.len() as u64 + 2_000));
    let (mut r, mut w) = imap_client(&proxy).await;
    w.write_all(fetch).await.expect("command");
    assert!(!until_tagged(&mut r, "a1").await.contains("a1 OK"));
    // Inside an APPEND literal.
    let append = b"a1 APPEND INBOX {50000+}\r\n";
    proxy.set_cut_after_bytes(Some(greeting + append.len() as u64 + 10_000));
    let (mut r, mut w) = imap_client(&proxy).await;
    w.write_all(append).await.expect("command");
    let _ = w.write_all(&BODY_LINE.repeat(1_000)[..50_000]).await;
    assert_eq!(until_tagged(&mut r, "a1").await, "");

    assert_eq!(proxy.cuts(), 4);
    assert_eq!(
        proxy.cut_sites(),
        CutSites {
            server_literal: 1,
            client_literal: 1,
            awaiting_reply: 1,
            idle: 1,
        }
    );
}
