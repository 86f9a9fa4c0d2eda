//! Re-checking a target against a manifest, without the source: every listed target key must be
//! there, its bytes read back must have the listed checksum, and its flags and internal date must
//! be the listed ones (keywords and dates only where the target stores them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use mailferry_core::futures_util::StreamExt;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Checksum, ExistingItem, FolderPath, InternalDate, Result, Target, TargetKey};
use serde::{Deserialize, Serialize};

use super::{Entry, digest, scan};

/// Keys read back per request: bounds the keys held, while each body is dropped once hashed.
const READ_BACK_CHUNK: usize = 256;

/// One way the target differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDifference {
    /// The target folder.
    pub folder: FolderPath,
    /// The target's key.
    pub target_key: String,
    /// The source folder and key it was copied from.
    pub source: String,
    /// What differs.
    pub detail: String,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestCheck {
    /// The manifest.
    pub manifest: PathBuf,
    /// BLAKE3 of the manifest file: compare with the `blake3` in the copy's report.
    pub blake3: String,
    /// Runs recorded in it.
    pub runs: usize,
    /// Messages listed.
    pub entries: u64,
    /// Target folders checked.
    pub folders: usize,
    /// The file ends inside a run's member (that run was killed and never resumed); the
    /// complete lines before were checked.
    pub torn: bool,
    /// Every difference, in manifest order per folder.
    pub differences: Vec<ManifestDifference>,
}

impl ManifestCheck {
    /// Whether the target holds every listed message as listed.
    pub fn is_match(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Entries held at once by [`check`] (a few hundred bytes each): folders are checked in passes
/// over the file, each pass keeping the entries of as many whole folders as fit.
const ENTRIES_PER_PASS: usize = 200_000;

/// Checks `target` against the manifest at `path`.
pub async fn check(target: &dyn Target, path: &Path) -> Result<ManifestCheck> {
    check_in_passes(target, path, ENTRIES_PER_PASS).await
}

/// [`check`], holding the entries of at most `per_pass` messages at once (or of one folder, if
/// it alone has more): a first pass counts the entries per folder, then each pass reads the
/// entries of a group of folders.
pub(crate) async fn check_in_passes(
    target: &dyn Target,
    path: &Path,
    per_pass: usize,
) -> Result<ManifestCheck> {
    let blake3 = digest(path)?;
    let mut counts: BTreeMap<FolderPath, usize> = BTreeMap::new();
    let census = scan(path, |e| {
        *counts.entry(e.target_folder.clone()).or_default() += 1;
        false
    })?;
    let mut out = ManifestCheck {
        manifest: path.to_path_buf(),
        blake3,
        runs: census.headers.len(),
        entries: counts.values().map(|n| *n as u64).sum(),
        folders: counts.len(),
        torn: census.torn,
        differences: Vec::new(),
    };
    let mut passes: Vec<HashSet<FolderPath>> = Vec::new();
    let mut held = 0;
    for (folder, n) in counts {
        if passes.is_empty() || (held > 0 && held + n > per_pass) {
            passes.push(HashSet::new());
            held = 0;
        }
        held += n;
        if let Some(pass) = passes.last_mut() {
            pass.insert(folder);
        }
    }
    for pass in passes {
        let contents = scan(path, |e| pass.contains(&e.target_folder))?;
        // Moved, not copied: the entries are the bulk of this check's memory.
        let mut by_folder: BTreeMap<FolderPath, Vec<Entry>> = BTreeMap::new();
        for e in contents.entries {
            by_folder
                .entry(e.target_folder.clone())
                .or_default()
                .push(e);
        }
        check_folders(target, by_folder, &mut out).await?;
    }
    Ok(out)
}

async fn check_folders(
    target: &dyn Target,
    by_folder: BTreeMap<FolderPath, Vec<Entry>>,
    out: &mut ManifestCheck,
) -> Result<()> {
    let caps = target.capabilities();
    for (folder, entries) in by_folder {
        let mut existing: HashMap<TargetKey, ExistingItem> = HashMap::new();
        let mut listing = target.existing(&folder);
        while let Some(item) = listing.next().await {
            let item = item.map_err(|e| e.context(format!("listing {folder}")))?;
            existing.insert(item.key.clone(), item);
        }
        drop(listing);
        let mut diff = |e: &Entry, detail: String| {
            out.differences.push(ManifestDifference {
                folder: folder.clone(),
                target_key: e.target_key.clone(),
                source: format!("{} {}", e.folder, e.source_key),
                detail,
            })
        };
        let mut present = Vec::new();
        for e in &entries {
            let Some(found) = existing.get(&TargetKey::from(e.target_key.as_str())) else {
                diff(e, "not in the target".into());
                continue;
            };
            // A recovered entry has no flags to compare (see `Entry::recovered`).
            if let Some(tokens) = &e.flags
                && let (listed, now) =
                    (flags(tokens, caps.keywords), flags_of(found, caps.keywords))
                && listed != now
            {
                diff(
                    e,
                    format!(
                        "flags: manifest ({}), target ({})",
                        listed.join(" "),
                        now.join(" ")
                    ),
                );
            }
            if caps.internal_date
                && let Some(listed) = e.internal_date.as_deref()
                && let Some(now) = found.internal_date
            {
                match InternalDate::parse_imap(listed) {
                    Some(d) if d.timestamp == now.timestamp => {}
                    Some(_) => diff(e, format!("internal date: manifest {listed}, target {now}")),
                    None => diff(e, format!("the manifest's date {listed:?} does not parse")),
                }
            }
            present.push(e);
        }
        for chunk in present.chunks(READ_BACK_CHUNK) {
            let keys: Vec<TargetKey> = chunk
                .iter()
                .map(|e| TargetKey::from(e.target_key.as_str()))
                .collect();
            let mut sums: HashMap<TargetKey, (Checksum, u64)> = HashMap::new();
            let mut stream = target.read_back(&folder, keys);
            while let Some(read) = stream.next().await {
                match read {
                    Ok((key, item)) => {
                        let (canonical, _) = canonicalise(item.body);
                        sums.insert(key, (Checksum::of(&canonical), canonical.len() as u64));
                    }
                    Err(e) if e.is_fatal() || e.is_transient() => {
                        return Err(e.context(format!("reading back {folder}")));
                    }
                    // An item that cannot be read shows below as not read back.
                    Err(e) => tracing::warn!(folder = %folder, "read back: {e}"),
                }
            }
            drop(stream);
            for e in chunk {
                match sums.get(&TargetKey::from(e.target_key.as_str())) {
                    None => diff(e, "listed by the target but could not be read back".into()),
                    Some((sum, size)) if *sum != e.checksum => diff(
                        e,
                        format!(
                            "content changed: manifest {} ({} bytes), target {sum} ({size} bytes)",
                            e.checksum, e.size
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

/// Flag tokens to compare: sorted, keywords only where the target stores them.
fn flags(tokens: &[String], keywords: bool) -> Vec<String> {
    let mut v: Vec<String> = tokens
        .iter()
        .filter(|t| keywords || t.starts_with('\\'))
        .cloned()
        .collect();
    v.sort();
    v
}

fn flags_of(item: &ExistingItem, keywords: bool) -> Vec<String> {
    let tokens: Vec<String> = item
        .flags
        .imap_tokens()
        .into_iter()
        .map(str::to_string)
        .collect();
    flags(&tokens, keywords)
}
