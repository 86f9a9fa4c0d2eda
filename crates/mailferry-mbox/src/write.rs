//! The mbox writer: mboxrd quoting, LF storage form, mailferry's metadata block first, one `\n`
//! after every message, appended (never truncating what was there) and fsynced once per batch.
//!
//! Every message is written as `From MAILER-DAEMON <asctime>\n`, the metadata block, the
//! message in LF storage form (each CRLF an LF, except one right after a lone CR, which stays
//! CRLF so that the reader's bare LF → CRLF gives the CR back: see
//! [`mailferry_core::normalise`]) with `>*From ` lines quoted by one more `>`, and one `\n`. For a
//! message ending in a newline that `\n` is the usual blank line before the next separator; for
//! one without a final newline it ends the last line, and the reader (which knows the message is
//! mailferry's by its block) removes exactly that one `\n` again. So every message (in wire
//! form: lone CRs and NULs included) round-trips byte for byte, and other readers see the message with a final newline added.
//!
//! A gzip target gets one new gzip member per batch (readers decode all members). A failed write
//! cuts the file back to its length before the batch, so a batch is all or nothing; a batch
//! whose writer died is cut back by the next opener, from the [`journal`] written before it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::Compression;
use flate2::write::GzEncoder;
use mailferry_core::normalise::line_keeps_crlf;
use mailferry_core::{CanonicalItem, InternalDate};

use crate::journal;
use crate::parse::{from_line_keeps, push_quoted_line, render_block, render_from_line};
use crate::scan::{BUFFER_BYTES, GzSource, Input};

/// Renders one message in mbox form into `out`, or says why it cannot be stored.
///
/// The separator carries the item's internal date (the source's, else its `Date:` header's);
/// a message with neither gets `now`, the time it arrived in this store, as an MTA would do.
/// A date the separator cannot carry (a year outside 1000–9999, see [`from_line_keeps`]) counts
/// as absent, with a warning: written anyway, the reader would not see the separator after a
/// message without a final newline and would merge the two messages.
pub fn render(item: &CanonicalItem, now: InternalDate, out: &mut Vec<u8>) -> Result<(), String> {
    let block = render_block(&item.meta.flags)?;
    let mut date = now;
    for candidate in [item.meta.internal_date, item.headers.date]
        .into_iter()
        .flatten()
    {
        if from_line_keeps(candidate) {
            date = candidate;
            break;
        }
        tracing::warn!(
            key = %item.meta.key,
            folder = %item.folder,
            timestamp = candidate.timestamp,
            "an mbox From line cannot carry this date (its year is not 1000-9999); \
             the message is written with another"
        );
    }
    out.extend_from_slice(render_from_line(date).as_bytes());
    out.extend_from_slice(&block);
    // Line by line from the wire-form bytes, not through a whole LF copy of the message: for
    // a very large message that copy would be one more message-sized buffer at the peak.
    out.reserve(item.body.len() + item.body.len() / 64 + 1);
    for line in item.body.split_inclusive(|&b| b == b'\n') {
        match line.strip_suffix(b"\r\n") {
            Some(content) if !line_keeps_crlf(content) => {
                push_quoted_line(out, content);
                out.push(b'\n');
            }
            _ => push_quoted_line(out, line),
        }
    }
    out.push(b'\n');
    Ok(())
}

/// The current time, whole seconds, UTC.
pub fn now() -> InternalDate {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    InternalDate::from_timestamp(secs)
}

/// What is known about a gzip file's decompressed stream, so appends need not decode it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GzTail {
    /// The compressed length and mtime this was computed for.
    pub stamp: (u64, Option<SystemTime>),
    /// Decompressed length.
    pub len: u64,
    /// Whether the decompressed stream ends with `\n` (or is empty).
    pub ends_with_newline: bool,
}

/// Creates `dir` and its missing parents with mode 0700, fsyncing each new directory's parent
/// so the new entries are durable.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_parent(dir)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}

