//! Line endings: the bytes a store gets are the source's bytes, changed only where the store's
//! format demands it. Three forms of a message, and which one is used where:
//!
//! - **Wire form** ([`to_wire`]) is what the pipeline carries and what an IMAP target gets: the
//!   source's bytes with every bare LF made CRLF (IMAP requires CRLF line endings, some servers
//!   refuse bare LF, and Dovecot serves a stored bare LF as CRLF anyway). Nothing else changes.
//!   A lone CR (one not followed by LF) is data, not a line ending: old Mac mail and some
//!   bounces are full of them, IMAP servers store and serve them as they are, and so do we. A
//!   message that is already in wire form (every IMAP source) comes back as the very same
//!   [`Bytes`], no copy.
//! - **LF storage form** ([`write_lf`]) is how Maildir and mbox targets hold a message: each
//!   CRLF of the wire form becomes LF — *except* a CRLF right after a lone CR (`\r\r\n`). A
//!   reader of an LF store ([`to_wire`] again) makes every LF that has no CR before it a CRLF and
//!   keeps a CRLF as it is, so `x\r` + LF would come back as `x\r\n`, one CR short; keeping that
//!   one line's CRLF makes it come back exactly. So wire → LF storage → wire is the identity for
//!   every message, lone CRs and NULs included (a proptest below checks it).
//! - **Canonical form** ([`canonicalise`]) turns bare CRs into CRLF too. It is never written
//!   anywhere: [`crate::Checksum`] is taken over it (streamed by
//!   [`crate::Checksum::of_message`], never built as a copy), which keeps checksums equal across
//!   stores and equal to those of state files written before lone CRs were kept.
//!
//! Per store, what round-trips (source read → target written → read back):
//!
//! | store | holds | exact | counted change |
//! |---|---|---|---|
//! | IMAP | wire form | every message in wire form | bare LF → CRLF ([`Normalisation::bare_lf`]); NUL bytes are refused by the IMAP target (a literal cannot carry them) |
//! | Maildir | LF storage form | every message | none of the message; its file holds LF (the storage form) |
//! | mbox | LF storage form, `>From ` quoted (mboxrd) | every message | none of the message; quoting is undone on read |
//!
//! What an IMAP *server* then keeps is its own business: Dovecot with its default
//! `mail_save_crlf = no` stores LF and so drops a lone CR right before a CRLF and a lone CR that
//! ends a message (with `mail_save_crlf = yes` it keeps the bytes as sent). `verify --read-back`
//! compares wire forms and names every message a server changed that way.
//!
//! A message whose line endings are *mixed* (some CRLF, some bare LF) has no store that keeps it
//! as it is — IMAP needs CRLF everywhere, an LF store writes LF everywhere — so its line endings
//! are unified, counted in [`Normalisation::mixed_endings`] and the message is named in the
//! report. Every count is computed in one vectorisable pass that does not stop at each line;
//! bytes are copied only where a bare LF must become CRLF.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What the pipeline changed in one message, or in many (the counts add up).
///
/// The report's `normalisation` object. Fields are only ever added (with `serde(default)`), so
/// reports from older versions still read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Bare LFs that became CRLF. From an LF store (Maildir, mbox) that is its storage form
    /// being undone; from an IMAP source it is a change to the message.
    pub bare_lf: u64,
    /// Lone CRs that became CRLF. Always 0 since lone CRs are kept as data (see
    /// [`Normalisation::lone_cr`]); kept so the report's schema stays the same. [`inspect`] and
    /// [`canonicalise`], which compute the canonical form, still count them here.
    pub bare_cr: u64,
    /// Lone CRs written as they are (data, not line endings).
    #[serde(default)]
    pub lone_cr: u64,
    /// Messages whose line endings were mixed (CRLF and bare LF in one message), which no
    /// store can keep as they are: written with CRLF (IMAP) or LF (Maildir, mbox) throughout.
    /// The report names each.
    #[serde(default)]
    pub mixed_endings: u64,
}

