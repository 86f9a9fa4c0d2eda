//! Generated hostile input through mbox, Maildir (both layouts) and memory: messages that break
//! framing assumptions, hostile folder names, a folder tree 100 levels deep and 10,000 folders.
//! Each case goes through [`crate::chain`]: no panic, no silent change, no silent drop — and
//! for folder names, nothing written outside the store's root.

use std::path::Path;

use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::{
    Copier, CopyOptions, Flags, FolderPath, InternalDate, MemoryState, MemoryStore,
};

use crate::chain::{self, Compare, Kind};
use crate::support::files_under;

/// Every chain the generated cases go through.
const CHAINS: [&[Kind]; 3] = [
    &[Kind::Mbox, Kind::Memory],
    &[Kind::Maildir, Kind::Mbox, Kind::MaildirFs, Kind::Memory],
    &[Kind::MaildirFs, Kind::Maildir, Kind::Mbox, Kind::Memory],
];

fn nasty_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut long_header = b"X-Long: ".to_vec();
    long_header.extend(std::iter::repeat_n(b'h', 1 << 20));
    long_header.extend_from_slice(b"\r\nSubject: a 1 MB header line\r\n\r\nbody\r\n");
    vec![
        ("NUL in headers and body", b"Subject: nul\0here\r\nX-Nul: \0\0\r\n\r\nbody \0 with NUL\r\n\0".to_vec()),
        ("1 MB header line", long_header),
        ("no header/body separator", b"Subject: only headers\r\nFrom: a@b\r\nX-Last: no blank line".to_vec()),
        ("0 bytes", Vec::new()),
        ("only a newline", b"\n".to_vec()),
        ("bare CR line endings", b"Subject: cr\rFrom: a@b\r\rline one\rline two\r".to_vec()),
        ("CR before CRLF", b"Subject: crcrlf\r\n\r\nline\r\r\nline\r\r\r\n".to_vec()),
        ("mixed endings and a lone CR", b"Subject: mixed\r\n\nlf\ncrlf\r\nlone\rcr\r".to_vec()),
        (
            "From lines in the body",
            b"Subject: quoting\n\nFrom the desk of Ann\n>From quoted once\n>>From twice\nFrom Sat Jan  3 01:05:34 1996\n\nFrom \n".to_vec(),
        ),
        ("starts with a From line", b"From someone@example.org Sat Jan  3 01:05:34 1996\nSubject: inner\n\nbody\n".to_vec()),
        (
            "Status headers in the message",
            b"Status: RO\nX-Status: A\nX-Keywords: Fake\nSubject: status\n\nbody\n".to_vec(),
        ),
        (
            "invalid UTF-8 in headers",
            b"Subject: \xff\xfe\xc3\x28 bad\r\nFrom: \xe2\x82 <x@y>\r\nMessage-ID: <\xf0\x28\x8c\x28@x>\r\n\r\nbody\r\n".to_vec(),
        ),
        ("Content-Length lies", b"Content-Length: 3\nSubject: cl\n\nmuch longer than three\n\nFrom x Sat Jan  3 01:05:34 1996\n".to_vec()),
        ("blank lines only", b"\n\n\n\n".to_vec()),
        ("no final newline", b"Subject: x\n\nno newline at the end".to_vec()),
    ]
}

fn store_of(messages: impl IntoIterator<Item = (FolderPath, Vec<u8>)>) -> MemoryStore {
    let store = MemoryStore::new();
    for (i, (folder, body)) in messages.into_iter().enumerate() {
        let flags = Flags {
            seen: i % 2 == 0,
            flagged: i % 3 == 0,
            ..Flags::default()
        };
        let date = InternalDate::from_timestamp(1_300_000_000 + i as i64 * 61);
        store.insert(&folder, Bytes::from(body), flags, Some(date));
    }
    store
}