/// Creates an empty mbox file (mode 0600) unless it exists; its directory must exist. A gzip
/// file gets one empty member, so that it is valid gzip for every tool.
pub fn create_file(path: &Path, gzip: bool) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => {
            if gzip {
                GzEncoder::new(&file, Compression::default()).finish()?;
            }
            file.sync_all()?;
            sync_parent(path)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn open_for_append(path: &Path) -> io::Result<(File, bool)> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    Ok((file, !existed))
}

fn stamp(file: &File) -> io::Result<(u64, Option<SystemTime>)> {
    let meta = file.metadata()?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Appends rendered messages (`messages[i]` is one message) to `path`, creating it if needed.
/// Returns each message's offset in the decompressed file. `gz_tail` caches what a gzip file's
/// decompressed stream looks like between calls (the caller serialises appends per file).
pub fn append(
    path: &Path,
    gzip: bool,
    messages: &[Vec<u8>],
    gz_tail: &mut Option<GzTail>,
) -> io::Result<Vec<u64>> {
    let (file, created) = open_for_append(path)?;
    // flock: other mailferry processes and MUAs that lock mbox files wait for us.
    file.lock()?;
    journal::recover(path, Some(&file))?;
    let before = file.metadata()?.len();
    let result = if gzip {
        append_gz(path, &file, before, messages, gz_tail)
    } else {
        append_plain(path, &file, before, messages)
    };
    let result = result.and_then(|offsets| {
        file.sync_data()?;
        if created {
            sync_parent(path)?;
        }
        journal::finish(path)?;
        Ok(offsets)
    });
    if result.is_err() {
        // Take back what this batch wrote; what was there before is left alone. Should that
        // fail, the journal stays, and the next opener cuts the batch back.
        if file.set_len(before).is_ok() {
            let _ = journal::finish(path);
        }
        *gz_tail = None;
    }
    result
}

fn offsets_after(start: u64, messages: &[Vec<u8>]) -> Vec<u64> {
    let mut at = start;
    messages
        .iter()
        .map(|m| {
            let offset = at;
            at += m.len() as u64;
            offset
        })
        .collect()
}

fn append_plain(
    path: &Path,
    mut file: &File,
    len: u64,
    messages: &[Vec<u8>],
) -> io::Result<Vec<u64>> {
    let mut newline = false;
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)?;
        // A separator must start a line.
        newline = last[0] != b'\n';
    }
    let start = len + u64::from(newline);
    let planned = start + messages.iter().map(|m| m.len() as u64).sum::<u64>();
    journal::begin(path, len, Some(planned))?;
    if newline {
        file.write_all(b"\n")?;
    }
    let offsets = offsets_after(start, messages);
    let mut out = io::BufWriter::with_capacity(BUFFER_BYTES, &mut file);
    for m in messages {
        out.write_all(m)?;
    }
    out.flush()?;
    Ok(offsets)
}

fn append_gz(
    path: &Path,
    file: &File,
    compressed_len: u64,
    messages: &[Vec<u8>],
    gz_tail: &mut Option<GzTail>,
) -> io::Result<Vec<u64>> {
    let now_stamp = stamp(file)?;
    let tail = match *gz_tail {
        Some(t) if t.stamp == now_stamp => t,
        _ if compressed_len == 0 => GzTail {
            stamp: now_stamp,
            len: 0,
            ends_with_newline: true,
        },
        _ => decoded_tail(path, now_stamp)?,
    };
    journal::begin(path, compressed_len, None)?;
    let mut encoder = GzEncoder::new(
        io::BufWriter::with_capacity(BUFFER_BYTES, file),
        Compression::default(),
    );
    let mut start = tail.len;
    if !tail.ends_with_newline {
        encoder.write_all(b"\n")?;
        start += 1;
    }
    let offsets = offsets_after(start, messages);
    let mut written = 0u64;
    for m in messages {
        encoder.write_all(m)?;
        written += m.len() as u64;
    }
    encoder.finish()?.flush()?;
    *gz_tail = Some(GzTail {
        stamp: stamp(file)?,
        len: start + written,
        ends_with_newline: messages
            .iter()
            .rev()
            .find(|m| !m.is_empty())
            .is_none_or(|m| m.ends_with(b"\n")),
    });
    Ok(offsets)
}