impl Normalisation {
    /// Whether nothing was changed.
    pub fn is_unchanged(&self) -> bool {
        self.bare_lf == 0 && self.bare_cr == 0 && self.mixed_endings == 0
    }

    /// Adds another message's counts.
    pub fn add(&mut self, other: Normalisation) {
        self.bare_lf += other.bare_lf;
        self.bare_cr += other.bare_cr;
        self.lone_cr += other.lone_cr;
        self.mixed_endings += other.mixed_endings;
    }

    /// A sentence naming what was changed in one message, for the report; `None` when the
    /// message's line endings were not mixed (a change of storage form only, or none).
    pub fn describe_change(&self) -> Option<String> {
        (self.mixed_endings > 0).then(|| {
            format!(
                "mixed line endings ({} bare LF among CRLF lines): written with one kind \
                 throughout, as no store can keep them mixed",
                self.bare_lf
            )
        })
    }
}

/// Byte pairs `(raw[i], raw[i + 1])` are compared in blocks of this many: small enough for `u8`
/// counters, large enough for the compiler to vectorise the loop.
const BLOCK: usize = 64;

/// Whether every CR in `raw` is followed by an LF and every LF is preceded by a CR, i.e. there
/// is nothing to change. That is the common case (every IMAP source), so it is answered first,
/// in one pass that does not stop at each line: comparing byte pairs in fixed-size blocks is
/// vectorised by the compiler, where finding each line end with `memchr2` pays a call per line
/// (about 1.6 instructions per byte on 78-byte base64 lines, against 0.4 here; benches/icount).
fn is_canonical(raw: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (raw.first(), raw.last()) else {
        return true;
    };
    if first == b'\n' || last == b'\r' {
        return false;
    }
    // A CR must start pair i exactly when an LF ends it.
    let (heads, tails) = (&raw[..raw.len() - 1], &raw[1..]);
    let (head_blocks, head_rest) = heads.as_chunks::<BLOCK>();
    let (tail_blocks, tail_rest) = tails.as_chunks::<BLOCK>();
    for (h, t) in head_blocks.iter().zip(tail_blocks) {
        let mut mismatch = 0u8;
        for (&a, &b) in h.iter().zip(t) {
            mismatch |= u8::from(a == b'\r') ^ u8::from(b == b'\n');
        }
        if mismatch != 0 {
            return false;
        }
    }
    head_rest
        .iter()
        .zip(tail_rest)
        .all(|(&a, &b)| (a == b'\r') == (b == b'\n'))
}

/// Line-ending bytes of one message: CRs, LFs and CRLF pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Endings {
    cr: u64,
    lf: u64,
    crlf: u64,
}

impl Endings {
    fn bare_lf(self) -> u64 {
        self.lf - self.crlf
    }

    fn lone_cr(self) -> u64 {
        self.cr - self.crlf
    }
}

/// Counts CRs, LFs and CRLF pairs in the same vectorisable way: bare endings are the CRs and LFs
/// that are not part of a pair. Used for messages that do need changes (Maildir and mbox
/// sources hold LF), where stopping at every line would cost as much again.
fn count_endings(raw: &[u8]) -> Endings {
    let (Some(&first), Some(&last)) = (raw.first(), raw.last()) else {
        return Endings::default();
    };
    // Pairs see every CR but the last byte and every LF but the first.
    let mut cr = u64::from(last == b'\r');
    let mut lf = u64::from(first == b'\n');
    let mut crlf = 0u64;
    let (heads, tails) = (&raw[..raw.len() - 1], &raw[1..]);
    let (head_blocks, head_rest) = heads.as_chunks::<BLOCK>();
    let (tail_blocks, tail_rest) = tails.as_chunks::<BLOCK>();
    for (h, t) in head_blocks.iter().zip(tail_blocks) {
        let (mut c, mut l, mut p) = (0u8, 0u8, 0u8);
        for (&a, &b) in h.iter().zip(t) {
            let (is_cr, is_lf) = (u8::from(a == b'\r'), u8::from(b == b'\n'));
            c += is_cr;
            l += is_lf;
            p += is_cr & is_lf;
        }
        cr += u64::from(c);
        lf += u64::from(l);
        crlf += u64::from(p);
    }
    for (&a, &b) in head_rest.iter().zip(tail_rest) {
        cr += u64::from(a == b'\r');
        lf += u64::from(b == b'\n');
        crlf += u64::from(a == b'\r' && b == b'\n');
    }
    Endings { cr, lf, crlf }
}

