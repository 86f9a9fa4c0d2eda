//! The audit manifest end to end, with the real command: `copy --manifest` lists every copied
//! message (as many lines as the report's `copied`, its BLAKE3 digest in the report), a re-run
//! appends a second run's member, `verify --manifest FILE TARGET` passes on the untouched
//! target without the source, and after the target is tampered with (one message's bytes
//! changed with its date kept, one deleted, one flagged) it exits 1 naming exactly those three.
//!
//! Local Maildir stores: what is under test is the manifest, which every backend feeds the same
//! way (through the copier's target and state store), and Maildir files are easy to tamper with.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use mailferry::maildir::{Maildir, MaildirOptions};
use mailferry_core::{FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use serde_json::Value;

/// Writes `count` generated messages (seed `seed`) into the Maildir at `dir` (created or
/// extended).
fn add_messages(dir: &Path, count: usize, seed: u64) {
    let mut spec = CorpusSpec::new(count, SizeMix::small()).in_folders(vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Projets", "Été"]),
    ]);
    spec.seed = seed;
    let memory = MemoryStore::new();
    for m in spec.messages() {
        memory.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }
    let store = if dir.exists() {
        Maildir::open(dir, MaildirOptions::default())
    } else {
        Maildir::create(dir, MaildirOptions::default())
    }
    .expect("open the source Maildir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(copy_all(
        Arc::new(memory),
        Arc::new(store),
        Arc::new(MemoryState::new()),
    ));
    assert_eq!(report.totals.copied, count as u64);
}

fn mailferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailferry"))
        .args(args)
        .output()
        .expect("run mailferry")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read JSON")).expect("JSON")
}

/// The manifest's lines, decoded with a plain gzip reader (as `zcat` would).
fn lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    MultiGzDecoder::new(std::fs::File::open(path).expect("manifest"))
        .read_to_string(&mut text)
        .expect("a complete gzip stream");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The Maildir file holding the message with this unique name, anywhere under `root`.
fn message_file(root: &Path, key: &str) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == key || n.starts_with(&format!("{key}:")))
            {
                return path;
            }
        }
    }
    panic!("no file for {key} under {}", root.display());
}

