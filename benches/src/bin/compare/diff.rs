//! Judging a copy: the source's and the target's [`Snapshot`]s compared folder by folder as
//! multisets of (checksum, flags + keywords, internal date), and every difference explained
//! in a short reason a reader can act on ("x-tuid header added to 5000 messages", "198
//! keywords lost", "12 duplicate copies not copied").
//!
//! Why multisets: byte-identical duplicates are real mail (the corpus has them) and a tool
//! that collapses them has lost mail, which a set comparison would hide. Why pairing in
//! passes: first exact matches, then the same bytes with other metadata (a flag or date
//! problem), then the same Message-ID with other bytes (the tool rewrote the message), and
//! only what is left is missing or extra; so one rewritten header shows up as a rewrite, not
//! as one message missing plus one unexpected.
//!
//! Folders that are empty on both sides, or exist only on one side without messages (a
//! parent created as a real folder), are not differences.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::snapshot::{Fingerprint, Snapshot};

/// One kind of difference; counted per message (keywords: per keyword).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Issue {
    /// A folder with messages on the source does not exist on the target.
    FolderMissing(String),
    /// The target has a folder with messages the source does not have.
    FolderUnexpected(String),
    /// The target lists a folder with messages that cannot be read.
    FolderUnreadable(String),
    /// Messages neither copied nor found rewritten.
    Missing,
    /// Byte-identical duplicates in the source of which fewer copies arrived.
    DuplicatesNotCopied,
    /// More copies of a message on the target than on the source.
    Duplicated,
    /// Messages on the target that match nothing on the source.
    Unexpected,
    /// A header the tool added.
    HeaderAdded(String),
    /// A header the tool removed.
    HeaderRemoved(String),
    /// The bytes changed without a header being added or removed.
    BodyChanged,
    /// Keywords the target lacks (counted per keyword).
    KeywordsLost,
    /// Keywords the target has in excess (counted per keyword).
    KeywordsAdded,
    /// `\Seen`, `\Answered`, … differ.
    SystemFlagsDiffer,
    /// The internal date differs.
    DateChanged,
}

/// One issue and how often it occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What.
    pub issue: Issue,
    /// How many messages (keywords for the keyword issues).
    pub count: u64,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.count;
        match &self.issue {
            Issue::FolderMissing(name) => write!(f, "folder {name} missing ({n} msgs)"),
            Issue::FolderUnexpected(name) => write!(f, "unexpected folder {name} ({n} msgs)"),
            Issue::FolderUnreadable(name) => write!(f, "folder {name} unreadable on the target"),
            Issue::Missing => write!(f, "{n} messages missing"),
            Issue::DuplicatesNotCopied => write!(f, "{n} duplicate copies not copied"),
            Issue::Duplicated => write!(f, "{n} messages duplicated"),
            Issue::Unexpected => write!(f, "{n} unexpected messages"),
            Issue::HeaderAdded(h) => write!(f, "{h} header added to {n} messages"),
            Issue::HeaderRemoved(h) => write!(f, "{h} header removed from {n} messages"),
            Issue::BodyChanged => write!(f, "{n} messages changed"),
            Issue::KeywordsLost => write!(f, "{n} keywords lost"),
            Issue::KeywordsAdded => write!(f, "{n} keywords added"),
            Issue::SystemFlagsDiffer => write!(f, "flags differ on {n} messages"),
            Issue::DateChanged => write!(f, "internal date changed on {n} messages"),
        }
    }
}

/// The outcome of comparing a target with its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every difference, most important first; empty means the copy is faithful.
    pub findings: Vec<Finding>,
    /// Messages that matched exactly.
    pub matched: u64,
}

impl Verdict {
    /// Whether the target equals the source.
    pub fn correct(&self) -> bool {
        self.findings.is_empty()
    }

    /// "yes" or "no: reason; reason".
    pub fn summary(&self) -> String {
        if self.correct() {
            return "yes".into();
        }
        let reasons: Vec<String> = self.findings.iter().map(ToString::to_string).collect();
        format!("no: {}", reasons.join("; "))
    }
}

#[derive(Default)]
struct Tally(BTreeMap<Issue, u64>);

impl Tally {
    fn add(&mut self, issue: Issue, n: u64) {
        if n > 0 {
            *self.0.entry(issue).or_default() += n;
        }
    }
}

fn keywords(flags: &[String]) -> Vec<&String> {
    flags.iter().filter(|f| !f.starts_with('\\')).collect()
}

fn system_flags(flags: &[String]) -> Vec<&String> {
    flags.iter().filter(|f| f.starts_with('\\')).collect()
}

