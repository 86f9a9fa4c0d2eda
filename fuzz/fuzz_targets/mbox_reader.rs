//! The mbox reader on arbitrary files, and the writer → reader round trip.
//!
//! The first input byte picks the mode, so one corpus feeds both:
//! - **read** (even): the rest is an mbox file, read under every variant. The reader never
//!   fails on bytes in memory, listing (no bodies) and reading agree on every message, offsets
//!   increase, a seek to each listed offset finds that message again, and unquoting only ever
//!   removes bytes. When the first byte is a multiple of four the file is also read
//!   gzip-compressed (mboxrd only: gzip is below the variants), which takes the decoder's
//!   rewind-by-re-decoding path, and must give the same messages.
//! - **round trip** (odd): the rest describes up to four messages (bytes, flags, keywords,
//!   internal date), written one after another by the writer as into a new file; reading the
//!   file back gives exactly those messages — their bytes in wire form, flags and date (the first of the
//!   internal date and the `Date:` header that a `From ` line can carry, else the writer's
//!   "now"; a message written after one without a final newline was read as part of it when
//!   its date could not be carried, the first bug this target found).

#![no_main]

use std::collections::BTreeSet;
use std::io::{Cursor, Write};
use std::panic;

use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result as ArbitraryResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use mailferry_core::normalise::to_wire;
use mailferry_core::{CanonicalItem, Flags, FolderPath, InternalDate, Item, ItemMeta, SourceKey};
use mailferry_mbox::Variant;
use mailferry_mbox::parse::{from_line_keeps, keyword_problem};
use mailferry_mbox::scan::{GzSource, Input, Message, Scanner};
use mailferry_mbox::write::render;

const VARIANTS: [Variant; 3] = [Variant::Mboxrd, Variant::Mboxo, Variant::Mboxcl2];

/// Every message of `input`, with bodies or without; panics on a reader error.
fn read_all(input: Input, variant: Variant, want_body: bool) -> Vec<Message> {
    let mut scanner = Scanner::new(input, 0, variant);
    let mut out = Vec::new();
    while let Some(m) = scanner
        .next_message(want_body)
        .unwrap_or_else(|e| panic!("reading {variant:?} from memory failed: {e}"))
    {
        out.push(m);
    }
    out
}

fn memory(bytes: &[u8]) -> Input {
    Input::Memory(Cursor::new(bytes.to_vec()))
}

fn summary(m: &Message) -> (u64, Option<i64>, Flags, u64) {
    (
        m.offset,
        m.date.map(|d| d.timestamp),
        m.flags.clone(),
        m.size,
    )
}

fn check_reader(file: &[u8], gzip: bool) {
    for variant in VARIANTS {
        let read = read_all(memory(file), variant, true);
        let listed = read_all(memory(file), variant, false);
        assert_eq!(
            read.iter().map(summary).collect::<Vec<_>>(),
            listed.iter().map(summary).collect::<Vec<_>>(),
            "listing and reading agree ({variant:?})"
        );
        let mut total = 0;
        // One scanner, seeking back and forth, as fetches of listed keys do.
        let mut again = Scanner::new(memory(file), 0, variant);
        for (i, m) in read.iter().enumerate().rev() {
            let body = m.body.as_deref().unwrap_or_else(|| panic!("no body"));
            assert_eq!(body.len() as u64, m.size);
            total += m.size;
            if i > 0 {
                assert!(m.offset > read[i - 1].offset, "offsets increase");
            }
            again.seek(m.offset).unwrap_or_else(|e| panic!("seek: {e}"));
            let found = again
                .next_message(true)
                .unwrap_or_else(|e| panic!("message at {} unreadable: {e}", m.offset))
                .unwrap_or_else(|| panic!("no message at offset {}", m.offset));
            assert_eq!(summary(&found), summary(m), "a seek finds the same message");
            assert_eq!(found.body, m.body);
        }
        assert!(total <= file.len() as u64, "unquoting only removes bytes");

        // The gzip layer is below the variants: once is enough, and it is the slow part.
        if gzip && variant == Variant::Mboxrd {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(file).unwrap_or_else(|e| panic!("{e}"));
            let compressed = encoder.finish().unwrap_or_else(|e| panic!("{e}"));
            let open = || {
                Input::gz(GzSource::Bytes(compressed.clone().into()))
                    .unwrap_or_else(|e| panic!("gzip input: {e}"))
            };
            let from_gz = read_all(open(), variant, true);
            assert_eq!(
                from_gz
                    .iter()
                    .map(|m| (summary(m), &m.body))
                    .collect::<Vec<_>>(),
                read.iter()
                    .map(|m| (summary(m), &m.body))
                    .collect::<Vec<_>>(),
                "gzip and plain read alike ({variant:?})"
            );
            if let Some(last) = read.last() {
                let mut scanner = Scanner::new(open(), 0, variant);
                scanner
                    .advance_to(last.offset)
                    .unwrap_or_else(|e| panic!("{e}"));
                scanner
                    .seek(read[0].offset)
                    .unwrap_or_else(|e| panic!("{e}"));
                let first = scanner.next_message(true).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(first.map(|m| m.body), Some(read[0].body.clone()));
            }
        }
    }
}

