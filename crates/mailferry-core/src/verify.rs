//! Verification: does the target hold what the source holds? The trustworthy "done" signal.
//!
//! Per folder, the source's listing, the state's records and the target's listing are compared
//! without reading any message: every source item must have a done record whose target item
//! exists with the same size, flags and internal date; every target item must be accounted
//! for. With `read_back`, both sides' bytes are read and compared as each store holds them —
//! in wire form ([`crate::normalise::to_wire`]: an LF store's storage form undone, nothing
//! else), not through checksums of the canonical form, which would hide a lone CR that became a
//! line ending. That catches a target that rewrote bytes (some servers mangle 8-bit headers):
//! such items are reported as changed by the target, with the offset of the first difference.
//! Without state records (a pair copied by another tool), items are paired by Message-ID or
//! header fingerprint plus size instead.
//!
//! [`spot_check`] is the cheap form a copy runs at its end: the same comparison, with bytes read
//! back for an evenly spread sample of each written folder only. Sizes cannot reveal every
//! rewrite (Cyrus replaces each 8-bit header byte with `X`, one for one, so sizes stay equal),
//! and a full read-back doubles a migration's traffic; a sample of a few per folder finds a
//! target that rewrites what it stores without either, and the user is told to run
//! `verify --read-back` to find every affected message.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::backend::{ExistingItem, Source, Target};
use crate::checksum::Checksum;
use crate::copier::FolderJob;
use crate::error::Result;
use crate::flags::Flags;
use crate::headers::header_end;
use crate::item::{ItemMeta, SourceKey, TargetKey};
use crate::normalise::to_wire;
use crate::progress::RunControl;
use crate::state::{FolderScope, ItemStatus, StateStore};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The migration name used when copying (the state scope).
    pub migration: String,
    /// Read both sides' bytes and compare checksums.
    pub read_back: bool,
    /// Compare flags and keywords (off for targets that cannot hold them).
    pub compare_flags: bool,
    /// Compare keywords as well as system flags.
    pub compare_keywords: bool,
    /// Compare internal dates (whole seconds).
    pub compare_dates: bool,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The source key (or the target key for extra items).
    pub key: String,
    /// What differs.
    pub detail: String,
}

/// Verification of one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderVerification {
    /// Source folder.
    pub source: crate::FolderPath,
    /// Target folder.
    pub target: crate::FolderPath,
    /// Items in the source.
    pub source_count: u64,
    /// Items in the target.
    pub target_count: u64,
    /// Source items not in the target.
    pub missing: Vec<Difference>,
    /// Target items no source item accounts for (duplicates included).
    pub extra: Vec<Difference>,
    /// Items whose bytes differ (size, or checksum with read-back).
    pub changed: Vec<Difference>,
    /// Items whose bytes the target changed on storing (source bytes equal the recorded checksum,
    /// target bytes do not).
    pub rewritten_by_target: Vec<Difference>,
    /// Items whose flags or keywords differ.
    pub flags: Vec<Difference>,
    /// Items whose internal dates differ.
    pub dates: Vec<Difference>,
    /// Items whose bytes were read back from both sides and compared (0 without read-back:
    /// then only sizes, flags and dates were compared).
    #[serde(default)]
    pub bytes_compared: u64,
}

impl FolderVerification {
    /// Whether the folders match.
    pub fn is_match(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.changed.is_empty()
            && self.rewritten_by_target.is_empty()
            && self.flags.is_empty()
            && self.dates.is_empty()
    }
}

/// Verification of a run's folders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Per folder.
    pub folders: Vec<FolderVerification>,
}

impl Verification {
    /// Whether every folder matches.
    pub fn is_match(&self) -> bool {
        self.folders.iter().all(FolderVerification::is_match)
    }
}

fn flags_text(f: &Flags, keywords: bool) -> String {
    let mut f = f.clone();
    if !keywords {
        f.keywords.clear();
    }
    f.to_string()
}

/// Verifies every job's folder.
pub async fn verify(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    options: &VerifyOptions,
) -> Result<Verification> {
    verify_with(source, target, state, jobs, options, RunControl::default()).await
}

/// [`verify`] with `control.concurrency` folders at once (in the jobs' order in the result),
/// progress events per folder, and a stop before the next folder once `control.cancel` is set.
pub async fn verify_with(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    options: &VerifyOptions,
    control: RunControl,
) -> Result<Verification> {
    let folders = control
        .per_folder(jobs, |job| async move {
            let v = verify_folder(source, target, state, job, options, None).await?;
            let counts = crate::report::Counts {
                seen: v.source_count,
                ..Default::default()
            };
            Ok((v, counts))
        })
        .await?;
    Ok(Verification { folders })
}