/// Counts what [`canonicalise`] would change in `raw` (bare LFs and lone CRs), without copying.
pub fn inspect(raw: &[u8]) -> Normalisation {
    if is_canonical(raw) {
        return Normalisation::default();
    }
    let e = count_endings(raw);
    Normalisation {
        bare_lf: e.bare_lf(),
        bare_cr: e.lone_cr(),
        ..Normalisation::default()
    }
}

/// Calls `emit` with the pieces of the canonical form of `raw`, in order: runs of `raw` and
/// `\r\n` for each line ending, so a caller can hash or write it without building it.
fn canonical_pieces(raw: &[u8], mut emit: impl FnMut(&[u8])) {
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &raw[pos..]) {
        let i = pos + off;
        emit(&raw[pos..i]);
        emit(b"\r\n");
        pos = if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        };
    }
    emit(&raw[pos..]);
}

/// Canonicalises line endings to CRLF (bare LFs and lone CRs alike). Returns the canonical
/// bytes — `raw` itself, not a copy, when it was already canonical — and what was changed. For
/// comparing and checksumming only: nothing writes this form to a store (see the module doc).
pub fn canonicalise(raw: Bytes) -> (Bytes, Normalisation) {
    let changes = inspect(&raw);
    if changes.is_unchanged() {
        return (raw, changes);
    }
    let mut out = Vec::with_capacity(raw.len() + (changes.bare_lf + changes.bare_cr) as usize);
    canonical_pieces(&raw, |piece| out.extend_from_slice(piece));
    (Bytes::from(out), changes)
}

/// Feeds the canonical form of `raw` to `hasher` without building it: through one bounded
/// buffer, because hashing each line separately costs a call per line.
pub(crate) fn hash_canonical(raw: &[u8], hasher: &mut blake3::Hasher) {
    if is_canonical(raw) {
        hasher.update(raw);
        return;
    }
    const CHUNK: usize = 64 << 10;
    let mut buf = Vec::with_capacity(CHUNK.min(raw.len() + raw.len() / 8 + 2));
    canonical_pieces(raw, |piece| {
        if buf.len() + piece.len() > CHUNK {
            hasher.update(&buf);
            buf.clear();
        }
        if piece.len() >= CHUNK {
            hasher.update(piece);
        } else {
            buf.extend_from_slice(piece);
        }
    });
    hasher.update(&buf);
}

/// The number of bytes `raw` has once canonical, without building it.
pub fn canonical_len(raw: &[u8]) -> u64 {
    let n = inspect(raw);
    raw.len() as u64 + n.bare_lf + n.bare_cr
}