/// Decodes a whole gzip file once to learn its decompressed length and last byte.
fn decoded_tail(path: &Path, stamp: (u64, Option<SystemTime>)) -> io::Result<GzTail> {
    use std::io::Read;
    let mut input = Input::gz(GzSource::File(path.to_path_buf()))?;
    let mut buf = vec![0u8; BUFFER_BYTES];
    let mut len = 0u64;
    let mut last = b'\n';
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        last = buf[n - 1];
    }
    Ok(GzTail {
        stamp,
        len,
        ends_with_newline: last == b'\n',
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use mailferry_core::normalise::to_lf;
    use mailferry_core::{Flags, FolderPath, Item, ItemMeta, SourceKey};

    use super::*;
    use crate::parse::Variant;
    use crate::scan::Scanner;

    fn item(body: &'static [u8], flags: Flags) -> CanonicalItem {
        CanonicalItem::prepare(Item {
            folder: FolderPath::inbox(),
            meta: ItemMeta {
                key: SourceKey::from("k"),
                size: body.len() as u64,
                flags,
                internal_date: Some(InternalDate::from_timestamp(820_631_134)),
            },
            body: Bytes::from_static(body),
        })
        .expect("prepare")
    }

    fn read_all(input: Input) -> Vec<(Vec<u8>, Flags)> {
        let mut s = Scanner::new(input, 0, Variant::Mboxrd);
        let mut out = Vec::new();
        while let Some(m) = s.next_message(true).expect("scan") {
            out.push((m.body.unwrap_or_default(), m.flags));
        }
        out
    }

    #[test]
    fn renders_block_quoting_and_final_newline() {
        let mut out = Vec::new();
        let it = item(
            b"Subject: a\r\n\r\nFrom me\r\n>From you",
            Flags::from_imap(["\\Seen"]),
        );
        render(&it, now(), &mut out).expect("render");
        assert_eq!(
            out,
            b"From MAILER-DAEMON Wed Jan  3 01:05:34 1996\nStatus: RO\nX-Status: \nX-Keywords: \nSubject: a\n\n>From me\n>>From you\n"
        );
    }

    #[test]
    fn every_final_newline_shape_round_trips() {
        let cases: [&'static [u8]; 8] = [
            b"Subject: a\r\n\r\nbody\r\n",
            b"Subject: a\r\n\r\nno newline",
            b"Subject: a\r\n\r\nblank lines\r\n\r\n\r\n",
            b"",
            b"Subject: headers only",
            b"From x\r\n\r\n",
            // A wrong Content-Length in a message mailferry wrote must not move the boundary.
            b"Content-Length: 0\r\n\r\nFrom a Wed Nov 25 00:28:58 2026\r\n",
            b"Status: O\r\nX-Status: \r\nX-Keywords: \r\n\r\nlooks like a block",
        ];
        let mut file = Vec::new();
        for body in cases {
            render(&item(body, Flags::default()), now(), &mut file).expect("render");
        }
        let read = read_all(Input::Memory(std::io::Cursor::new(file)));
        let bodies: Vec<Vec<u8>> = read.into_iter().map(|(b, _)| b).collect();
        let want: Vec<Vec<u8>> = cases.iter().map(|c| to_lf(c)).collect();
        assert_eq!(bodies, want);
    }

    #[test]
    fn lone_crs_nuls_and_crs_before_line_ends_round_trip_exactly() {
        let cases: [&'static [u8]; 6] = [
            b"Subject: mac\r\rold\rmac\r",
            b"Subject: a\r\n\r\nline\r\r\nend\r\r\n",
            b"Subject: a\r\n\r\nnul\0byte\r\n\0",
            b"Subject: a\r\n\r\nFrom x\r\r\n>From y\r\n",
            b"Subject: a\r\n\r\nends in cr\r",
            b"Subject: a\n\r\nmixed\rends\n\r\r\n",
        ];
        let items: Vec<CanonicalItem> = cases.iter().map(|c| item(c, Flags::default())).collect();
        let mut file = Vec::new();
        for it in &items {
            render(it, now(), &mut file).expect("render");
        }
        let read = read_all(Input::Memory(std::io::Cursor::new(file)));
        let back: Vec<Bytes> = read
            .into_iter()
            .map(|(b, _)| mailferry_core::normalise::to_wire(Bytes::from(b)).0)
            .collect();
        let want: Vec<Bytes> = items.iter().map(|i| i.body.clone()).collect();
        assert_eq!(back, want);
    }

    /// Found by the mbox_reader fuzz target: a message without a final newline, then one whose
    /// date has a five-digit-plus year, read back as one message.
    #[test]
    fn a_date_the_from_line_cannot_carry_does_not_merge_messages() {
        let mut far = item(
            b"Subject: far\r\n\r\nx\r\n",
            Flags::from_imap(["\\Deleted"]),
        );
        far.meta.internal_date = Some(InternalDate::from_timestamp(8_028_075_836_918_883_187));
        let fallback = InternalDate::from_timestamp(1_700_000_000);
        let mut file = Vec::new();
        render(&item(b"o", Flags::default()), fallback, &mut file).expect("render");
        render(&far, fallback, &mut file).expect("render");
        assert!(
            !file.windows(12).any(|w| w == b"254399597878"),
            "{}",
            file.escape_ascii()
        );
        let mut s = Scanner::new(
            Input::Memory(std::io::Cursor::new(file)),
            0,
            Variant::Mboxrd,
        );
        let first = s.next_message(true).expect("scan").expect("first");
        let second = s.next_message(true).expect("scan").expect("second");
        assert_eq!(first.body.as_deref(), Some(&b"o"[..]));
        assert_eq!(second.body.as_deref(), Some(&b"Subject: far\n\nx\n"[..]));
        assert!(second.flags.deleted);
        assert_eq!(
            second.date,
            Some(fallback),
            "no Date: header, so the fallback date"
        );
        assert!(s.next_message(false).expect("scan").is_none());
    }

    #[test]
    fn gzip_appends_are_new_members_read_as_one_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.gz");
        let mut tail = None;
        let mut offsets = Vec::new();
        let mut lens = Vec::new();
        for (i, body) in [&b"Subject: 1\r\n\r\none\r\n"[..], b"Subject: 2\r\n\r\ntwo"]
            .into_iter()
            .enumerate()
        {
            let mut m = Vec::new();
            let flags = Flags::from_imap([format!("k{i}").as_str()]);
            render(&item(body, flags), now(), &mut m).expect("render");
            lens.push(m.len() as u64);
            offsets.extend(append(&path, true, &[m], &mut tail).expect("append"));
            if i == 0 {
                // Forget the cache once, so the second append decodes the file to find its end.
                tail = None;
            }
        }
        let raw = fs::read(&path).expect("read");
        let members = raw.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
        assert_eq!(members, 2, "one gzip member per append");
        let read = read_all(Input::gz(GzSource::Bytes(Arc::from(raw))).expect("gz"));
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0, b"Subject: 2\n\ntwo");
        assert!(read[1].1.keywords.contains("k1"));
        assert_eq!(offsets, [0, lens[0]]);
    }

    #[test]
    fn appending_to_a_file_without_final_newline_starts_a_new_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mbox");
        fs::write(&path, b"From a Sat Jan  3 01:05:34 1996\n\nforeign").expect("write");
        let mut m = Vec::new();
        render(
            &item(b"Subject: b\r\n\r\nb\r\n", Flags::default()),
            now(),
            &mut m,
        )
        .expect("render");
        let offsets = append(&path, false, &[m], &mut None).expect("append");
        assert_eq!(offsets, [41]);
        assert!(
            !journal::journal_path(&path).exists(),
            "no journal after a batch"
        );
        let read = read_all(Input::plain(File::open(&path).expect("open")));
        assert_eq!(read[0].0, b"\nforeign\n");
        assert_eq!(read[1].0, b"Subject: b\n\nb\n");
    }
}
