//! The built `mailferry` binary against real Dovecot servers: exit codes, the report's schema,
//! resumption, TLS refusal, and that no password ever appears in any output, log, report or
//! state file, at any verbosity.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailferry_core::FolderPath;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};
use serde_json::Value;

const SOURCE_PASSWORD: &str = "source-Secr3t-!pw";
const TARGET_PASSWORD: &str = "target-Secr3t-!pw";

fn server(delimiter: char, password: &str, extra: &str) -> Dovecot {
    Dovecot::start(DovecotOptions {
        delimiter,
        users: vec![("alice".into(), password.into())],
        extra_config: extra.into(),
    })
    .expect("start Dovecot")
}

fn url(d: &Dovecot) -> String {
    format!("imap://alice@{}:{}", d.host(), d.imap_port())
}

/// Both instances' CAs in one PEM bundle, as `--ca-file` takes.
fn ca_bundle(dir: &Path, servers: &[&Dovecot]) -> PathBuf {
    let mut pem = String::new();
    for s in servers {
        pem.push_str(&std::fs::read_to_string(s.ca_pem_path()).expect("read CA"));
    }
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).expect("write CA bundle");
    path
}

fn mailferry(args: &[&str], passwords: (&str, &str)) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .env("MAILFERRY_SOURCE_PASSWORD", passwords.0)
        .env("MAILFERRY_TARGET_PASSWORD", passwords.1)
        .env("XDG_DATA_HOME", std::env::temp_dir())
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

fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [SOURCE_PASSWORD, TARGET_PASSWORD] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a password appears in {what}"
        );
    }
}

fn filled_source(count: usize) -> Dovecot {
    let source = server('/', SOURCE_PASSWORD, "");
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Projets", "Été"]),
    ];
    source
        .fill(
            "alice",
            CorpusSpec::new(count, SizeMix::small())
                .with_quirks()
                .in_folders(folders)
                .generate(),
        )
        .expect("fill");
    source
}