/// One message for the writer, as a source could hand it over.
struct Planned {
    body: Vec<u8>,
    flags: Flags,
    internal_date: Option<InternalDate>,
}

fn planned(u: &mut Unstructured<'_>) -> ArbitraryResult<Planned> {
    let mut keywords = BTreeSet::new();
    for _ in 0..u.int_in_range(0..=3)? {
        keywords.insert(u.arbitrary::<String>()?);
    }
    let flags = Flags {
        seen: u.arbitrary()?,
        answered: u.arbitrary()?,
        flagged: u.arbitrary()?,
        deleted: u.arbitrary()?,
        draft: u.arbitrary()?,
        keywords,
    };
    let internal_date = u
        .arbitrary::<Option<i64>>()?
        .map(InternalDate::from_timestamp);
    let body = u.arbitrary::<Vec<u8>>()?;
    Ok(Planned {
        body,
        flags,
        internal_date,
    })
}

/// `CanonicalItem::prepare` with libFuzzer's aborting panic hook set aside: the header parser's
/// panics are contained there by design (see the normalise_headers target).
fn prepare(item: Item) -> Option<CanonicalItem> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let prepared = CanonicalItem::prepare(item);
    panic::set_hook(hook);
    prepared.ok()
}

fn check_round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let count = u.int_in_range(1..=4u8).unwrap_or(1);
    let now = InternalDate::from_timestamp(1_700_000_000);
    let mut file = Vec::new();
    let mut written = Vec::new();
    for i in 0..count {
        let Ok(p) = planned(&mut u) else { break };
        let item = Item {
            folder: FolderPath::inbox(),
            meta: ItemMeta {
                key: SourceKey(i.to_string()),
                size: p.body.len() as u64,
                flags: p.flags,
                internal_date: p.internal_date,
            },
            body: Bytes::from(p.body),
        };
        let Some(item) = prepare(item) else { continue };
        match render(&item, now, &mut file) {
            Ok(()) => written.push(item),
            Err(why) => assert!(
                item.meta
                    .flags
                    .keywords
                    .iter()
                    .any(|k| keyword_problem(k).is_some()),
                "render refused a writable message: {why}"
            ),
        }
    }
    let read = read_all(memory(&file), Variant::Mboxrd, true);
    assert_eq!(
        read.len(),
        written.len(),
        "one message read per message written, in \"{}\"",
        file.escape_ascii()
    );
    for (m, item) in read.iter().zip(&written) {
        let body = m.body.clone().unwrap_or_default();
        // What an mbox source hands over is made wire form by `prepare`, as the message was
        // before it was written: lone CRs stay, LF storage is undone.
        let (wire, _) = to_wire(Bytes::from(body));
        assert_eq!(wire, item.body, "the message reads back byte for byte");
        assert_eq!(m.flags, item.meta.flags, "flags read back");
        // A date the separator line cannot carry is replaced, as if absent (see `render`).
        let date = [item.meta.internal_date, item.headers.date]
            .into_iter()
            .flatten()
            .find(|d| from_line_keeps(*d))
            .unwrap_or(now);
        assert_eq!(
            m.date.map(|d| d.timestamp),
            Some(date.timestamp),
            "the internal date reads back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_reader(rest, mode % 4 == 0);
    } else {
        check_round_trip(rest);
    }
});