/// Names the extra target items that are late copies of interrupted appends (see
/// `copier::resolution`): the user learns what they are and that the next copy removes them.
async fn name_surplus_copies(
    target: &dyn Target,
    state: &dyn StateStore,
    scope: &FolderScope,
    folder: &crate::FolderPath,
    extra: &mut [Difference],
) -> Result<()> {
    if extra.is_empty() {
        return Ok(());
    }
    for (key, suspect) in crate::copier::find_surplus(target, state, scope, folder).await? {
        if let Some(d) = extra.iter_mut().find(|d| d.key == key.0) {
            d.detail = format!(
                "a surplus copy of source item {}: an interrupted append committed after it was \
                 sent again; the next copy removes it where the target can delete",
                suspect.key
            );
        }
    }
    Ok(())
}

/// One item a target stored differently from what was copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewritten {
    /// The target folder.
    pub folder: crate::FolderPath,
    /// The source key.
    pub key: String,
    /// Where the bytes first differ (or how the size differs).
    pub detail: String,
}

/// What a post-copy [`spot_check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteCheck {
    /// Items whose bytes were read back from both sides and compared.
    pub compared: u64,
    /// Of those (and of all items, for a size the target reports differently), the ones the
    /// target changed on storing.
    pub rewritten: Vec<Rewritten>,
}

impl RewriteCheck {
    /// Whether the target changed anything it was sent.
    pub fn target_rewrites(&self) -> bool {
        !self.rewritten.is_empty()
    }
}

/// Reads back up to `per_folder` copied items of each job's folder (evenly spread, of at most
/// [`SPOT_CHECK_MAX_BYTES`] each, so the check stays within a copy's memory) from both
/// sides and compares their bytes; every item's size the target reports is compared too. Meant
/// to run after a copy: see the module docs.
pub async fn spot_check(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    migration: &str,
    per_folder: usize,
) -> Result<RewriteCheck> {
    let options = VerifyOptions {
        migration: migration.to_string(),
        read_back: true,
        ..VerifyOptions::default()
    };
    let mut check = RewriteCheck::default();
    for job in jobs {
        let v = verify_folder(source, target, state, job, &options, Some(per_folder)).await?;
        check.compared += v.bytes_compared;
        for d in v.changed.into_iter().chain(v.rewritten_by_target) {
            check.rewritten.push(Rewritten {
                folder: job.target.clone(),
                key: d.key,
                detail: d.detail,
            });
        }
    }
    Ok(check)
}

/// The largest message a post-copy spot check reads back (see [`spot_check`]).
pub const SPOT_CHECK_MAX_BYTES: u64 = 1 << 20;

/// At most `n` of `pairs`, evenly spread (first and last included).
fn sample<T>(pairs: Vec<T>, n: usize) -> Vec<T> {
    let len = pairs.len();
    if len <= n {
        return pairs;
    }
    if n == 0 {
        return Vec::new();
    }
    let step = len as f64 / n as f64;
    let picks: std::collections::HashSet<usize> = (0..n)
        .map(|i| ((i as f64 * step) as usize).min(len - 1))
        .collect();
    pairs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| picks.contains(i))
        .map(|(_, p)| p)
        .collect()
}