/// Runs a fresh `store()` through every chain; returns each chain's outcome.
async fn through_every_chain(
    label: &str,
    store: impl Fn() -> MemoryStore,
    compare: Compare,
) -> Vec<chain::Outcome> {
    let mut outcomes = Vec::new();
    for hops in CHAINS {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("stores");
        std::fs::create_dir(&root).expect("mkdir");
        let outcome = chain::run(store(), hops, &root, compare).await;
        chain::print_failures(&format!("{label} through {hops:?}"), &outcome);
        assert_eq!(outcome.end + outcome.failures.len(), outcome.start);
        // Whatever the names, nothing lands outside the stores' directory.
        let outside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "stores")
            .collect();
        assert!(
            outside.is_empty(),
            "{label}: written outside the root: {outside:?}"
        );
        outcomes.push(outcome);
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_arrive_intact_or_are_reported() {
    let store = || {
        store_of(
            nasty_messages()
                .into_iter()
                .map(|(_, body)| (FolderPath::inbox(), body)),
        )
    };
    let outcomes = through_every_chain("malformed messages", store, Compare::PerFolder).await;
    // These are all storable: none may fail.
    let names: Vec<&str> = nasty_messages().iter().map(|(n, _)| *n).collect();
    for (hops, outcome) in CHAINS.iter().zip(outcomes) {
        assert!(
            outcome.failures.is_empty() && outcome.folder_errors.is_empty(),
            "{hops:?}: {:#?} {:?} (cases: {names:?})",
            outcome.failures,
            outcome.folder_errors
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_crs_are_kept_and_mixed_endings_are_named_in_the_report() {
    let bodies: [&'static [u8]; 3] = [
        b"Subject: mac\r\rline one\rline two\r",
        b"Subject: mixed\r\n\nlf\ncrlf\r\n",
        b"Subject: lf\n\nbody\n",
    ];
    let source = store_of(bodies.iter().map(|b| (FolderPath::inbox(), b.to_vec())));
    let target = MemoryStore::new();
    let copier = Copier::new(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    let report = copier.run(plan).await.expect("copy");
    let inbox = &report.folders[0];
    assert_eq!(inbox.counts.copied, 3, "{report:#?}");
    // Stored as sent: lone CRs as they are, bare LFs as CRLF.
    let stored: Vec<Bytes> = target
        .messages(&FolderPath::inbox())
        .into_values()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        stored,
        [
            &b"Subject: mac\r\rline one\rline two\r"[..],
            b"Subject: mixed\r\n\r\nlf\r\ncrlf\r\n",
            b"Subject: lf\r\n\r\nbody\r\n",
        ]
    );
    let n = inbox.normalisation;
    assert_eq!(
        (n.lone_cr, n.bare_cr, n.bare_lf, n.mixed_endings),
        (4, 0, 5, 1)
    );
    // Only the mixed message is named: the others are their store's form, changed by nothing.
    let keys: Vec<String> = source
        .messages(&FolderPath::inbox())
        .into_keys()
        .map(|uid| uid.to_string())
        .collect();
    assert_eq!(inbox.changed.len(), 1, "{inbox:#?}");
    assert_eq!(inbox.changed[0].key, keys[1]);
    assert!(inbox.changed[0].reason.contains("mixed line endings"));
    let json = serde_json::to_value(&report).expect("report as JSON");
    assert_eq!(json["folders"][0]["normalisation"]["lone_cr"], 4);
    assert_eq!(json["folders"][0]["changed"][0]["key"], keys[1].as_str());
}

/// Names a source can hand us: control characters, NUL, path tricks, text that looks like
/// broken modified UTF-7 or like our own escapes, layout words.
/// (`Inbox` is left out: INBOX is case-insensitive, so stores rightly give it back as `INBOX`.)
const HOSTILE_NAMES: [&str; 16] = [
    "a\u{1}b",
    "tab\tname",
    "new\nline",
    "nul\0byte",
    "..",
    ".",
    "../../escape",
    "/",
    "a/b",
    "&Jjo",
    "&AGE-",
    "%2E%2E",
    "cur",
    "x.sbd",
    "dovecot-uidlist",
    "\u{7f}del",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_folder_names_keep_their_mail_inside_the_root() {
    let store = || {
        store_of(HOSTILE_NAMES.iter().enumerate().map(|(i, name)| {
            let body = format!("Subject: folder {i}\r\n\r\nin {name:?}\r\n").into_bytes();
            (FolderPath::new([*name, "child"]), body)
        }))
    };
    // Names are escaped reversibly, so they come back as they were, and nothing fails.
    let outcomes = through_every_chain("hostile folder names", store, Compare::PerFolder).await;
    for outcome in outcomes {
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
        assert_eq!(outcome.end, HOSTILE_NAMES.len());
    }
}

/// A Maildir written by another program, with directory names that are invalid UTF-8, invalid
/// modified UTF-7 or hold control characters: their mail is still copied, under some name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_maildir_folder_names_lose_no_mail() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let names: [&[u8]; 5] = [b".\xff\xfe", b".&Jjo", b".a\x01b", b".&-&-", b".%ZZ"];
    for (i, name) in names.iter().enumerate() {
        let folder = src.join(std::ffi::OsStr::from_bytes(name));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder.join(sub)).expect("mkdir");
        }
        let body = format!("Subject: odd folder {i}\n\nbody {i}\n");
        std::fs::write(folder.join(format!("cur/100{i}.x.host:2,S")), body).expect("write");
    }
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(src.join(sub)).expect("mkdir");
    }
    let source = mailferry_maildir::Maildir::open(&src, Default::default()).expect("open");
    let memory = MemoryStore::new();
    let report = crate::support::copy(
        std::sync::Arc::new(source),
        std::sync::Arc::new(memory.clone()),
    )
    .await;
    assert_eq!(report.totals.copied, names.len() as u64, "{report:#?}");
    let stored: usize = memory
        .folder_paths()
        .iter()
        .map(|f| memory.messages(f).len())
        .sum();
    assert_eq!(stored, names.len());
    println!(
        "undecodable Maildir names listed as {:?}",
        memory.folder_paths()
    );
    // And on through mbox and Maildir, under whatever names they were listed as.
    let copy = memory.clone();
    let outcomes = through_every_chain(
        "undecodable names",
        move || copy.clone_deep(),
        Compare::AllFolders,
    )
    .await;
    for outcome in outcomes {
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    }
}

trait CloneDeep {
    fn clone_deep(&self) -> MemoryStore;
}

impl CloneDeep for MemoryStore {
    /// A separate store with the same folders and messages (clones of a store share it).
    fn clone_deep(&self) -> MemoryStore {
        let out = MemoryStore::new();
        for f in self.folder_paths() {
            out.create_folder(&f, None);
            for m in self.messages(&f).into_values() {
                out.insert(&f, m.body, m.flags, m.internal_date);
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_tree_100_levels_deep_is_copied_or_reported() {
    let store = || {
        let mut path = FolderPath::new(["d0"]);
        let mut messages = Vec::new();
        for level in 0..100 {
            if level > 0 {
                path = path.child(format!("d{level}"));
            }
            let body = format!("Subject: level {level}\r\n\r\ndepth {level}\r\n").into_bytes();
            messages.push((path.clone(), body));
        }
        store_of(messages)
    };
    let outcomes = through_every_chain("a tree 100 levels deep", store, Compare::PerFolder).await;
    // mbox (nested `.sbd` directories) and Maildir's fs layout hold all 100 levels; Maildir++
    // puts the whole path in one directory name, and the deepest levels exceed the 255-byte
    // name limit: those folders fail, each with its reason (checked by the chain).
    assert!(
        outcomes[0].failures.is_empty(),
        "{:#?}",
        outcomes[0].failures
    );
    for outcome in &outcomes[1..] {
        assert!(
            outcome
                .folder_errors
                .iter()
                .all(|e| e.contains("File name too long"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_folders_each_with_one_message() {
    let started = std::time::Instant::now();
    let store = store_of((0..10_000).map(|i| {
        let body = format!("Subject: folder {i}\r\n\r\nbody {i}\r\n").into_bytes();
        (
            FolderPath::new([format!("f{:02}", i % 100), format!("g{i}")]),
            body,
        )
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let outcome = chain::run(
        store,
        &[Kind::Maildir, Kind::Mbox, Kind::Memory],
        dir.path(),
        Compare::PerFolder,
    )
    .await;
    chain::print_failures("10,000 folders", &outcome);
    assert!(outcome.failures.is_empty());
    assert_eq!(outcome.end, 10_000);
    assert!(count_dirs(&dir.path().join("0-Maildir")) >= 10_000);
    println!("10,000 folders: {:.1} s", started.elapsed().as_secs_f64());
}

fn count_dirs(root: &Path) -> usize {
    files_under(root)
        .iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("cur")))
        .count()
}