/// Records how the metadata of a pair (same message, other metadata) differs.
fn compare_metadata(tally: &mut Tally, src: &Fingerprint, dst: &Fingerprint) {
    let (ks, kd) = (keywords(&src.flags), keywords(&dst.flags));
    tally.add(
        Issue::KeywordsLost,
        ks.iter().filter(|k| !kd.contains(k)).count() as u64,
    );
    tally.add(
        Issue::KeywordsAdded,
        kd.iter().filter(|k| !ks.contains(k)).count() as u64,
    );
    if system_flags(&src.flags) != system_flags(&dst.flags) {
        tally.add(Issue::SystemFlagsDiffer, 1);
    }
    if src.date != dst.date {
        tally.add(Issue::DateChanged, 1);
    }
}

/// Header names in `a` that `b` lacks, as a multiset difference.
fn headers_not_in(a: &[String], b: &[String]) -> Vec<String> {
    let mut left: HashMap<&str, i64> = HashMap::new();
    for h in b {
        *left.entry(h).or_default() += 1;
    }
    let mut out = Vec::new();
    for h in a {
        let n = left.entry(h).or_default();
        if *n > 0 {
            *n -= 1;
        } else if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

/// Pairs items of `src` and `dst` that share `key`, removing them from both; returns pairs.
fn pair_by<K: Eq + std::hash::Hash>(
    src: &mut Vec<Fingerprint>,
    dst: &mut Vec<Fingerprint>,
    key: impl Fn(&Fingerprint) -> Option<K>,
) -> Vec<(Fingerprint, Fingerprint)> {
    let mut by_key: HashMap<K, Vec<Fingerprint>> = HashMap::new();
    let mut rest_src = Vec::new();
    for s in src.drain(..) {
        match key(&s) {
            Some(k) => by_key.entry(k).or_default().push(s),
            None => rest_src.push(s),
        }
    }
    let mut pairs = Vec::new();
    let mut rest_dst = Vec::new();
    for d in dst.drain(..) {
        match key(&d).and_then(|k| by_key.get_mut(&k)).and_then(Vec::pop) {
            Some(s) => pairs.push((s, d)),
            None => rest_dst.push(d),
        }
    }
    rest_src.extend(by_key.into_values().flatten());
    *src = rest_src;
    *dst = rest_dst;
    pairs
}

fn compare_folder(tally: &mut Tally, src: &[Fingerprint], dst: &[Fingerprint]) -> u64 {
    let mut s = src.to_vec();
    let mut d = dst.to_vec();
    s.sort();
    d.sort();
    // Exact matches: a merge of the two sorted lists.
    let (mut i, mut j, mut matched) = (0, 0, 0u64);
    let (mut only_s, mut only_d) = (Vec::new(), Vec::new());
    while i < s.len() && j < d.len() {
        match s[i].cmp(&d[j]) {
            std::cmp::Ordering::Equal => {
                matched += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                only_s.push(s[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_d.push(d[j].clone());
                j += 1;
            }
        }
    }
    only_s.extend_from_slice(&s[i..]);
    only_d.extend_from_slice(&d[j..]);
    // Same bytes, other metadata.
    for (a, b) in pair_by(&mut only_s, &mut only_d, |f| Some(f.checksum)) {
        compare_metadata(tally, &a, &b);
    }
    // Same body or same Message-ID, other bytes: the tool rewrote the message's headers.
    let mut rewritten = pair_by(&mut only_s, &mut only_d, |f| Some(f.body_checksum));
    rewritten.extend(pair_by(&mut only_s, &mut only_d, |f| f.message_id.clone()));
    for (a, b) in rewritten {
        let added = headers_not_in(&b.header_names, &a.header_names);
        let removed = headers_not_in(&a.header_names, &b.header_names);
        if added.is_empty() && removed.is_empty() {
            tally.add(Issue::BodyChanged, 1);
        }
        for h in added {
            tally.add(Issue::HeaderAdded(h), 1);
        }
        for h in removed {
            tally.add(Issue::HeaderRemoved(h), 1);
        }
        compare_metadata(tally, &a, &b);
    }
    let in_dst = |f: &Fingerprint| dst.iter().any(|x| x.checksum == f.checksum);
    let in_src = |f: &Fingerprint| src.iter().any(|x| x.checksum == f.checksum);
    let dup_missing = only_s.iter().filter(|f| in_dst(f)).count() as u64;
    tally.add(Issue::DuplicatesNotCopied, dup_missing);
    tally.add(Issue::Missing, only_s.len() as u64 - dup_missing);
    let dup_extra = only_d.iter().filter(|f| in_src(f)).count() as u64;
    tally.add(Issue::Duplicated, dup_extra);
    tally.add(Issue::Unexpected, only_d.len() as u64 - dup_extra);
    matched
}

/// Compares a target with its source.
pub fn compare(source: &Snapshot, target: &Snapshot) -> Verdict {
    let mut tally = Tally::default();
    let mut matched = 0;
    for name in target.unreadable.keys() {
        tally.add(Issue::FolderUnreadable(name.clone()), 1);
    }
    for (name, src) in &source.folders {
        if target.unreadable.contains_key(name) {
            continue;
        }
        match target.folders.get(name) {
            Some(dst) => matched += compare_folder(&mut tally, src, dst),
            None => tally.add(Issue::FolderMissing(name.clone()), src.len() as u64),
        }
    }
    for (name, dst) in &target.folders {
        if !source.folders.contains_key(name) {
            tally.add(Issue::FolderUnexpected(name.clone()), dst.len() as u64);
        }
    }
    Verdict {
        findings: tally
            .0
            .into_iter()
            .map(|(issue, count)| Finding { issue, count })
            .collect(),
        matched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailferry_core::Checksum;

    fn fp(body: &str, flags: &[&str], date: i64, headers: &[&str]) -> Fingerprint {
        Fingerprint {
            checksum: Checksum::of(body.as_bytes()),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            date: Some(date),
            message_id: Some(format!("<{}>", body.len())),
            header_names: headers.iter().map(|s| s.to_string()).collect(),
            body_checksum: Checksum::of(format!("body of {body}").as_bytes()),
            size: body.len() as u64,
        }
    }

    fn snap(folders: &[(&str, Vec<Fingerprint>)]) -> Snapshot {
        Snapshot {
            folders: folders
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
            unreadable: BTreeMap::new(),
        }
    }

    #[test]
    fn an_identical_copy_is_correct_even_with_empty_extra_folders() {
        let a = fp("a", &["\\Seen", "$Forwarded"], 1, &["subject"]);
        let src = snap(&[("INBOX", vec![a.clone(), a.clone()])]);
        let dst = snap(&[("INBOX", vec![a.clone(), a]), ("Archive", vec![])]);
        let v = compare(&src, &dst);
        assert!(v.correct(), "{}", v.summary());
        assert_eq!(v.matched, 2);
        assert_eq!(v.summary(), "yes");
    }

    #[test]
    fn lost_keywords_and_dates_are_counted_not_reported_as_missing_mail() {
        let src = snap(&[(
            "INBOX",
            vec![
                fp("a", &["\\Seen", "$Forwarded", "Project-X"], 1, &[]),
                fp("b", &["Project-X"], 2, &[]),
            ],
        )]);
        let dst = snap(&[(
            "INBOX",
            vec![fp("a", &["\\Seen"], 1, &[]), fp("b", &[], 99, &[])],
        )]);
        let v = compare(&src, &dst);
        assert_eq!(
            v.summary(),
            "no: 3 keywords lost; internal date changed on 1 messages"
        );
    }

    #[test]
    fn an_added_header_is_named_and_counted() {
        let src = snap(&[("INBOX", vec![fp("a", &[], 1, &["subject"])])]);
        let mut changed = fp("a+tuid", &[], 1, &["subject", "x-tuid"]);
        changed.message_id = None;
        changed.body_checksum = src.folders["INBOX"][0].body_checksum;
        let dst = snap(&[("INBOX", vec![changed])]);
        assert_eq!(
            compare(&src, &dst).summary(),
            "no: x-tuid header added to 1 messages"
        );
    }

    #[test]
    fn same_message_id_with_other_bytes_is_a_change_and_unreadable_folders_fail() {
        let src = snap(&[("INBOX", vec![fp("a", &[], 1, &["subject"])])]);
        let mut changed = fp("b", &[], 1, &["subject"]);
        changed.message_id = src.folders["INBOX"][0].message_id.clone();
        let mut dst = snap(&[("INBOX", vec![changed])]);
        assert_eq!(compare(&src, &dst).summary(), "no: 1 messages changed");
        dst.unreadable
            .insert("INBOX".into(), "NO [SERVERBUG]".into());
        assert_eq!(
            compare(&src, &dst).summary(),
            "no: folder INBOX unreadable on the target"
        );
    }

    #[test]
    fn collapsed_duplicates_and_missing_folders_are_failures() {
        let a = fp("a", &[], 1, &[]);
        let src = snap(&[
            ("INBOX", vec![a.clone(), a.clone(), fp("bb", &[], 2, &[])]),
            ("Sent", vec![fp("ccc", &[], 3, &[])]),
        ]);
        let dst = snap(&[("INBOX", vec![a, fp("dddd", &[], 4, &[])])]);
        let v = compare(&src, &dst);
        assert!(!v.correct());
        let s = v.summary();
        assert!(s.contains("folder Sent missing (1 msgs)"), "{s}");
        assert!(s.contains("1 duplicate copies not copied"), "{s}");
        assert!(s.contains("1 messages missing"), "{s}");
        assert!(s.contains("1 unexpected messages"), "{s}");
    }

    #[test]
    fn extra_copies_on_the_target_are_duplicates() {
        let a = fp("a", &[], 1, &[]);
        let src = snap(&[("INBOX", vec![a.clone()])]);
        let dst = snap(&[
            ("INBOX", vec![a.clone(), a]),
            ("Junk", vec![fp("z", &[], 5, &[])]),
        ]);
        let s = compare(&src, &dst).summary();
        assert!(s.contains("1 messages duplicated"), "{s}");
        assert!(s.contains("unexpected folder Junk (1 msgs)"), "{s}");
    }
}