/// Puts a message in wire form: every bare LF becomes CRLF, nothing else changes (a lone CR is
/// data). Returns the bytes — `raw` itself, not a copy, when it has no bare LF — and what was
/// changed. Reading an LF store through this undoes [`write_lf`] exactly.
pub fn to_wire(raw: Bytes) -> (Bytes, Normalisation) {
    if is_canonical(&raw) {
        return (raw, Normalisation::default());
    }
    let e = count_endings(&raw);
    // Mixed: bare LFs and CRLF line ends. A CRLF right after a lone CR does not count: it is
    // how an LF store holds that line (see the module doc), not a second kind of line end.
    let mixed = e.bare_lf() > 0
        && e.crlf > 0
        && e.crlf > memchr::memmem::find_iter(&raw, b"\r\r\n").count() as u64;
    let changes = Normalisation {
        bare_lf: e.bare_lf(),
        bare_cr: 0,
        lone_cr: e.lone_cr(),
        mixed_endings: u64::from(mixed),
    };
    if changes.bare_lf == 0 {
        return (raw, changes);
    }
    let mut out = Vec::with_capacity(raw.len() + changes.bare_lf as usize);
    let mut pos = 0;
    for i in memchr::memchr_iter(b'\n', &raw) {
        if i > 0 && raw[i - 1] == b'\r' {
            continue;
        }
        out.extend_from_slice(&raw[pos..i]);
        out.extend_from_slice(b"\r\n");
        pos = i + 1;
    }
    out.extend_from_slice(&raw[pos..]);
    (Bytes::from(out), changes)
}

/// The number of bytes `raw` has in wire form ([`to_wire`]), without building it: what an IMAP
/// server reports as RFC822.SIZE for it.
pub fn wire_len(raw: &[u8]) -> u64 {
    if is_canonical(raw) {
        return raw.len() as u64;
    }
    raw.len() as u64 + count_endings(raw).bare_lf()
}