async fn verify_folder(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    job: &FolderJob,
    options: &VerifyOptions,
    read_back_sample: Option<usize>,
) -> Result<FolderVerification> {
    let mut out = FolderVerification {
        source: job.source.path.clone(),
        target: job.target.clone(),
        ..FolderVerification::default()
    };
    let metas: Vec<ItemMeta> = collect(source.list_items(&job.source.path, None)).await?;
    let existing: Vec<ExistingItem> = collect(target.existing(&job.target)).await?;
    out.source_count = metas.len() as u64;
    out.target_count = existing.len() as u64;
    let scope = FolderScope {
        migration: options.migration.clone(),
        folder: job.source.path.clone(),
        validity: job.source.status.validity,
    };
    let records = state.records(&scope, Some(ItemStatus::Done)).await?;
    let mut by_target: HashMap<TargetKey, &ExistingItem> =
        existing.iter().map(|e| (e.key.clone(), e)).collect();

    // Pair source items with target items: by the state's records, else by fingerprint + size.
    let mut pairs: Vec<(ItemMeta, ExistingItem, Option<Checksum>)> = Vec::new();
    if records.is_empty() && !metas.is_empty() {
        pair_by_fingerprint(source, job, metas, &mut by_target, &mut pairs, &mut out).await?;
    } else {
        let records: HashMap<&SourceKey, _> = records.iter().map(|r| (&r.key, r)).collect();
        for meta in metas {
            let found = records
                .get(&meta.key)
                .and_then(|r| Some((r, by_target.remove(r.target_key.as_ref()?)?)));
            match found {
                Some((record, item)) => {
                    if record.size != item.size {
                        out.changed.push(Difference {
                            key: meta.key.to_string(),
                            detail: format!(
                                "size {} in the target, {} copied",
                                item.size, record.size
                            ),
                        });
                    }
                    pairs.push((meta, item.clone(), record.checksum));
                }
                None => out.missing.push(Difference {
                    key: meta.key.to_string(),
                    detail: "not in the target".into(),
                }),
            }
        }
    }
    let mut extra: Vec<_> = by_target.into_keys().collect();
    extra.sort();
    out.extra = extra
        .into_iter()
        .map(|k| Difference {
            key: k.to_string(),
            detail: "in the target, not in the source".into(),
        })
        .collect();
    name_surplus_copies(target, state, &scope, &job.target, &mut out.extra).await?;

    for (meta, item, _) in &pairs {
        if options.compare_flags {
            let (s, t) = (
                flags_text(&meta.flags, options.compare_keywords),
                flags_text(&item.flags, options.compare_keywords),
            );
            if s != t {
                out.flags.push(Difference {
                    key: meta.key.to_string(),
                    detail: format!("source ({s}), target ({t})"),
                });
            }
        }
        if options.compare_dates
            && let (Some(s), Some(t)) = (meta.internal_date, item.internal_date)
            && s.timestamp != t.timestamp
        {
            out.dates.push(Difference {
                key: meta.key.to_string(),
                detail: format!("source {s}, target {t}"),
            });
        }
    }
    if options.read_back && !pairs.is_empty() {
        let pairs = match read_back_sample {
            // A spot check runs inside a copy's memory budget: it reads back only messages
            // small enough to hold on both sides at once (a header rewrite shows in those as
            // well as in a 50 MB one); the rest are compared by size.
            Some(n) => sample(
                pairs
                    .into_iter()
                    .filter(|(_, e, _)| e.size <= SPOT_CHECK_MAX_BYTES)
                    .collect(),
                n,
            ),
            None => pairs,
        };
        out.bytes_compared = pairs.len() as u64;
        compare_bytes(source, target, job, pairs, &mut out).await?;
    }
    Ok(out)
}

async fn pair_by_fingerprint(
    source: &dyn Source,
    job: &FolderJob,
    metas: Vec<ItemMeta>,
    by_target: &mut HashMap<TargetKey, &ExistingItem>,
    pairs: &mut Vec<(ItemMeta, ExistingItem, Option<Checksum>)>,
    out: &mut FolderVerification,
) -> Result<()> {
    let mut index: HashMap<(Option<String>, u64), Vec<TargetKey>> = HashMap::new();
    for (k, e) in by_target.iter() {
        index
            .entry((e.fingerprint.clone(), e.size))
            .or_default()
            .push(k.clone());
    }
    let mut fetched = source.fetch(&job.source.path, metas);
    while let Some(item) = fetched.next().await {
        let item = item?;
        let (body, _) = to_wire(item.body);
        let fingerprint = crate::HeaderFacts::fingerprint_of(&body);
        let key = index
            .get_mut(&(fingerprint, body.len() as u64))
            .and_then(Vec::pop);
        match key.and_then(|k| by_target.remove(&k)) {
            Some(e) => pairs.push((item.meta, e.clone(), Some(Checksum::of_message(&body)))),
            None => out.missing.push(Difference {
                key: item.meta.key.to_string(),
                detail: "no target item with the same Message-ID and size".into(),
            }),
        }
    }
    Ok(())
}

