//! Real-world mail (the shared corpora: broken MIME, bare LF, lone CRs, 8-bit headers, long
//! lines) survives memory → Dovecot → memory with identical canonical checksums. The few
//! messages with NUL bytes, which an IMAP literal cannot carry (Dovecot would store 0x80), are
//! refused as item errors saying so, and nothing else is. And the corpus plus generated
//! lone-CR, CR-before-line-end, mixed-ending and NUL cases, filled into a Dovecot as a delivery
//! agent would, arrive byte-identical by raw `BODY[]` read-back (not checksums) IMAP → IMAP,
//! IMAP → Maildir → IMAP and IMAP → mbox → IMAP. Reads `../../../shared/corpora` relative to the crate; outside CI a missing folder
//! only skips the test.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    Checksum, Copier, CopyOptions, Flags, FolderPath, InternalDate, MemoryState, MemoryStore,
    Report, Source, Target,
};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry_maildir::{Maildir, MaildirOptions};
use mailferry_mbox::Mbox;
use mailferry_testkit::corpus::GeneratedMessage;
use mailferry_testkit::{Dovecot, DovecotOptions};

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the shared corpora are missing at {}",
        dir.display()
    );
    eprintln!("note: skipping: no corpora at {}", dir.display());
    None
}

fn messages(dir: &Path, out: &mut Vec<Bytes>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            messages(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "eml" | "raw" | "txt"))
            && let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
        {
            out.push(Bytes::from(bytes));
        }
    }
}

/// Every corpus file that is a message, whatever its extension: not the expected-parse
/// `.json` files, `SOURCES.md`, dotfiles or empty files.
fn every_message(dir: &Path, out: &mut Vec<Bytes>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            every_message(&path, out);
        } else if !name.ends_with(".json")
            && !name.ends_with(".md")
            && let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
        {
            out.push(Bytes::from(bytes));
        }
    }
}

