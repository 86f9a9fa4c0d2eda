//! One very large message through the real command, Maildir → mbox → Maildir and Maildir →
//! Maildir, with the command's peak memory bounded: below 3× the message size. 50 MB by
//! default (a debug build copies it in seconds); 200 MB with `MAILFERRY_BIG_TESTS=1`.
//!
//! Peak memory is the child's `VmHWM`, polled from `/proc` every 5 ms while it runs (it is a
//! high-water mark, so only growth in the last few milliseconds before exit could be missed).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailferry_core::Source;
use mailferry_maildir::Maildir;
use mailferry_mbox::Mbox;

use crate::support::{mailferry, multisets, snapshot};

fn message_bytes() -> usize {
    if std::env::var("MAILFERRY_BIG_TESTS").as_deref() == Ok("1") {
        200 << 20
    } else {
        50 << 20
    }
}

/// A Maildir holding one message of about `size` bytes (LF line endings, as Maildir stores).
fn write_source(root: &Path, size: usize) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).expect("mkdir");
    }
    let file = std::fs::File::create(root.join("cur/1700000000.M1P1.big:2,S")).expect("create");
    let mut out = std::io::BufWriter::new(file);
    out.write_all(b"Message-ID: <big@mailferry.test>\nSubject: a very large message\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
        .expect("write");
    // A From line inside: it must be quoted in mbox and come back unquoted.
    out.write_all(b"From here on, base64:\n").expect("write");
    let mut line = [b'A'; 77];
    line[76] = b'\n';
    let mut written = 0;
    let mut n: u8 = 0;
    while written < size {
        line[n as usize % 76] = b'A' + n % 26;
        n = n.wrapping_add(1);
        out.write_all(&line).expect("write");
        written += line.len();
    }
    out.flush().expect("flush");
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Runs `mailferry copy SOURCE TARGET` to the end; returns its peak resident memory.
fn copy_measuring_memory(source: &str, target: &str, state: &Path) -> u64 {
    let started = Instant::now();
    let mut child = mailferry()
        .args(["-q", "copy", source, target, "--state"])
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailferry");
    let mut peak = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert_eq!(status.code(), Some(0), "{source} -> {target}: {err}");
    println!(
        "{source} -> {target}: {:.1} s, peak RSS {} MB",
        started.elapsed().as_secs_f64(),
        peak >> 20
    );
    peak
}

#[test]
fn very_large_message_crosses_maildir_and_mbox_in_bounded_memory() {
    let size = message_bytes();
    // Built before anything is timed.
    crate::support::mailferry_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name);
    write_source(&p("src"), size);
    let url = |scheme: &str, name: &str| format!("{scheme}:{}", p(name).display());
    let hops = [
        (url("maildir", "src"), url("mbox", "mbox"), "s1"),
        (url("mbox", "mbox"), url("maildir", "back"), "s2"),
        (url("maildir", "src"), url("maildir", "copy"), "s3"),
    ];
    for (source, target, state) in &hops {
        let peak = copy_measuring_memory(source, target, &p(&format!("{state}.sqlite")));
        assert!(
            peak < 3 * size as u64,
            "{source} -> {target}: peak RSS {} MB for a {} MB message",
            peak >> 20,
            size >> 20
        );
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let open_maildir = |name: &str| -> Arc<dyn Source> {
        Arc::new(Maildir::open(p(name), Default::default()).expect("open"))
    };
    let want = multisets(&rt.block_on(snapshot(&*open_maildir("src"))));
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 1);
    let mbox: Arc<dyn Source> = Arc::new(Mbox::open(p("mbox")).expect("open"));
    for (name, store) in [
        ("mbox", mbox),
        ("back", open_maildir("back")),
        ("copy", open_maildir("copy")),
    ] {
        let got = multisets(&rt.block_on(snapshot(&*store)));
        assert!(
            got == want,
            "{name}: the large message changed: {got:?} vs {want:?}"
        );
    }
}