/// The head of a message in canonical form, for parsing header facts the same way whatever
/// form the message is in: a lone CR in a header ends the line for every parser that reads the
/// canonical form, and fingerprints must agree across stores. Borrowed (no copy) unless the
/// header block has a lone CR or a bare LF.
pub fn canonical_head(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let head = &raw[..crate::headers::header_end(raw)];
    if is_canonical(head) {
        // The header parser stops at the first empty line itself.
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(head.len() + head.len() / 16 + 2);
    canonical_pieces(head, |piece| out.extend_from_slice(piece));
    std::borrow::Cow::Owned(out)
}

/// Whether the CRLF at `i` in `wire` is kept as CRLF in LF storage form: when a lone CR comes
/// right before it, an LF there would read back as that CR's line ending (see the module doc).
fn keeps_crlf(wire: &[u8], i: usize) -> bool {
    i > 0 && wire[i - 1] == b'\r'
}

/// Converts wire-form bytes to LF storage form, for stores that keep LF (Maildir, mbox).
/// The inverse of [`to_wire`] on wire-form input: `to_wire(to_lf(x)) == x`.
pub fn to_lf(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    write_lf(wire, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Writes wire-form bytes to `out` in LF storage form, without building the LF copy first: a
/// store writing through a buffered writer holds one buffer, not a second message. Writes the
/// same bytes as [`to_lf`].
pub fn write_lf<W: std::io::Write>(wire: &[u8], out: &mut W) -> std::io::Result<()> {
    let mut pos = 0;
    for i in memchr::memmem::find_iter(wire, b"\r\n") {
        if keeps_crlf(wire, i) {
            continue;
        }
        // Each line and its LF in one call: the line already ends just before the CR.
        out.write_all(&wire[pos..i])?;
        out.write_all(b"\n")?;
        pos = i + 2;
    }
    out.write_all(&wire[pos..])
}

/// Whether a line of wire form (ending in `\r\n`) keeps its CRLF in LF storage form: for
/// writers that go line by line (mbox). `content` is the line without its `\r\n`.
pub fn line_keeps_crlf(content: &[u8]) -> bool {
    content.last() == Some(&b'\r')
}

/// The length of `wire` in LF storage form (what [`to_lf`] returns), without a copy.
pub fn lf_len(wire: &[u8]) -> u64 {
    let converted = memchr::memmem::find_iter(wire, b"\r\n")
        .filter(|&i| !keeps_crlf(wire, i))
        .count();
    (wire.len() - converted) as u64
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
                bare_cr: 2,
                ..Normalisation::default()
            }
        );
    }

    #[test]
    fn finds_a_bare_ending_at_any_block_boundary() {
        // The fast check compares byte pairs in blocks of 64: a bare CR or LF right at, before
        // or after a block edge, and at the very start or end, must still be found.
        let canonical: Vec<u8> = b"0123456789abcde\r\n".repeat(20);
        assert!(inspect(&canonical).is_unchanged());
        for i in 0..canonical.len() {
            let mut lf = canonical.clone();
            lf[i] = b'\n';
            let mut cr = canonical.clone();
            cr[i] = b'\r';
            for broken in [lf, cr] {
                let slow = broken.windows(2).filter(|w| w == b"\r\n").count();
                let endings = broken.iter().filter(|&&b| b == b'\r' || b == b'\n').count();
                let changed = endings != 2 * slow;
                assert_eq!(!inspect(&broken).is_unchanged(), changed, "byte {i}");
            }
        }
    }

    #[test]
    fn canonical_input_is_returned_without_a_copy() {
        let raw = Bytes::from(b"Subject: x\r\n\r\nbody\r\n".to_vec());
        let (out, n) = canonicalise(raw.clone());
        assert!(n.is_unchanged());
        assert_eq!(out.as_ptr(), raw.as_ptr());
    }

    #[test]
    fn streamed_hash_crosses_its_buffer_at_every_kind_of_piece() {
        // Lines short and long (one longer than the 64 KiB buffer), endings of every kind.
        let mut data = Vec::new();
        let mut x = 7u32;
        for round in 0..3000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = if round == 1500 {
                70_000
            } else {
                (x >> 16) as usize % 200
            };
            data.extend(std::iter::repeat_n(b'a' + (round % 26) as u8, len));
            data.extend_from_slice(match x % 4 {
                0 => &b"\r\n"[..],
                1 => b"\n",
                2 => b"\r",
                _ => b"\r\r\n",
            });
        }
        let mut hasher = blake3::Hasher::new();
        hash_canonical(&data, &mut hasher);
        let (canonical, _) = canonicalise(Bytes::from(data));
        assert_eq!(hasher.finalize(), blake3::hash(&canonical));
    }

    #[test]
    fn lone_crs_stay_and_bare_lfs_become_crlf_in_wire_form() {
        let (wire, n) = to_wire(Bytes::from_static(b"a\rb\nc\r\nd\r\r\ne\n"));
        assert_eq!(&wire[..], b"a\rb\r\nc\r\nd\r\r\ne\r\n");
        assert_eq!(
            (n.bare_lf, n.lone_cr, n.mixed_endings, n.bare_cr),
            (2, 2, 1, 0)
        );
        assert_eq!(to_lf(&wire), b"a\rb\nc\nd\r\r\ne\n");
        let (mac, n) = to_wire(Bytes::from_static(b"Subject: x\r\rold mac\r"));
        assert_eq!(&mac[..], b"Subject: x\r\rold mac\r");
        assert_eq!((n.bare_lf, n.lone_cr, n.mixed_endings), (0, 3, 0));
        assert!(n.describe_change().is_none());
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
            let lf = to_lf(&out);
            prop_assert_eq!(lf_len(&out), lf.len() as u64);
            let mut written = Vec::new();
            write_lf(&out, &mut written).expect("a Vec takes every write");
            prop_assert_eq!(written, lf);
        }

        #[test]
        fn canonical_check_agrees_with_a_byte_by_byte_scan(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..400)) {
            // Byte by byte: every CR followed by LF, every LF preceded by CR.
            let expected = data.iter().enumerate().all(|(i, &b)| match b {
                b'\r' => data.get(i + 1) == Some(&b'\n'),
                b'\n' => i > 0 && data[i - 1] == b'\r',
                _ => true,
            });
            prop_assert_eq!(is_canonical(&data), expected);
        }

        #[test]
        fn counts_agree_with_a_byte_by_byte_scan(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..400)) {
            let mut expected = Normalisation::default();
            for (i, &b) in data.iter().enumerate() {
                match b {
                    b'\r' if data.get(i + 1) != Some(&b'\n') => expected.bare_cr += 1,
                    b'\n' if i == 0 || data[i - 1] != b'\r' => expected.bare_lf += 1,
                    _ => {}
                }
            }
            prop_assert_eq!(inspect(&data), expected);
        }

        #[test]
        fn wire_form_only_makes_bare_lfs_crlf(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400)) {
            let raw = Bytes::from(data.clone());
            let (wire, n) = to_wire(raw.clone());
            let e = count_endings(&data);
            prop_assert_eq!(n.bare_lf, e.bare_lf());
            prop_assert_eq!(n.lone_cr, e.lone_cr());
            prop_assert_eq!(n.bare_cr, 0);
            prop_assert_eq!(wire.len() as u64, data.len() as u64 + n.bare_lf);
            prop_assert_eq!(wire_len(&data), wire.len() as u64);
            // Removing the CR before each LF that had none gives the input back.
            let mut back = Vec::new();
            for (i, &b) in wire.iter().enumerate() {
                let inserted = b == b'\r' && wire.get(i + 1) == Some(&b'\n')
                    && back.len() < data.len() && data[back.len()] == b'\n';
                if !inserted {
                    back.push(b);
                }
            }
            prop_assert_eq!(&back, &data);
            // No bare LF is left, every lone CR is, and the canonical forms agree.
            prop_assert_eq!(count_endings(&wire).bare_lf(), 0);
            prop_assert_eq!(count_endings(&wire).lone_cr(), e.lone_cr());
            prop_assert_eq!(canonicalise(wire.clone()).0, canonicalise(raw).0);
            let (again, m) = to_wire(wire.clone());
            prop_assert_eq!(m.bare_lf, 0);
            prop_assert_eq!(again.as_ptr(), wire.as_ptr());
        }

        #[test]
        fn lf_storage_round_trips_every_wire_message(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..400)) {
            let (wire, _) = to_wire(Bytes::from(data));
            let lf = to_lf(&wire);
            prop_assert_eq!(lf_len(&wire), lf.len() as u64);
            let mut written = Vec::new();
            write_lf(&wire, &mut written).expect("a Vec takes every write");
            prop_assert_eq!(&written, &lf);
            let (back, _) = to_wire(Bytes::from(lf));
            prop_assert_eq!(back, wire);
        }

        #[test]
        fn line_by_line_lf_storage_agrees_with_write_lf(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400)) {
            let (wire, _) = to_wire(Bytes::from(data));
            let mut lines = Vec::new();
            for line in wire.split_inclusive(|&b| b == b'\n') {
                match line.strip_suffix(b"\r\n") {
                    Some(content) if !line_keeps_crlf(content) => {
                        lines.extend_from_slice(content);
                        lines.push(b'\n');
                    }
                    _ => lines.extend_from_slice(line),
                }
            }
            prop_assert_eq!(lines, to_lf(&wire));
        }

        #[test]
        fn canonical_head_is_the_head_of_the_canonical_form(data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..400)) {
            use crate::headers::header_end;
            let (canonical, _) = canonicalise(Bytes::from(data.clone()));
            let head = canonical_head(&data);
            let (h, c) = (header_end(&head), header_end(&canonical));
            prop_assert_eq!(&head[..h], &canonical[..c]);
        }

        #[test]
        fn hashing_the_canonical_form_streamed_equals_hashing_it_built(data in
            proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..2000)) {
            let mut hasher = blake3::Hasher::new();
            hash_canonical(&data, &mut hasher);
            let (canonical, _) = canonicalise(Bytes::from(data));
            prop_assert_eq!(hasher.finalize(), blake3::hash(&canonical));
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