/// Reads both sides and compares their bytes in wire form.
async fn compare_bytes(
    source: &dyn Source,
    target: &dyn Target,
    job: &FolderJob,
    pairs: Vec<(ItemMeta, ExistingItem, Option<Checksum>)>,
    out: &mut FolderVerification,
) -> Result<()> {
    for chunk in pairs.chunks(256) {
        let metas: Vec<ItemMeta> = chunk.iter().map(|(m, _, _)| m.clone()).collect();
        let mut source_bodies: HashMap<SourceKey, bytes::Bytes> = HashMap::new();
        let mut fetched = source.fetch(&job.source.path, metas);
        while let Some(item) = fetched.next().await {
            let item = item?;
            source_bodies.insert(item.meta.key, to_wire(item.body).0);
        }
        let keys = chunk.iter().map(|(_, e, _)| e.key.clone()).collect();
        let mut target_bodies: HashMap<TargetKey, bytes::Bytes> = HashMap::new();
        let mut read = target.read_back(&job.target, keys);
        while let Some(r) = read.next().await {
            let (key, item) = r?;
            target_bodies.insert(key, to_wire(item.body).0);
        }
        for (meta, existing, recorded) in chunk {
            let (Some(s), Some(t)) = (
                source_bodies.get(&meta.key),
                target_bodies.get(&existing.key),
            ) else {
                out.missing.push(Difference {
                    key: meta.key.to_string(),
                    detail: "could not be read back from both sides".into(),
                });
                continue;
            };
            if s == t {
                continue;
            }
            let offset = s
                .iter()
                .zip(t.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(s.len().min(t.len()));
            let place = if offset < header_end(s) {
                "header"
            } else {
                "body"
            };
            let mut detail = format!(
                "bytes differ from offset {offset} (in the {place}); source {} bytes, target {} bytes",
                s.len(),
                t.len()
            );
            let source_sum = Checksum::of_message(s);
            if source_sum == Checksum::of_message(t) {
                detail.push_str(
                    "; only line endings differ (lone CRs stored as line endings, as versions \
                     before lone CRs were kept as data wrote them)",
                );
            }
            let difference = Difference {
                key: meta.key.to_string(),
                detail,
            };
            if *recorded == Some(source_sum) {
                out.rewritten_by_target.push(difference);
            } else {
                out.changed.push(difference);
            }
        }
    }
    Ok(())
}

async fn collect<T>(mut stream: crate::BoxStream<'_, Result<T>>) -> Result<Vec<T>> {
    let mut v = Vec::new();
    while let Some(x) = stream.next().await {
        v.push(x?);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{Copier, CopyOptions, FolderPath, InternalDate, MemoryState, MemoryStore};

    fn options(read_back: bool) -> VerifyOptions {
        VerifyOptions {
            migration: "default".into(),
            read_back,
            compare_flags: true,
            compare_keywords: true,
            compare_dates: true,
        }
    }

    async fn copied() -> (MemoryStore, MemoryStore, Arc<MemoryState>, Vec<FolderJob>) {
        let source = MemoryStore::new();
        for i in 0..5 {
            source.insert(
                &FolderPath::inbox(),
                Bytes::from(format!("Message-ID: <{i}@v>\nSubject: é {i}\n\nbody {i}\n")),
                Flags::from_imap(["\\Seen"]),
                Some(InternalDate::from_timestamp(1_000 + i)),
            );
        }
        let target = MemoryStore::new();
        let state = Arc::new(MemoryState::new());
        let copier = Copier::new(
            Arc::new(source.clone()),
            Arc::new(target.clone()),
            state.clone(),
            CopyOptions::default(),
        );
        let jobs = copier.identity_plan().await.expect("plan");
        copier.run(jobs.clone()).await.expect("copy");
        (source, target, state, jobs)
    }

    #[test]
    fn samples_are_evenly_spread_and_bounded() {
        assert_eq!(sample((0..5).collect(), 16), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample((0..100).collect(), 4), vec![0, 25, 50, 75]);
        assert!(sample((0..100).collect::<Vec<_>>(), 0).is_empty());
    }

    #[tokio::test]
    async fn a_spot_check_of_a_faithful_copy_compares_a_sample_and_finds_nothing() {
        let (source, target, state, jobs) = copied().await;
        let check = spot_check(&source, &target, &*state, &jobs, "default", 3)
            .await
            .expect("spot check");
        assert_eq!(check.compared, 3);
        assert!(!check.target_rewrites(), "{check:#?}");
    }

    #[tokio::test]
    async fn a_faithful_copy_verifies() {
        let (source, target, state, jobs) = copied().await;
        for read_back in [false, true] {
            let v = verify(&source, &target, &*state, &jobs, &options(read_back))
                .await
                .expect("verify");
            assert!(v.is_match(), "{v:#?}");
        }
        // Without state, pairing falls back to Message-ID + size.
        let v = verify(&source, &target, &MemoryState::new(), &jobs, &options(true))
            .await
            .expect("verify");
        assert!(v.is_match(), "{v:#?}");
    }

    #[tokio::test]
    async fn lone_crs_verify_and_a_copy_that_made_them_line_endings_is_named() {
        let inbox = FolderPath::inbox();
        let source = MemoryStore::new();
        source.insert(
            &inbox,
            Bytes::from_static(b"Message-ID: <mac@v>\r\nSubject: mac\r\n\r\nold\rmac\r"),
            Flags::default(),
            Some(InternalDate::from_timestamp(1_000)),
        );
        let target = MemoryStore::new();
        let state = Arc::new(MemoryState::new());
        let copier = Copier::new(
            Arc::new(source.clone()),
            Arc::new(target.clone()),
            state.clone(),
            CopyOptions::default(),
        );
        let jobs = copier.identity_plan().await.expect("plan");
        copier.run(jobs.clone()).await.expect("copy");
        for read_back in [false, true] {
            let v = verify(&source, &target, &*state, &jobs, &options(read_back))
                .await
                .expect("verify");
            assert!(v.is_match(), "{v:#?}");
        }
        // The target as versions before lone CRs were kept wrote it: each one a line ending.
        use crate::Target as _;
        let (&uid, stored) = target
            .messages(&inbox)
            .iter()
            .next()
            .map(|(k, m)| (k, m.clone()))
            .expect("copied");
        target
            .delete(&inbox, vec![TargetKey(uid.to_string())])
            .await
            .expect("delete");
        let (canonical, _) = crate::normalise::canonicalise(stored.body);
        let k = target.insert(&inbox, canonical, stored.flags, stored.internal_date);
        let scope = FolderScope {
            migration: "default".into(),
            folder: inbox.clone(),
            validity: jobs[0].source.status.validity,
        };
        let mut records = state.records(&scope, None).await.expect("records");
        records[0].target_key = Some(TargetKey(k.to_string()));
        state.record(&scope, &records).await.expect("record");
        let v = verify(&source, &target, &*state, &jobs, &options(true))
            .await
            .expect("verify");
        let f = &v.folders[0];
        assert!(f.missing.is_empty() && f.extra.is_empty(), "{f:#?}");
        assert_eq!(f.changed.len(), 1, "the size differs: {f:#?}");
        assert_eq!(f.rewritten_by_target.len(), 1, "{f:#?}");
        assert!(
            f.rewritten_by_target[0]
                .detail
                .contains("only line endings differ"),
            "{f:#?}"
        );
    }

    #[tokio::test]
    async fn missing_extra_flags_dates_and_rewritten_bytes_are_reported() {
        let (source, target, state, jobs) = copied().await;
        let inbox = FolderPath::inbox();
        // The target loses message 1, gains a stray, has 2's flags changed, 3's date changed
        // and 4's 8-bit header rewritten (same size).
        use crate::Target as _;
        target
            .delete(&inbox, vec![TargetKey("1".into())])
            .await
            .expect("delete");
        target.insert(
            &inbox,
            Bytes::from_static(b"Subject: stray\r\n\r\n"),
            Flags::default(),
            None,
        );
        target
            .set_flags(&inbox, vec![(TargetKey("2".into()), Flags::default())])
            .await
            .expect("flags");
        let m3 = target.messages(&inbox)[&3].clone();
        let m4 = target.messages(&inbox)[&4].clone();
        target
            .delete(&inbox, vec![TargetKey("3".into()), TargetKey("4".into())])
            .await
            .expect("delete");
        // Re-insert under new keys and point the state at them, as if stored that way.
        let k3 = target.insert(
            &inbox,
            m3.body,
            m3.flags,
            Some(InternalDate::from_timestamp(5)),
        );
        let mangled = Bytes::from(
            m4.body
                .iter()
                .map(|&b| if b >= 0x80 { b'?' } else { b })
                .collect::<Vec<u8>>(),
        );
        let k4 = target.insert(&inbox, mangled, m4.flags, m4.internal_date);
        let scope = FolderScope {
            migration: "default".into(),
            folder: inbox.clone(),
            validity: jobs[0].source.status.validity,
        };
        let mut records = state.records(&scope, None).await.expect("records");
        for r in &mut records {
            match r.key.0.as_str() {
                "3" => r.target_key = Some(TargetKey(k3.to_string())),
                "4" => r.target_key = Some(TargetKey(k4.to_string())),
                _ => {}
            }
        }
        state.record(&scope, &records).await.expect("record");
        let v = verify(&source, &target, &*state, &jobs, &options(true))
            .await
            .expect("verify");
        let f = &v.folders[0];
        assert!(!v.is_match());
        assert_eq!(
            f.missing.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["1"]
        );
        assert_eq!(f.extra.len(), 1);
        assert_eq!(
            f.flags.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["2"]
        );
        assert_eq!(
            f.dates.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["3"]
        );
        assert_eq!(f.rewritten_by_target.len(), 1, "{f:#?}");
        assert!(f.rewritten_by_target[0].detail.contains("header"), "{f:#?}");
        let _ = source;
    }
}
