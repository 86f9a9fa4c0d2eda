//! `--trace-imap FILE` and `-vvv` with the real command between Cyrus (source, AUTH via LOGIN)
//! and Dovecot (target): both show the IMAP conversation of both sides, and neither the trace
//! file nor stderr holds either password or a message body.

use std::process::Command;

use mailferry_core::FolderPath;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::{Cyrus, CyrusOptions, Dovecot, DovecotOptions, ServerKind};

const SOURCE_PASSWORD: &str = "cyrus-Source-pw-7";
const TARGET_PASSWORD: &str = "dovecot-Target-pw-9";

#[test]
fn trace_imap_and_vvv_show_both_sessions_without_passwords() {
    if !ServerKind::Dovecot.available() || !ServerKind::Cyrus.available() {
        return;
    }
    let source = Cyrus::start(CyrusOptions {
        users: vec![("alice".into(), SOURCE_PASSWORD.into())],
        ..CyrusOptions::default()
    })
    .expect("start Cyrus");
    let messages = CorpusSpec::new(20, SizeMix::small())
        .in_folders(vec![FolderPath::inbox(), FolderPath::new(["Archive"])])
        .messages();
    let marker = messages
        .iter()
        .map(|m| {
            String::from_utf8_lossy(&m.body)
                .lines()
                .last()
                .unwrap_or("")
                .to_string()
        })
        .find(|l| l.len() > 20)
        .expect("a body line to look for");
    source.fill("alice", messages).expect("fill Cyrus");
    let target = Dovecot::start(DovecotOptions {
        users: vec![("alice".into(), TARGET_PASSWORD.into())],
        ..DovecotOptions::default()
    })
    .expect("start Dovecot");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        std::fs::read_to_string(source.ca_pem_path()).expect("CA")
            + &std::fs::read_to_string(target.ca_pem_path()).expect("CA"),
    )
    .expect("write CA bundle");
    let trace = dir.path().join("trace.log");
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .arg("copy")
        .arg(format!("imap://alice@127.0.0.1:{}", source.imap_port()))
        .arg(format!("imap://alice@127.0.0.1:{}", target.imap_port()))
        .arg("--ca-file")
        .arg(&ca)
        .arg("--state")
        .arg(dir.path().join("state.sqlite"))
        .arg("--trace-imap")
        .arg(&trace)
        .arg("-vvv")
        .env("MAILFERRY_SOURCE_PASSWORD", SOURCE_PASSWORD)
        .env("MAILFERRY_TARGET_PASSWORD", TARGET_PASSWORD)
        .env("NO_COLOR", "1")
        .output()
        .expect("run mailferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let file = std::fs::read_to_string(&trace).expect("read the trace");
    for (what, text) in [("--trace-imap", file.as_str()), ("-vvv", &stderr)] {
        for port in [source.imap_port(), target.imap_port()] {
            assert!(
                text.contains(&format!("alice@127.0.0.1:{port}#")),
                "{what}: no session to port {port}:\n{text}"
            );
        }
        assert!(text.contains("LOGIN <redacted>"), "{what}:\n{text}");
        assert!(text.contains("APPEND"), "{what}:\n{text}");
        assert!(
            text.contains("Cyrus IMAP"),
            "{what}: no Cyrus greeting:\n{text}"
        );
        for secret in [SOURCE_PASSWORD, TARGET_PASSWORD, marker.as_str()] {
            assert!(!text.contains(secret), "{what} holds {secret:?}:\n{text}");
        }
    }
}