#[test]
fn copies_between_servers_resumes_and_verifies_with_a_documented_report() {
    if !require_dovecot() {
        return;
    }
    let source = filled_source(300);
    let target = server('.', TARGET_PASSWORD, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_bundle(dir.path(), &[&source, &target]);
    let state = dir.path().join("state.sqlite");
    let report = dir.path().join("report.json");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "copy".to_string(),
            url(&source),
            url(&target),
            "--ca-file".into(),
            ca.display().to_string(),
            "--state".into(),
            state.display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        mailferry(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            (SOURCE_PASSWORD, TARGET_PASSWORD),
        )
    };
    let first = run(&["-vvv"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert_no_secret(
        "the output at -vvv",
        &[first.stdout.clone(), first.stderr.clone()].concat(),
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(json["command"], "copy");
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["exit_code"], 0);
    assert!(
        json["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("imap://alice@127.0.0.1:"))
    );
    let totals = &json["copy"]["totals"];
    for field in [
        "seen",
        "copied",
        "already_copied",
        "skipped_existing",
        "filtered",
        "failed",
        "bytes",
    ] {
        assert!(totals[field].is_u64(), "totals.{field} missing: {totals}");
    }
    assert_eq!(totals["copied"], 300);
    assert!(json["copy"]["duration_secs"].is_f64() && json["copy"]["items_per_sec"].is_f64());
    let folders = json["copy"]["folders"].as_array().expect("folders");
    assert!(
        folders
            .iter()
            .any(|f| f["source"] == serde_json::json!(["Projets", "Été"]))
    );
    assert!(
        folders
            .iter()
            .all(|f| f["failures"].as_array().is_some_and(Vec::is_empty))
    );
    assert_no_secret("the report", &std::fs::read(&report).expect("report"));

    let second = run(&["--log-format", "json", "-vvv"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_no_secret(
        "the JSON log",
        &[second.stdout.clone(), second.stderr.clone()].concat(),
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(json["copy"]["totals"]["copied"], 0, "a re-run copied again");

    let verify = mailferry(
        &[
            "verify",
            &url(&source),
            &url(&target),
            "--read-back",
            "--ca-file",
            &ca.display().to_string(),
            "--state",
            &state.display().to_string(),
        ],
        (SOURCE_PASSWORD, TARGET_PASSWORD),
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("match"));
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", state.display()));
        if let Ok(bytes) = std::fs::read(&p) {
            assert_no_secret("the state database", &bytes);
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is not private", p.display());
        }
    }
}

#[test]
fn a_wrong_password_exits_3_naming_the_account_but_not_the_password() {
    if !require_dovecot() {
        return;
    }
    let source = filled_source(5);
    let target = server('.', TARGET_PASSWORD, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_bundle(dir.path(), &[&source, &target]);
    let report = dir.path().join("report.json");
    for format in ["text", "json"] {
        let out = mailferry(
            &[
                "copy",
                &url(&source),
                &url(&target),
                "--ca-file",
                &ca.display().to_string(),
                "--report",
                &report.display().to_string(),
                "-vvv",
                "--log-format",
                format,
                "--state",
                &dir.path().join("s.sqlite").display().to_string(),
            ],
            (SOURCE_PASSWORD, "not-the-"),
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("alice@127.0.0.1"),
            "the error names the account: {stderr}"
        );
        assert!(
            !stderr.contains("not-the-"),
            "the wrong password is echoed: {stderr}"
        );
        assert_no_secret(
            "a failed run's output",
            &[out.stdout.clone(), out.stderr.clone()].concat(),
        );
        let json: Value =
            serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
        assert_eq!(json["outcome"], "error");
        assert_eq!(json["exit_code"], 3);
    }
}

#[test]
fn an_untrusted_certificate_is_refused_with_advice() {
    if !require_dovecot() {
        return;
    }
    let source = filled_source(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let imaps = format!("imaps://alice@{}:{}", source.host(), source.imaps_port());
    let out = mailferry(
        &[
            "copy",
            &imaps,
            &format!("maildir:{}", dir.path().join("out").display()),
            "--state",
            &dir.path().join("s.sqlite").display().to_string(),
        ],
        (SOURCE_PASSWORD, ""),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("certificate") && stderr.contains("--ca-file"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("out").join("cur").exists()
            || std::fs::read_dir(dir.path().join("out/cur"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );
}

#[test]
fn a_message_the_target_refuses_exits_1_and_is_reported_with_the_reason() {
    if !require_dovecot() {
        return;
    }
    let source = filled_source(20);
    // One 40 KB message among small ones; the target refuses anything over 20 KB.
    let big = mailferry_testkit::corpus::GeneratedMessage {
        folder: FolderPath::inbox(),
        body: format!(
            "Message-ID: <big@cli.test>\r\nSubject: big\r\n\r\n{}\r\n",
            "y".repeat(40_000)
        )
        .into_bytes()
        .into(),
        flags: Default::default(),
        internal_date: mailferry_core::InternalDate::from_timestamp(1_700_000_000),
    };
    source.fill("alice", [big]).expect("fill big");
    let limit = "protocol imap {\n  mail_plugins = $mail_plugins quota\n}\nplugin {\n  quota = count:User quota\n  quota_vsizes = yes\n  quota_max_mail_size = 20k\n}\n";
    let target = server('.', TARGET_PASSWORD, limit);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_bundle(dir.path(), &[&source, &target]);
    let report = dir.path().join("report.json");
    let out = mailferry(
        &[
            "copy",
            &url(&source),
            &url(&target),
            "--ca-file",
            &ca.display().to_string(),
            "--report",
            &report.display().to_string(),
            "--state",
            &dir.path().join("s.sqlite").display().to_string(),
        ],
        (SOURCE_PASSWORD, TARGET_PASSWORD),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(json["outcome"], "items_failed");
    assert_eq!(json["copy"]["totals"]["failed"], 1);
    assert_eq!(json["copy"]["totals"]["copied"], 20);
    let failures: Vec<&Value> = json["copy"]["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .flat_map(|f| f["failures"].as_array().expect("failures"))
        .collect();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{failures:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("failed:"),
        "the summary lists the failure: {}",
        text(&out)
    );
}

#[test]
fn usage_errors_exit_2_and_a_password_in_a_url_is_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mailferry(
        &[
            "copy",
            "imaps://alice:hunter2-secret@example.org",
            "maildir:/tmp/x",
        ],
        ("", ""),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("hunter2-secret"), "{}", text(&out));
    let out = mailferry(&["copy", "ftp://x", "maildir:/tmp/x"], ("", ""));
    assert_eq!(out.status.code(), Some(2));
    let out = mailferry(
        &[
            "copy",
            &format!("maildir:{}", dir.path().join("missing").display()),
            "maildir:/tmp/x",
            "--state",
            &dir.path().join("s").display().to_string(),
        ],
        ("", ""),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = mailferry(&["copy", "--bogus-option"], ("", ""));
    assert_eq!(out.status.code(), Some(2));
    // No password anywhere for an IMAP endpoint, and no terminal to prompt on.
    let out = Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(["folders", "imap://alice@127.0.0.1:9"])
        .env_remove("MAILFERRY_SOURCE_PASSWORD")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAILFERRY_SOURCE_PASSWORD"));
}

#[test]
fn a_dry_run_against_imap_creates_nothing() {
    if !require_dovecot() {
        return;
    }
    let source = filled_source(60);
    let target = server('.', TARGET_PASSWORD, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_bundle(dir.path(), &[&source, &target]);
    let state = dir.path().join("state.sqlite");
    let out = mailferry(
        &[
            "copy",
            &url(&source),
            &url(&target),
            "--dry-run",
            "--ca-file",
            &ca.display().to_string(),
            "--state",
            &state.display().to_string(),
            "--map",
            "Archive/2024=Old/2024",
        ],
        (SOURCE_PASSWORD, TARGET_PASSWORD),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Old/2024"),
        "the plan shows the mapping: {stdout}"
    );
    assert!(!state.exists(), "a dry run wrote a state file");
    let listed = mailferry(
        &[
            "folders",
            &url(&target),
            "--ca-file",
            &ca.display().to_string(),
            "--json",
        ],
        (TARGET_PASSWORD, ""),
    );
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    let folders: Value = serde_json::from_slice(&listed.stdout).expect("folders JSON");
    assert!(
        folders
            .as_array()
            .expect("array")
            .iter()
            .all(|f| f["path"] != serde_json::json!(["Old", "2024"])),
        "a dry run created a folder: {folders}"
    );
}