async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> Report {
    let copier = Copier::new(
        source,
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    copier.run(plan).await.expect("copy")
}

fn checksums(store: &MemoryStore, folder: &FolderPath) -> Vec<Checksum> {
    let mut v: Vec<Checksum> = store
        .messages(folder)
        .into_values()
        .map(|m| Checksum::of(&canonicalise(m.body).0))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_messages_round_trip_byte_for_byte_and_nul_bytes_are_refused() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let Some(dir) = corpus_dir() else {
        return;
    };
    let mut bodies = Vec::new();
    messages(&dir, &mut bodies);
    assert!(bodies.len() > 300, "found only {} messages", bodies.len());
    let folder = FolderPath::new(["Corpus"]);
    let source = MemoryStore::new();
    for body in &bodies {
        source.insert(&folder, body.clone(), Flags::default(), None);
    }
    let expected = MemoryStore::new();
    for body in bodies.iter().filter(|b| !b.contains(&0)) {
        expected.insert(&folder, body.clone(), Flags::default(), None);
    }
    // A Dovecot that stores what it is sent (see STORES_AS_SENT).
    let d = common::dovecot('.', STORES_AS_SENT);
    let imap = Arc::new(common::store(&d).await);
    let with_nul = bodies.iter().filter(|b| b.contains(&0)).count();
    assert!(with_nul > 0, "the corpora have messages with NUL bytes");
    let there = copy(Arc::new(source.clone()), imap.clone()).await;
    assert_eq!(there.totals.failed as usize, with_nul, "{there:#?}");
    assert!(
        there.folders[0]
            .failures
            .iter()
            .all(|f| f.reason.contains("NUL bytes")),
        "{there:#?}"
    );
    assert_eq!(there.totals.copied as usize, bodies.len() - with_nul);
    let back = MemoryStore::new();
    let report = copy(imap, Arc::new(back.clone())).await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert!(
        checksums(&back, &folder) == checksums(&expected, &folder),
        "some messages came back changed"
    );
}

/// Messages no corpus file has enough of: lone CRs (old Mac mail), a CR right before a line end,
/// mixed endings, NUL bytes, bare LF only, a final lone CR.
const GENERATED: [&[u8]; 8] = [
    b"Subject: old mac\r\rline one\rline two\r",
    b"Subject: cr before crlf\r\n\r\nline\r\r\nline\r\r\r\nend\r\n",
    b"Subject: nul\r\n\r\na\0b\r\n\0\r\n",
    b"Subject: mixed\r\nFrom: a@example.org\n\nlf\ncrlf\r\nlone\rend\r\r\n",
    b"Subject: lf only\nMessage-ID: <lf@example.org>\n\nbody\n",
    b"Subject: cr in a header\rX-Odd: yes\r\n\r\nbody\r\n",
    b"Subject: From quoting\r\n\r\nFrom me\r\n>From you\r\r\n>>From them\r\n",
    b"Subject: ends in a lone cr\r\n\r\nlast\r",
];

/// Dovecot's default (`mail_save_crlf = no`) stores an APPENDed message with LF line ends and
/// serves LF as CRLF, so a lone CR right before a CRLF (`x\r\r\n`) comes back as `x\r\n`, and
/// a lone CR at the very end of a message is dropped: the server changes those bytes, however
/// faithfully they are sent. With `mail_save_crlf = yes` it stores
/// the bytes as sent. The exact routes use that; `default_dovecot_changes_are_named_by_verify`
/// shows the default's changes named per message.
const STORES_AS_SENT: &str = "mail_save_crlf = yes\n";

/// Users of the one Dovecot the byte-exact test uses: the source and one target per route.
const USERS: [&str; 4] = ["source", "direct", "viamaildir", "viambox"];

async fn imap_store(d: &Dovecot, user: &str) -> Arc<ImapStore> {
    let config = ImapConfig::new(
        d.host(),
        d.imaps_port(),
        Security::Tls,
        Auth::Login {
            user: user.to_string(),
            password: format!("pw-{user}").into(),
        },
    )
    .with_ca_file(d.ca_pem_path());
    Arc::new(ImapStore::connect(config).await.expect("connect"))
}

/// Copies with a fresh state and asserts nothing failed and nothing was named as changed (the
/// source Dovecot serves every message in wire form, so no hop has a reason to change one);
/// then `verify` with read-back, which compares the bytes each store holds, must find a match.
async fn copy_exactly(route: &str, source: Arc<dyn Source>, target: Arc<dyn Target>) -> Report {
    let state = Arc::new(MemoryState::new());
    let copier = Copier::new(
        source.clone(),
        target.clone(),
        state.clone(),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    let report = copier.run(plan.clone()).await.expect("copy");
    assert_eq!(report.totals.failed, 0, "{route}: {report:#?}");
    let changed: Vec<_> = report.folders.iter().flat_map(|f| &f.changed).collect();
    assert!(changed.is_empty(), "{route}: {changed:#?}");
    let verification = mailferry_core::verify(
        source.as_ref(),
        target.as_ref(),
        state.as_ref(),
        &plan,
        &mailferry_core::VerifyOptions {
            migration: CopyOptions::default().migration,
            read_back: true,
            ..Default::default()
        },
    )
    .await
    .expect("verify");
    assert!(verification.is_match(), "{route}: {verification:#?}");
    report
}

/// Where the bytes of two servers' folders differ, message by message (as sorted multisets:
/// the order of arrival is not the claim).
fn differences(want: &[Vec<u8>], got: &[Vec<u8>]) -> Vec<String> {
    let (mut want, mut got) = (want.to_vec(), got.to_vec());
    want.sort();
    got.sort();
    let mut out = Vec::new();
    for m in &want {
        match got.iter().position(|g| g == m) {
            Some(i) => {
                got.swap_remove(i);
            }
            None => {
                let head = String::from_utf8_lossy(&m[..m.len().min(60)]).into_owned();
                out.push(format!("missing or changed ({} bytes): {head:?}", m.len()));
            }
        }
    }
    for g in got {
        let head = String::from_utf8_lossy(&g[..g.len().min(60)]).into_owned();
        out.push(format!(
            "arrived but not in the source ({} bytes): {head:?}",
            g.len()
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_to_imap_and_through_maildir_and_mbox_is_byte_exact_by_raw_body_read_back() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let Some(dir) = corpus_dir() else {
        return;
    };
    let mut corpus = Vec::new();
    every_message(&dir, &mut corpus);
    assert!(corpus.len() > 600, "found only {} messages", corpus.len());
    let d = Dovecot::start(DovecotOptions {
        users: USERS
            .iter()
            .map(|u| (u.to_string(), format!("pw-{u}")))
            .collect(),
        extra_config: STORES_AS_SENT.into(),
        ..DovecotOptions::default()
    })
    .expect("start dovecot");
    // The source is filled as a delivery agent would, not through the code under test.
    let folders = [
        ("Corpus", corpus),
        (
            "Generated",
            GENERATED.iter().map(|b| Bytes::from_static(b)).collect(),
        ),
    ];
    let mut n = 0;
    for (name, bodies) in &folders {
        let filled = d
            .fill(
                "source",
                bodies.iter().map(|body| {
                    n += 1;
                    GeneratedMessage {
                        folder: FolderPath::new([*name]),
                        body: body.clone(),
                        flags: Flags::default(),
                        internal_date: InternalDate::from_timestamp(1_500_000_000 + n * 60),
                    }
                }),
            )
            .expect("fill the source");
        assert_eq!(filled as usize, bodies.len());
    }

    let source = imap_store(&d, "source").await;
    let direct = copy_exactly(
        "IMAP → IMAP",
        source.clone(),
        imap_store(&d, "direct").await,
    )
    .await;
    assert!(
        direct
            .folders
            .iter()
            .map(|f| f.normalisation.lone_cr)
            .sum::<u64>()
            > 0
    );

    let local = tempfile::tempdir().expect("tempdir");
    let maildir = Arc::new(
        Maildir::create(local.path().join("Maildir"), MaildirOptions::default()).expect("maildir"),
    );
    copy_exactly("IMAP → Maildir", source.clone(), maildir.clone()).await;
    copy_exactly(
        "Maildir → IMAP",
        maildir,
        imap_store(&d, "viamaildir").await,
    )
    .await;

    let mbox = Arc::new(Mbox::open(local.path().join("mbox")).expect("mbox"));
    copy_exactly("IMAP → mbox", source.clone(), mbox.clone()).await;
    copy_exactly("mbox → IMAP", mbox, imap_store(&d, "viambox").await).await;

    let mut raw = common::raw::RawSession::login(&d, "source", "pw-source").await;
    let mut problems = Vec::new();
    let mut compared = 0;
    for (name, bodies) in &folders {
        let want = raw.bodies(name).await;
        assert_eq!(want.len(), bodies.len(), "{name} in the source");
        for user in &USERS[1..] {
            let mut target = common::raw::RawSession::login(&d, user, &format!("pw-{user}")).await;
            let got = target.bodies(name).await;
            for p in differences(&want, &got) {
                problems.push(format!("{user}/{name}: {p}"));
            }
            compared += got.len();
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!("{compared} messages byte-identical to the source by raw BODY[] on three routes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_dovecot_changes_are_named_by_verify() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    // Dovecot's default configuration: it rewrites some lone CRs on APPEND (see STORES_AS_SENT).
    let d = Dovecot::start(DovecotOptions {
        users: ["source", "target"]
            .iter()
            .map(|u| (u.to_string(), format!("pw-{u}")))
            .collect(),
        ..DovecotOptions::default()
    })
    .expect("start dovecot");
    let folder = FolderPath::new(["Generated"]);
    d.fill(
        "source",
        GENERATED
            .iter()
            .enumerate()
            .map(|(i, body)| GeneratedMessage {
                folder: folder.clone(),
                body: Bytes::from_static(body),
                flags: Flags::default(),
                internal_date: InternalDate::from_timestamp(1_500_000_000 + i as i64 * 60),
            }),
    )
    .expect("fill the source");
    let (source, target) = (
        imap_store(&d, "source").await,
        imap_store(&d, "target").await,
    );
    let state = Arc::new(MemoryState::new());
    let copier = Copier::new(
        source.clone(),
        target.clone(),
        state.clone(),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    let report = copier.run(plan.clone()).await.expect("copy");
    assert_eq!(report.totals.failed, 0, "{report:#?}");

    let want = common::raw::RawSession::login(&d, "source", "pw-source")
        .await
        .bodies("Generated")
        .await;
    let got = common::raw::RawSession::login(&d, "target", "pw-target")
        .await
        .bodies("Generated")
        .await;
    // Messages the server changed: what the source has and the target does not.
    let changed_by_server = differences(&want, &got)
        .iter()
        .filter(|d| d.starts_with("missing"))
        .count();
    assert!(changed_by_server > 0, "the default Dovecot changed nothing");

    let verification = mailferry_core::verify(
        source.as_ref(),
        target.as_ref(),
        state.as_ref(),
        &plan,
        &mailferry_core::VerifyOptions {
            migration: CopyOptions::default().migration,
            read_back: true,
            ..Default::default()
        },
    )
    .await
    .expect("verify");
    let generated = verification
        .folders
        .iter()
        .find(|f| f.source == folder)
        .expect("the folder was verified");
    assert!(
        generated.missing.is_empty() && generated.extra.is_empty(),
        "{generated:#?}"
    );
    // Each message the server changed is named, with where its bytes differ.
    assert_eq!(
        generated.rewritten_by_target.len(),
        changed_by_server,
        "{generated:#?}"
    );
    assert!(
        generated
            .rewritten_by_target
            .iter()
            .all(|d| d.detail.contains("bytes differ from offset")),
        "{generated:#?}"
    );
    assert!(!verification.is_match());
}
