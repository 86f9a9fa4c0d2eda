//! Normalisation and header facts on arbitrary bytes: what every message from every source goes
//! through before it is checksummed.
//!
//! Properties: canonicalisation changes line endings and nothing else (same bytes once CR and
//! LF are removed, the length grows by exactly the counted changes), is idempotent (a second
//! pass changes nothing and returns the very same buffer), and survives LF storage
//! (`canonicalise(to_lf(x)) == x`); `HeaderFacts::parse` returns — a mail-parser panic is
//! contained and becomes an item error — and `fingerprint` agrees with the facts.
//!
//! libfuzzer-sys installs a panic hook that aborts even on a panic that is later caught, which
//! would report mail-parser's contained panics as our crashes. The hook is swapped for a silent
//! one around `HeaderFacts::parse` only; any other panic still aborts (libfuzzer-sys catches
//! the unwind at the top and aborts).

#![no_main]

use std::panic;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mailferry_core::headers::header_end;
use mailferry_core::normalise::{canonical_len, canonicalise, inspect, to_lf};
use mailferry_core::{ErrorKind, HeaderFacts};

fn without_line_endings(b: &[u8]) -> Vec<u8> {
    b.iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect()
}

/// `HeaderFacts::parse` with libFuzzer's aborting panic hook set aside.
fn parse_facts(raw: &[u8]) -> mailferry_core::Result<HeaderFacts> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let facts = HeaderFacts::parse(raw);
    panic::set_hook(hook);
    facts
}

fuzz_target!(|data: &[u8]| {
    let raw = Bytes::copy_from_slice(data);
    let (canonical, changes) = canonicalise(raw.clone());
    assert_eq!(inspect(data), changes);
    assert_eq!(
        without_line_endings(&canonical),
        without_line_endings(data),
        "only line-ending bytes may change"
    );
    assert_eq!(
        canonical.len() as u64,
        data.len() as u64 + changes.bare_lf + changes.bare_cr
    );
    assert_eq!(canonical_len(data), canonical.len() as u64);
    if changes.is_unchanged() {
        assert_eq!(
            canonical.as_ptr(),
            raw.as_ptr(),
            "canonical input is not copied"
        );
    }

    let (again, second) = canonicalise(canonical.clone());
    assert!(second.is_unchanged(), "canonicalisation is idempotent");
    assert_eq!(again.as_ptr(), canonical.as_ptr());

    let (from_lf, _) = canonicalise(Bytes::from(to_lf(&canonical)));
    assert_eq!(from_lf, canonical, "LF storage round-trips");

    let end = header_end(&canonical);
    assert!(end <= canonical.len());

    match parse_facts(&canonical) {
        Ok(facts) => {
            let fingerprint = facts.fingerprint();
            let has_facts = facts.message_id.is_some()
                || facts.date.is_some()
                || facts.from.is_some()
                || facts.subject.is_some();
            assert_eq!(fingerprint.is_some(), has_facts);
            if let (Some(id), Some(fp)) = (&facts.message_id, &fingerprint) {
                assert_eq!(fp, &format!("id:{id}"));
            }
            assert_eq!(facts.fingerprint(), fingerprint, "fingerprints are stable");
            // Only the header block is parsed: the body cannot change the facts.
            let head_only = parse_facts(&canonical[..end]);
            assert_eq!(head_only.ok().as_ref(), Some(&facts));
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Item, "{e}"),
    }
});
