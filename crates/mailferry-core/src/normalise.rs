//! The faithful normaliser: line endings become CRLF and no other byte changes.
//!
//! Stores disagree on line endings (IMAP speaks CRLF, Maildir and mbox files usually hold LF), so
//! the canonical form — the one checksums are taken over — is CRLF everywhere. Bare LF and bare
//! CR both become CRLF; nothing is re-encoded, no header is touched. A message that is already
//! canonical comes back as the very same [`Bytes`] (no copy), which is the common case on an
//! IMAP source. Every change is counted so the report can say what was done.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What [`canonicalise`] changed in one message, or in many (the counts add up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Bare LFs that became CRLF.
    pub bare_lf: u64,
    /// Bare CRs that became CRLF.
    pub bare_cr: u64,
}

impl Normalisation {
    /// Whether nothing was changed.
    pub fn is_unchanged(&self) -> bool {
        self.bare_lf == 0 && self.bare_cr == 0
    }

    /// Adds another message's counts.
    pub fn add(&mut self, other: Normalisation) {
        self.bare_lf += other.bare_lf;
        self.bare_cr += other.bare_cr;
    }
}

/// Counts the bare line endings in `raw` without copying it.
pub fn inspect(raw: &[u8]) -> Normalisation {
    let mut n = Normalisation::default();
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &raw[pos..]) {
        let i = pos + off;
        if raw[i] == b'\r' {
            if raw.get(i + 1) == Some(&b'\n') {
                pos = i + 2;
                continue;
            }
            n.bare_cr += 1;
        } else {
            n.bare_lf += 1;
        }
        pos = i + 1;
    }
    n
}

/// Canonicalises line endings to CRLF. Returns the canonical bytes — `raw` itself, not a copy,
/// when it was already canonical — and what was changed.
pub fn canonicalise(raw: Bytes) -> (Bytes, Normalisation) {
    let changes = inspect(&raw);
    if changes.is_unchanged() {
        return (raw, changes);
    }
    let mut out = Vec::with_capacity(raw.len() + (changes.bare_lf + changes.bare_cr) as usize);
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &raw[pos..]) {
        let i = pos + off;
        out.extend_from_slice(&raw[pos..i]);
        out.extend_from_slice(b"\r\n");
        pos = if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        };
    }
    out.extend_from_slice(&raw[pos..]);
    (Bytes::from(out), changes)
}

/// The number of bytes `raw` has once canonical, without building it.
pub fn canonical_len(raw: &[u8]) -> u64 {
    let n = inspect(raw);
    raw.len() as u64 + n.bare_lf + n.bare_cr
}

/// Converts canonical CRLF bytes to LF line endings, for stores that keep LF (Maildir, mbox).
/// The inverse of [`canonicalise`] on canonical input: `canonicalise(to_lf(x)) == x`.
pub fn to_lf(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len());
    let mut pos = 0;
    for i in memchr::memmem::find_iter(canonical, b"\r\n") {
        out.extend_from_slice(&canonical[pos..i]);
        out.push(b'\n');
        pos = i + 2;
    }
    out.extend_from_slice(&canonical[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strip_line_endings(b: &[u8]) -> Vec<u8> {
        b.iter()
            .copied()
            .filter(|&c| c != b'\r' && c != b'\n')
            .collect()
    }

    #[test]
    fn converts_bare_lf_bare_cr_and_mixed() {
        let (out, n) = canonicalise(Bytes::from_static(b"a\nb\rc\r\nd\n\r"));
        assert_eq!(&out[..], b"a\r\nb\r\nc\r\nd\r\n\r\n");
        assert_eq!(
            n,
            Normalisation {
                bare_lf: 2,
                bare_cr: 2
            }
        );
    }

    #[test]
    fn canonical_input_is_returned_without_a_copy() {
        let raw = Bytes::from(b"Subject: x\r\n\r\nbody\r\n".to_vec());
        let (out, n) = canonicalise(raw.clone());
        assert!(n.is_unchanged());
        assert_eq!(out.as_ptr(), raw.as_ptr());
    }

    proptest! {
        #[test]
        fn is_idempotent(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400)) {
            let (once, _) = canonicalise(Bytes::from(data));
            let (twice, n) = canonicalise(once.clone());
            prop_assert!(n.is_unchanged());
            prop_assert_eq!(once.as_ptr(), twice.as_ptr());
        }

        #[test]
        fn only_line_ending_bytes_differ(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400)) {
            let (out, n) = canonicalise(Bytes::from(data.clone()));
            prop_assert_eq!(strip_line_endings(&out), strip_line_endings(&data));
            prop_assert_eq!(out.len() as u64, data.len() as u64 + n.bare_lf + n.bare_cr);
            prop_assert_eq!(canonical_len(&data), out.len() as u64);
        }

        #[test]
        fn lf_storage_round_trips(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400)) {
            let (canon, _) = canonicalise(Bytes::from(data));
            let (back, _) = canonicalise(Bytes::from(to_lf(&canon)));
            prop_assert_eq!(back, canon);
        }
    }
}