fn copy(src: &Path, dst: &Path, dir: &Path, manifest: &Path, report: &Path) -> Value {
    let out = mailferry(&[
        "copy",
        &format!("maildir:{}", src.display()),
        &format!("maildir:{}", dst.display()),
        "--state",
        &dir.join("state.sqlite").display().to_string(),
        "--manifest",
        &manifest.display().to_string(),
        "--report",
        &report.display().to_string(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    json(report)
}

#[test]
fn a_manifest_round_trips_and_verify_names_what_was_tampered_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (src, dst) = (root.join("src"), root.join("dst"));
    let manifest = root.join("audit").join("alice.manifest.jsonl.gz");
    let report_path = root.join("report.json");
    add_messages(&src, 60, 1);

    let report = copy(&src, &dst, root, &manifest, &report_path);
    let copied = report["copy"]["totals"]["copied"].as_u64().expect("copied");
    assert_eq!(copied, 60);
    assert_eq!(report["manifest"]["entries"], copied);
    let digest = blake3::hash(&std::fs::read(&manifest).expect("manifest"))
        .to_hex()
        .to_string();
    assert_eq!(report["manifest"]["blake3"], digest.as_str());
    let first = lines(&manifest);
    assert_eq!(
        first.len() as u64,
        copied + 1,
        "a header and one line per copy"
    );
    assert_eq!(first[0]["mailferry_manifest"], 1);
    for line in &first[1..] {
        for field in ["source_key", "target_key", "size", "checksum", "flags"] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
        assert!(line["internal_date"].is_string(), "{line}");
    }

    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--manifest"];
        let m = manifest.display().to_string();
        let d = format!("maildir:{}", dst.display());
        args.push(&m);
        args.push(&d);
        args.extend_from_slice(extra);
        mailferry(&args)
    };
    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the target matches"));

    // A second run copies only what is new and appends its own member.
    add_messages(&src, 7, 2);
    let report = copy(&src, &dst, root, &manifest, &report_path);
    assert_eq!(report["copy"]["totals"]["copied"], 7);
    assert_eq!(report["manifest"]["entries"], 7);
    assert_eq!(report["manifest"]["total_entries"], 67);
    let all = lines(&manifest);
    assert_eq!(all.len(), 67 + 2);
    assert_eq!(
        all.iter()
            .filter(|l| !l["mailferry_manifest"].is_null())
            .count(),
        2
    );
    let out = verify(&["--report", &root.join("verify.json").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = json(&root.join("verify.json"));
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["manifest_check"]["entries"], 67);
    assert_eq!(v["manifest_check"]["runs"], 2);

    // Tamper: change one message's bytes (keeping its date), delete one, flag one.
    let entries: Vec<&Value> = all
        .iter()
        .filter(|l| l["mailferry_manifest"].is_null())
        .collect();
    let key = |e: &Value| e["target_key"].as_str().expect("key").to_string();
    let changed = key(entries[3]);
    let deleted = key(entries[10]);
    let flagged_entry = entries
        .iter()
        .skip(20)
        .find(|e| {
            !e["flags"]
                .as_array()
                .expect("flags")
                .iter()
                .any(|f| f == "\\Flagged")
        })
        .expect("an unflagged message");
    let flagged = key(flagged_entry);

    let path = message_file(&dst, &changed);
    let mtime = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    let mut body = std::fs::read(&path).expect("read");
    let at = body.len() - 3;
    body[at] = if body[at] == b'X' { b'Y' } else { b'X' };
    std::fs::write(&path, &body).expect("tamper");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .expect("keep the date");
    std::fs::remove_file(message_file(&dst, &deleted)).expect("delete");
    let path = message_file(&dst, &flagged);
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let (unique, info) = name.split_once(":2,").expect("a Maildir info");
    let mut letters: Vec<char> = info.chars().chain(['F']).collect();
    letters.sort_unstable();
    let renamed = path.with_file_name(format!(
        "{unique}:2,{}",
        letters.into_iter().collect::<String>()
    ));
    std::fs::rename(&path, renamed).expect("flag");

    let out = verify(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let differ: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("differ:"))
        .collect();
    assert_eq!(differ.len(), 3, "{stdout}");
    let names = |k: &str, what: &str| {
        differ
            .iter()
            .any(|l| l.contains(&format!(" {k} ")) && l.contains(what))
    };
    assert!(names(&changed, "content changed"), "{stdout}");
    assert!(names(&deleted, "not in the target"), "{stdout}");
    assert!(names(&flagged, "flags"), "{stdout}");

    // verify --manifest takes only the target.
    let out = mailferry(&[
        "verify",
        "--manifest",
        &manifest.display().to_string(),
        &format!("maildir:{}", src.display()),
        &format!("maildir:{}", dst.display()),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// The same round trip with a real IMAP target (Dovecot): target keys are APPENDUIDs, read back
/// by UID FETCH. The target is then changed over IMAP itself (one message expunged, one
/// flagged), as a user or a server-side rule would.
#[test]
fn a_manifest_checks_an_imap_target_and_names_what_changed_there() {
    use mailferry::imap::{Auth, ImapConfig, ImapStore, Secret, Security};
    use mailferry_core::{Flags, Target, TargetKey};
    use mailferry_testkit::{Dovecot, DovecotOptions, require_dovecot};

    if !require_dovecot() {
        return;
    }
    let dovecot = Dovecot::start(DovecotOptions::default()).expect("start Dovecot");
    let (user, password) = dovecot.login();
    let (user, password) = (user.to_string(), password.to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let src = root.join("src");
    add_messages(&src, 30, 3);
    let target = format!("imap://{user}@{}:{}", dovecot.host(), dovecot.imap_port());
    let ca = dovecot.ca_pem_path().display().to_string();
    let manifest = root.join("alice.jsonl.gz");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mailferry"))
            .args(args)
            .env("MAILFERRY_TARGET_PASSWORD", &password)
            .output()
            .expect("run mailferry")
    };
    let out = run(&[
        "copy",
        &format!("maildir:{}", src.display()),
        &target,
        "--ca-file",
        &ca,
        "--state",
        &root.join("state.sqlite").display().to_string(),
        "--manifest",
        &manifest.display().to_string(),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let verify = || {
        run(&[
            "verify",
            "--manifest",
            &manifest.display().to_string(),
            &target,
            "--ca-file",
            &ca,
        ])
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("30 messages"),
        "{}",
        text(&out)
    );

    let entries: Vec<Value> = lines(&manifest)
        .into_iter()
        .filter(|l| l["mailferry_manifest"].is_null())
        .collect();
    let in_inbox: Vec<&Value> = entries
        .iter()
        .filter(|e| e["target_folder"] == serde_json::json!(["INBOX"]))
        .collect();
    assert!(in_inbox.len() >= 2, "{entries:?}");
    let (gone, flagged) = (in_inbox[0], in_inbox[1]);
    let key = |e: &Value| e["target_key"].as_str().expect("key").to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = ImapConfig::new(
            dovecot.host(),
            dovecot.imap_port(),
            Security::StartTls,
            Auth::Login {
                user: user.clone(),
                password: Secret::new(password.clone()),
            },
        )
        .with_ca_file(dovecot.ca_pem_path());
        let store = ImapStore::connect(config).await.expect("connect");
        let inbox = FolderPath::inbox();
        store
            .delete(&inbox, vec![TargetKey::from(key(gone).as_str())])
            .await
            .expect("expunge one");
        let mut flags = Flags::from_imap(
            flagged["flags"]
                .as_array()
                .expect("flags")
                .iter()
                .filter_map(Value::as_str),
        );
        flags.flagged = !flags.flagged;
        store
            .set_flags(
                &inbox,
                vec![(TargetKey::from(key(flagged).as_str()), flags)],
            )
            .await
            .expect("flag one");
    });
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let differ: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("differ:"))
        .collect();
    assert_eq!(differ.len(), 2, "{stdout}");
    assert!(
        differ
            .iter()
            .any(|l| l.contains(&format!(" {} ", key(gone))) && l.contains("not in the target")),
        "{stdout}"
    );
    assert!(
        differ
            .iter()
            .any(|l| l.contains(&format!(" {} ", key(flagged))) && l.contains("flags")),
        "{stdout}"
    );
}
