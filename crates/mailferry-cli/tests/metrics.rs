//! The Prometheus endpoint during a real copy: `mailferry copy --metrics-addr 127.0.0.1:0` of a
//! generated Maildir (1,200 messages in three folders) into a Dovecot server over IMAP (paced
//! with `--max-msgs-per-sec` so the copy lasts a few seconds) is scraped over plain TCP while it runs — the exposition must parse
//! and the copied counter must grow — and once more after the run, which `--metrics-linger`
//! allows: the final figures must equal the `--report` JSON (copied, bytes, failed, skipped)
//! and the process must exit as soon as that scrape was answered.
//!
//! Design decisions, and why:
//! - **A Maildir source and an IMAP target**: the source is generated quickly on disk, and the
//!   append latency measured is that of real IMAP APPENDs.
//! - **The final scrape is taken once the report file exists**: the report is written after
//!   the run, so from then on the counters are final; the report is read only after the process
//!   exited (it is not written atomically).
//! - No timed assertion: waits are polls with a generous bound that only guards against a hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};
use serde_json::Value;

mod support;

const PASSWORD: &str = "metrics-target-pw";
const MESSAGES: usize = 1200;
/// A run (or a wait) longer than this is taken to hang.
const HANG: Duration = Duration::from_secs(240);

fn write_source(dir: &Path) -> u64 {
    support::write_maildir(dir, MESSAGES, 0)
}

/// `GET path` over plain TCP: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_string();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse::<usize>().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (status, body.to_string())
}

/// The samples of an exposition, `series -> value`; panics where it does not parse.
fn parse(text: &str) -> std::collections::HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "ends with # EOF: {text}");
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            let mut words = line.split_whitespace().skip(1);
            let kind = words.next();
            assert!(
                matches!(kind, Some("HELP" | "TYPE" | "UNIT" | "EOF")),
                "a comment line: {line}"
            );
            if kind != Some("EOF") {
                let name = words.next().unwrap_or_default();
                assert!(name.starts_with("mailferry_"), "prefixed: {line}");
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        assert!(series.starts_with("mailferry_"), "prefixed: {line}");
        if let Some(open) = series.find('{') {
            assert!(series.ends_with('}'), "closed labels: {line}");
            assert!(!series[open..].contains("user"), "no user label: {line}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

fn sample(samples: &std::collections::HashMap<String, f64>, series: &str) -> u64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} is exposed: {samples:?}")) as u64
}

#[test]
fn metrics_are_scraped_during_a_copy_and_match_the_report_at_the_end() {
    if !require_dovecot() {
        return;
    }
    let dovecot = Dovecot::start(DovecotOptions {
        delimiter: '/',
        users: vec![("alice".into(), PASSWORD.into())],
        extra_config: String::new(),
    })
    .expect("start Dovecot");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let generated = write_source(&root.join("src"));
    let report_path = root.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args([
            "copy",
            &format!("maildir:{}", root.join("src").display()),
            &format!("imap://alice@{}:{}", dovecot.host(), dovecot.imap_port()),
            "--ca-file",
            &dovecot.ca_pem_path().display().to_string(),
            "--state",
            &root.join("state.sqlite").display().to_string(),
            "--report",
            &report_path.display().to_string(),
            "--max-msgs-per-sec",
            "300",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "600",
        ])
        .env("MAILFERRY_TARGET_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mailferry");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mailferry says where it serves metrics")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("mailferry: metrics at http://") {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Drain the rest of stderr so the child never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let (status, _) = get(&addr, "/nothing");
    assert!(status.contains(" 404 "), "{status}");

    // Mid-copy: a first figure while the mailbox is in flight, then a larger one.
    let started = Instant::now();
    let mut first = None;
    let grown = loop {
        assert!(started.elapsed() < HANG, "the copied counter never grew");
        let (status, body) = get(&addr, "/metrics");
        assert!(status.contains(" 200 "), "{status}");
        let s = parse(&body);
        let copied = sample(&s, "mailferry_messages_copied_total");
        let in_flight = sample(&s, "mailferry_mailboxes_in_flight");
        match first {
            None if copied > 0 && in_flight == 1 => {
                assert!(
                    copied < generated,
                    "scraped mid-copy ({copied} of {generated})"
                );
                std::fs::write(root.join("mid-copy.txt"), &body).expect("keep the scrape");
                if let Ok(out) = std::env::var("MAILFERRY_METRICS_SCRAPE_OUT") {
                    std::fs::write(out, &body).expect("write the scrape");
                }
                first = Some(copied);
            }
            Some(f) if copied > f => break copied,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(grown > first.unwrap_or_default());

    // After the run: the report exists, so the counters are final.
    while !report_path.exists() {
        assert!(started.elapsed() < HANG, "the copy never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = get(&addr, "/metrics");
    let end = parse(&body);
    // The final scrape ends the linger: the process exits on its own.
    let status = child.wait().expect("wait for mailferry");
    let stderr = drain.join().expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr:?}");

    let report: Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("json");
    let totals = &report["copy"]["totals"];
    let field = |name: &str| totals[name].as_u64().expect("a count");
    assert_eq!(field("copied"), generated);
    assert_eq!(
        sample(&end, "mailferry_messages_copied_total"),
        field("copied")
    );
    assert_eq!(sample(&end, "mailferry_bytes_copied_total"), field("bytes"));
    let failed: u64 = ["transient", "item", "fatal"]
        .iter()
        .map(|k| {
            sample(
                &end,
                &format!("mailferry_messages_failed_total{{kind=\"{k}\"}}"),
            )
        })
        .sum();
    assert_eq!(failed, field("failed"));
    assert_eq!(
        sample(
            &end,
            "mailferry_messages_skipped_total{reason=\"already_copied\"}"
        ),
        field("already_copied")
    );
    assert_eq!(
        sample(
            &end,
            "mailferry_messages_skipped_total{reason=\"filtered\"}"
        ),
        field("filtered")
    );
    assert_eq!(
        sample(&end, "mailferry_mailboxes_completed_total{outcome=\"ok\"}"),
        1
    );
    assert_eq!(sample(&end, "mailferry_mailboxes_in_flight"), 0);
    // Every message is fetched once by the copy; the post-copy rewrite check reads a few more
    // back (a sample per folder), and those are fetches too.
    let fetched = sample(&end, "mailferry_messages_fetched_total");
    assert!(
        (generated..=generated + 64).contains(&fetched),
        "fetched {fetched} of {generated}"
    );
    for h in ["append", "fetch", "state_commit"] {
        let count = sample(&end, &format!("mailferry_{h}_duration_seconds_count"));
        let inf = sample(
            &end,
            &format!("mailferry_{h}_duration_seconds_bucket{{le=\"+Inf\"}}"),
        );
        assert!(count > 0, "{h} latency observed");
        assert_eq!(count, inf, "{h}: +Inf bucket holds every observation");
    }
}
