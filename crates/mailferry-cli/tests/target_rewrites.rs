//! A target that changes what it stores is surfaced where people look: Dovecot → Cyrus (which
//! replaces 8-bit header bytes with `X`, keeping sizes) warns in the copy's output and report
//! and points at `verify --read-back`; plain `verify` says it did not compare bytes; `verify
//! --read-back` names exactly the rewritten messages. Dovecot → Dovecot raises no warning.

use std::path::Path;
use std::process::{Command, Output};

use mailferry_core::FolderPath;
use mailferry_testkit::corpus::{CorpusSpec, GeneratedMessage, SizeMix};
use mailferry_testkit::server::munge_8bit_headers;
use mailferry_testkit::{ImapServer, ServerKind};
use serde_json::Value;

const PASSWORD: &str = "secret-pass-1";

fn corpus() -> Vec<GeneratedMessage> {
    CorpusSpec::new(300, SizeMix::small())
        .with_quirks()
        .in_folders(vec![
            FolderPath::inbox(),
            FolderPath::new(["Archive", "2024"]),
            FolderPath::new(["Sent"]),
        ])
        .messages()
}

fn mailferry(
    args: &[&str],
    source: &dyn ImapServer,
    target: &dyn ImapServer,
    dir: &Path,
) -> Output {
    let ca = dir.join("ca.pem");
    std::fs::write(
        &ca,
        std::fs::read_to_string(source.ca_pem_path()).expect("CA")
            + &std::fs::read_to_string(target.ca_pem_path()).expect("CA"),
    )
    .expect("write CA bundle");
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .arg(format!("imap://alice@127.0.0.1:{}", source.imap_port()))
        .arg(format!("imap://alice@127.0.0.1:{}", target.imap_port()))
        .arg("--ca-file")
        .arg(&ca)
        .arg("--state")
        .arg(dir.join("state.sqlite"))
        .env("MAILFERRY_SOURCE_PASSWORD", PASSWORD)
        .env("MAILFERRY_TARGET_PASSWORD", PASSWORD)
        .output()
        .expect("run mailferry")
}

fn text(o: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read the report")).expect("JSON")
}

#[test]
fn a_copy_into_cyrus_warns_that_it_rewrites_and_verify_says_what_it_compared() {
    if !ServerKind::Dovecot.available() || !ServerKind::Cyrus.available() {
        return;
    }
    let messages = corpus();
    let rewritten = messages
        .iter()
        .filter(|m| munge_8bit_headers(&m.body) != m.body.as_ref())
        .count();
    assert!(rewritten > 0, "the corpus has 8-bit headers");
    let source = ServerKind::Dovecot.start('/').expect("start Dovecot");
    source.fill("alice", messages).expect("fill");
    let target = ServerKind::Cyrus.start('.').expect("start Cyrus");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("copy.json");

    let copy = mailferry(
        &["copy", "--report", &json.display().to_string()],
        &*source,
        &*target,
        dir.path(),
    );
    assert_eq!(copy.status.code(), Some(0), "{}", text(&copy));
    let r = report(&json);
    let check = &r["target_rewrites"];
    let compared = check["compared"].as_u64().expect("compared");
    let found = check["rewritten"].as_array().expect("rewritten").len();
    assert!(compared > 0 && found > 0, "{check}");
    assert!(found as u64 <= compared, "{check}");
    let stderr = String::from_utf8_lossy(&copy.stderr);
    assert!(
        stderr.contains("differently from what was sent") && stderr.contains("verify --read-back"),
        "{}",
        text(&copy)
    );

    // Plain verify: sizes match, so it passes, and says that bytes were not compared.
    let plain = mailferry(&["verify"], &*source, &*target, dir.path());
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));
    assert!(
        String::from_utf8_lossy(&plain.stdout).contains("NOT the message bytes"),
        "{}",
        text(&plain)
    );

    // verify --read-back names every rewritten message, and nothing else.
    let vjson = dir.path().join("verify.json");
    let full = mailferry(
        &[
            "verify",
            "--read-back",
            "--report",
            &vjson.display().to_string(),
        ],
        &*source,
        &*target,
        dir.path(),
    );
    assert_eq!(full.status.code(), Some(1), "{}", text(&full));
    let v = report(&vjson);
    let folders = v["verification"]["folders"].as_array().expect("folders");
    let named: usize = folders
        .iter()
        .map(|f| f["rewritten_by_target"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(named, rewritten, "{v}");
    for f in folders {
        for field in ["missing", "extra", "changed", "flags", "dates"] {
            assert_eq!(f[field].as_array().map_or(0, Vec::len), 0, "{field}: {f}");
        }
    }
}

#[test]
fn a_copy_into_dovecot_raises_no_rewrite_warning() {
    if !ServerKind::Dovecot.available() {
        return;
    }
    let source = ServerKind::Dovecot.start('/').expect("start Dovecot");
    source.fill("alice", corpus()).expect("fill");
    let target = ServerKind::Dovecot.start('.').expect("start Dovecot");
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("copy.json");
    let copy = mailferry(
        &["copy", "--report", &json.display().to_string()],
        &*source,
        &*target,
        dir.path(),
    );
    assert_eq!(copy.status.code(), Some(0), "{}", text(&copy));
    let check = &report(&json)["target_rewrites"];
    assert!(check["compared"].as_u64().expect("compared") > 0, "{check}");
    assert_eq!(
        check["rewritten"].as_array().map(Vec::len),
        Some(0),
        "{check}"
    );
    assert!(
        !String::from_utf8_lossy(&copy.stderr).contains("differently from what was sent"),
        "{}",
        text(&copy)
    );
}
