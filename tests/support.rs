//! Helpers shared by the crash, hostile-input and command-line tests: the real `mailferry`
//! binary (built once per test process), the shared corpus directory, a seeded RNG, and
//! [`snapshot`], which reads a whole store through the [`Source`] trait alone — not through the
//! copier — so the copier's results are checked by an independent path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use mailferry_core::normalise::to_wire;
use mailferry_core::{
    Checksum, Copier, CopyOptions, FolderPath, MemoryState, Report, Source, Target,
};

/// The `mailferry` binary, built with `cargo build -p mailferry-cli` the first time it is asked
/// for. Cargo's JSON messages name the executable, so a custom target directory works too.
pub fn mailferry_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "-p",
                "mailferry-cli",
                "--bin",
                "mailferry",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run cargo build -p mailferry-cli");
        assert!(
            output.status.success(),
            "cargo build -p mailferry-cli failed"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "mailferry")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no mailferry executable")
    })
}

/// A `mailferry` command, quiet, with no password variables leaking in from the environment.
pub fn mailferry() -> Command {
    let mut cmd = Command::new(mailferry_bin());
    cmd.env_remove("MAILFERRY_SOURCE_PASSWORD")
        .env_remove("MAILFERRY_TARGET_PASSWORD")
        .env("NO_COLOR", "1");
    cmd
}

/// The shared corpus of real-world messages, or `None` (with a note) when it is absent outside
/// CI. In CI (`CI=true`) a missing corpus fails the test.
pub fn corpora_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the corpus {} is missing, and CI=true",
        dir.display()
    );
    eprintln!(
        "note: {} is missing; this test checks nothing here",
        dir.display()
    );
    None
}

/// SplitMix64: a seeded, printable source of randomness for kill delays.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }
}

/// What is compared per message: a hash of its bytes in wire form, flags (IMAP tokens) and
/// internal date.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Msg {
    /// BLAKE3 of the wire-form bytes (an LF store's storage form undone, nothing else): not of
    /// the canonical form, which would hide a lone CR turned into a line ending.
    pub checksum: Checksum,
    /// Flags and keywords, space-separated.
    pub flags: String,
    /// Internal date, whole seconds.
    pub date: Option<i64>,
}

/// A whole store: per folder, per source key, the message.
pub type Snapshot = BTreeMap<FolderPath, BTreeMap<String, Msg>>;

/// Reads every selectable folder and message of `source` through the `Source` trait.
pub async fn snapshot(source: &dyn Source) -> Snapshot {
    let mut out = Snapshot::new();
    let folders = source.list_folders().await.expect("list folders");
    for folder in folders.into_iter().filter(|f| f.selectable) {
        let metas: Vec<_> = source
            .list_items(&folder.path, None)
            .map(|m| m.unwrap_or_else(|e| panic!("listing {}: {e}", folder.path)))
            .collect()
            .await;
        let mut messages = BTreeMap::new();
        let mut fetched = source.fetch(&folder.path, metas);
        while let Some(item) = fetched.next().await {
            let item = item.unwrap_or_else(|e| panic!("fetching from {}: {e}", folder.path));
            let (wire, _) = to_wire(item.body);
            messages.insert(
                item.meta.key.0.clone(),
                Msg {
                    checksum: Checksum::of(&wire),
                    flags: item.meta.flags.to_string(),
                    date: item.meta.internal_date.map(|d| d.timestamp),
                },
            );
        }
        drop(fetched);
        out.insert(folder.path, messages);
    }
    out
}

/// Per non-empty folder, the sorted multiset of messages (keys differ between stores).
pub fn multisets(snapshot: &Snapshot) -> BTreeMap<FolderPath, Vec<Msg>> {
    snapshot
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(f, m)| {
            let mut v: Vec<Msg> = m.values().cloned().collect();
            v.sort();
            (f.clone(), v)
        })
        .collect()
}

/// The number of messages in a snapshot.
pub fn count(snapshot: &Snapshot) -> usize {
    snapshot.values().map(BTreeMap::len).sum()
}

/// Explains how two multisets differ, folder by folder (for assertion messages).
pub fn describe_difference(
    want: &BTreeMap<FolderPath, Vec<Msg>>,
    got: &BTreeMap<FolderPath, Vec<Msg>>,
) -> String {
    let mut out = String::new();
    let folders: std::collections::BTreeSet<_> = want.keys().chain(got.keys()).collect();
    for f in folders {
        let (w, g) = (
            want.get(f).cloned().unwrap_or_default(),
            got.get(f).cloned().unwrap_or_default(),
        );
        if w == g {
            continue;
        }
        let missing = w.iter().filter(|m| !g.contains(m)).count();
        let extra = g.iter().filter(|m| !w.contains(m)).count();
        out.push_str(&format!(
            "{f}: want {} got {} ({missing} missing or changed, {extra} extra or changed)\n",
            w.len(),
            g.len()
        ));
        for m in g.iter().filter(|m| !w.contains(m)).take(3) {
            let same_sum = w.iter().find(|x| x.checksum == m.checksum);
            out.push_str(&format!(
                "  got {m:?}; source has same bytes as {same_sum:?}\n"
            ));
        }
    }
    out
}

/// Copies every folder of `source` into `target` with a fresh state and default options.
pub async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> Report {
    let copier = Copier::new(
        source,
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let jobs = copier.identity_plan().await.expect("list source folders");
    copier.run(jobs).await.expect("copy")
}

/// Every regular file under `dir`, recursively, in name order.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Messages stored in a Maildir tree: files in `cur/` and `new/` directories.
pub fn maildir_message_files(root: &Path) -> usize {
    files_under(root)
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "cur" || n == "new")
        })
        .count()
}

/// Messages mailferry wrote to an mbox tree: its separator lines (body lines starting `From `
/// are always quoted by the writer, so they are not counted).
pub fn mbox_separators(root: &Path) -> usize {
    files_under(root)
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| {
            b.split(|&c| c == b'\n')
                .filter(|l| l.starts_with(b"From MAILER-DAEMON "))
                .count()
        })
        .sum()
}
