//! Reading a folder: metadata in UID ranges, bodies in chunks, very large bodies in parts.
//!
//! - **Listing never holds a session while the caller works.** Metadata comes in UID ranges
//!   (`UID FETCH lo:hi`, starting at 4,096 UIDs and growing while ranges come back sparse), and
//!   the session goes back to the pool between ranges, so a copier that keeps the listing open
//!   while it fetches and appends cannot starve the pool, even at one connection.
//! - **A range that fails is asked again smaller** (a quarter, down to 32 UIDs), then grows
//!   back as ranges succeed. A listing with headers is about 250 bytes per message, so 4,096
//!   UIDs are a megabyte in one response; on a link that drops every few hundred kilobytes a
//!   fixed range would never complete, and the listing (and with it the copier's resolution of
//!   uncertain appends, which lists the target) would fail however often it is retried.
//! - **Bodies stream as they arrive**, in chunks of at most 200 messages or 32 MB per command
//!   (UID sets compressed into ranges). Every asked UID must come back: one the server did not
//!   return — expunged meanwhile, or a NO that async-imap would have turned into an empty
//!   success — becomes an item error naming it, never a silent drop.
//! - **Large bodies in parts.** async-imap holds each FETCH response whole in memory, so messages
//!   over 16 MB are fetched as `BODY.PEEK[]<offset.length>` parts of 8 MB and assembled.
//! - **Zero-copy where it pays.** A body that fills most of the response buffer is sliced out of
//!   it as `Bytes`; small ones are copied so they do not pin a larger buffer.
//! - **Transient failures are retried** on a fresh session (exponential backoff) for what was not
//!   yet delivered, so a dropped connection does not fail the folder.

use std::time::Duration;

use async_imap::imap_proto::{AttributeValue, Response, SectionPath};
use bytes::{Bytes, BytesMut};
use mailferry_core::{Error, Flags, HeaderFacts, InternalDate, Result};

use crate::conn::{Conn, Resp};
use crate::proto::uid_set;

/// Bodies above this are fetched in parts.
pub(crate) const LARGE: u64 = 16 << 20;
/// Size of one part of a large body.
const PART: u32 = 8 << 20;
/// Messages per body-fetch command at most.
pub(crate) const CHUNK_ITEMS: usize = 200;
/// Bytes per body-fetch command at most (by listed size).
pub(crate) const CHUNK_BYTES: u64 = 32 << 20;
/// First UID range of a listing, and the most it grows to.
pub(crate) const FIRST_RANGE: u32 = 4096;
const MAX_RANGE: u32 = 1 << 16;
/// The smallest UID range a failing listing shrinks to.
const MIN_RANGE: u32 = 32;
/// Attempts for one read operation on transient errors.
pub(crate) const ATTEMPTS: u32 = 4;

/// The delay before retry `attempt` (1-based): the schedule every retry loop of mailferry uses
/// ([`mailferry_core::layers::RetryPolicy`]).
pub(crate) fn backoff(attempt: u32) -> Duration {
    mailferry_core::layers::RetryPolicy::default().delay(attempt)
}

/// One FETCH response, reduced to what we use.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub uid: Option<u32>,
    pub flags: Option<Flags>,
    pub internal_date: Option<InternalDate>,
    pub size: Option<u32>,
    /// `BODY[]` or a part of it, with the part's offset.
    pub body: Option<(Option<u32>, Bytes)>,
    /// `BODY[HEADER.FIELDS (…)]`.
    pub header: Option<Bytes>,
}

/// Takes a byte slice out of a response: sliced from its buffer (no copy) when it is nearly
/// all of it, copied otherwise. A slice keeps the whole buffer alive — the read block the
/// response was parsed from, with its free tail and any bytes read after the response — while
/// the memory budget counts only the message: slicing at half the buffer, as this once did,
/// let a 32 MiB budget hold up to 64 MiB. At 7/8 the overshoot stays under 15%, and what is
/// copied instead is a memcpy of a message smaller than one read block's slack.
fn take_bytes(buffer: &Bytes, data: &[u8]) -> Bytes {
    let start = (data.as_ptr() as usize).wrapping_sub(buffer.as_ptr() as usize);
    let inside = start
        .checked_add(data.len())
        .is_some_and(|end| end <= buffer.len());
    if inside && data.len() * 8 >= buffer.len() * 7 {
        buffer.slice_ref(data)
    } else {
        Bytes::copy_from_slice(data)
    }
}

/// Parses a FETCH response; `None` for anything else.
pub(crate) fn parse_fetch(resp: &Resp) -> Option<Fetched> {
    let Response::Fetch(_, attrs) = resp.parsed() else {
        return None;
    };
    let mut f = Fetched::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => f.uid = Some(u),
            AttributeValue::Flags(list) => {
                f.flags = Some(Flags::from_imap(list.iter().map(|c| c.as_ref())));
            }
            AttributeValue::InternalDate(d) => f.internal_date = InternalDate::parse_imap(&d),
            AttributeValue::Rfc822Size(n) => f.size = Some(n),
            AttributeValue::BodySection {
                section: None,
                index,
                data,
            } => {
                let data = data.as_deref().unwrap_or_default();
                f.body = Some((index, take_bytes(resp.buffer(), data)));
            }
            AttributeValue::BodySection {
                section: Some(SectionPath::Full(_)),
                data,
                ..
            } => f.header = Some(Bytes::copy_from_slice(data.as_deref().unwrap_or_default())),
            _ => {}
        }
    }
    Some(f)
}

/// The tagged answer in `resp` if it answers `tag`; an error if it answers another tag.
pub(crate) fn answer_to(
    conn: &Conn,
    resp: &Resp,
    tag: &str,
) -> Result<Option<crate::proto::Tagged>> {
    match resp.parsed() {
        Response::Done {
            tag: t,
            status,
            outcome,
        } if t.0 == tag => Ok(Some(crate::proto::Tagged::new(
            status,
            outcome.code.as_ref(),
            outcome.information.as_deref(),
        ))),
        Response::Done { tag: t, .. } => Err(Error::transient(format!(
            "{}: unexpected answer for tag {}: the session is out of step",
            conn.label(),
            t.0
        ))),
        _ => Ok(None),
    }
}

/// One page of a listing.
pub(crate) struct Page<T> {
    /// What came back, in UID order.
    pub items: Vec<T>,
    /// The next UID to ask for, or `None` when the folder is exhausted.
    pub next: Option<u32>,
    /// The folder's UIDVALIDITY.
    pub validity: u32,
}

/// Fetches the metadata (and, with `headers`, the fingerprint headers) of UIDs from `lo` on, one
/// range of `*step` UIDs. `None` when the folder does not exist.
pub(crate) async fn list_page(
    conn: &mut Conn,
    name: &str,
    lo: u32,
    step: &mut u32,
    headers: bool,
) -> Result<Option<Page<(u32, Fetched)>>> {
    let Some(sel) = conn.select_with(name, false, true).await? else {
        return Ok(None);
    };
    let hi = match sel.uid_next {
        Some(next) if next <= lo => {
            return Ok(Some(Page {
                items: Vec::new(),
                next: None,
                validity: sel.validity,
            }));
        }
        Some(next) => Some((next - 1).min(lo.saturating_add(*step - 1))),
        None => None,
    };
    let range = hi.map_or(format!("{lo}:*"), |hi| format!("{lo}:{hi}"));
    let what = if headers {
        "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)])"
    } else {
        "(UID FLAGS INTERNALDATE RFC822.SIZE)"
    };
    let tag = conn.send(&format!("UID FETCH {range} {what}")).await?;
    let mut items = Vec::new();
    let t = conn
        .finish(tag, |resp| {
            if let Some(f) = parse_fetch(&resp)
                && let Some(uid) = f.uid
                // `lo:*` returns the last message even when its UID is below `lo`.
                && uid >= lo
                && hi.is_none_or(|hi| uid <= hi)
            {
                items.push((uid, f));
            }
            Ok(())
        })
        .await?;
    if !t.is_ok() {
        return Err(conn.refused(&t, &format!("UID FETCH {range} in {name}"), false));
    }
    items.sort_by_key(|(uid, _)| *uid);
    items.dedup_by_key(|(uid, _)| *uid);
    *step = next_range(*step, Some(items.len()));
    Ok(Some(Page {
        items,
        next: hi.and_then(|hi| hi.checked_add(1)),
        validity: sel.validity,
    }))
}

/// The UID range after a page that returned this many messages (`None`: it failed). Sparse
/// ranges double (up to 65,536 UIDs); dense ones double back to the first range after a shrink;
/// a failed one is quartered (down to 32 UIDs).
pub(crate) fn next_range(step: u32, returned: Option<usize>) -> u32 {
    match returned {
        None => (step / 4).max(MIN_RANGE),
        Some(n) if (n as u64) * 4 < u64::from(step) => step.saturating_mul(2).min(MAX_RANGE),
        Some(_) if step < FIRST_RANGE => step.saturating_mul(2).min(FIRST_RANGE),
        Some(_) => step,
    }
}

/// The fingerprint of a message from its `HEADER.FIELDS` bytes.
pub(crate) fn fingerprint(header: Option<Bytes>) -> Option<String> {
    HeaderFacts::fingerprint_of(&header?)
}

/// Fetches one large body in parts and assembles it. `Ok(None)` when the server returned
/// nothing for the UID.
pub(crate) async fn fetch_large(
    conn: &mut Conn,
    uid: u32,
    size_hint: u64,
) -> Result<std::result::Result<Bytes, crate::proto::Tagged>> {
    let mut body = BytesMut::with_capacity(usize::try_from(size_hint).unwrap_or(0));
    loop {
        let offset = u32::try_from(body.len()).map_err(|_| {
            Error::item(format!(
                "message {uid} is larger than IMAP partial fetch allows"
            ))
        })?;
        let tag = conn
            .send(&format!(
                "UID FETCH {uid} (UID BODY.PEEK[]<{offset}.{PART}>)"
            ))
            .await?;
        let mut part: Option<Bytes> = None;
        let t = conn
            .finish(tag, |resp| {
                if let Some(f) = parse_fetch(&resp)
                    && f.uid == Some(uid)
                    && let Some((_, bytes)) = f.body
                {
                    part = Some(bytes);
                }
                Ok(())
            })
            .await?;
        let Some(part) = part.filter(|_| t.is_ok()) else {
            return Ok(Err(t));
        };
        body.extend_from_slice(&part);
        if part.len() < PART as usize {
            return Ok(Ok(body.freeze()));
        }
    }
}

/// Splits UIDs (with listed sizes) into fetch commands: runs of small messages under the chunk
/// limits, and each large message on its own.
pub(crate) fn plan_chunks(sizes: &[(u32, u64)]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (i, &(_, size)) in sizes.iter().enumerate() {
        if size > LARGE {
            if !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                bytes = 0;
            }
            chunks.push(vec![i]);
            continue;
        }
        if !current.is_empty() && (current.len() >= CHUNK_ITEMS || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The UID FETCH command for the bodies of a chunk.
pub(crate) fn body_command(uids: &[u32]) -> String {
    format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(uids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_bytes_and_isolate_large_messages() {
        let mut sizes: Vec<(u32, u64)> = (1..=450).map(|u| (u, 1000)).collect();
        sizes[300].1 = 20 << 20;
        let chunks = plan_chunks(&sizes);
        let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![200, 100, 1, 149]);
        assert_eq!(chunks[2], vec![300]);
        let big: Vec<(u32, u64)> = (1..=5).map(|u| (u, 10 << 20)).collect();
        assert_eq!(
            plan_chunks(&big).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 2],
            "32 MB per command"
        );
        let flat: Vec<usize> = chunks.concat();
        assert_eq!(flat, (0..450).collect::<Vec<_>>(), "order and completeness");
    }

    #[test]
    fn fetch_responses_give_uid_flags_date_size_and_body() {
        let raw: &'static [u8] = b"* 3 FETCH (UID 17 FLAGS (\\Seen $Forwarded \\Recent) INTERNALDATE \"05-Mar-2024 23:59:01 -0130\" RFC822.SIZE 12 BODY[] {12}\r\nSubject: x\r\n)\r\n";
        let resp = Resp::from_static(raw);
        let f = parse_fetch(&resp).expect("a fetch");
        assert_eq!(f.uid, Some(17));
        let flags = f.flags.expect("flags");
        assert!(flags.seen && flags.keywords.contains("$Forwarded"));
        assert_eq!(f.internal_date.expect("date").offset_minutes, -90);
        assert_eq!(f.size, Some(12));
        let (index, body) = f.body.expect("body");
        assert_eq!((index, &body[..]), (None, &b"Subject: x\r\n"[..]));
    }

    #[test]
    fn large_bodies_are_sliced_without_a_copy() {
        let body = vec![b'a'; 200_000];
        let mut raw = format!("* 1 FETCH (UID 5 BODY[]<0> {{{}}}\r\n", body.len()).into_bytes();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b")\r\n");
        let resp = Resp::for_test(raw);
        let owner_ptr = resp.buffer().as_ptr() as usize;
        let f = parse_fetch(&resp).expect("a fetch");
        let (index, bytes) = f.body.expect("body");
        assert_eq!(index, Some(0));
        assert_eq!(bytes.len(), body.len());
        assert!(bytes.iter().all(|&b| b == b'a'));
        let offset = bytes.as_ptr() as usize - owner_ptr;
        assert!(offset < 64, "sliced from the response buffer, not copied");
    }

    #[test]
    fn listing_ranges_shrink_on_failure_and_recover_on_success() {
        assert_eq!(next_range(FIRST_RANGE, None), 1024);
        assert_eq!(next_range(64, None), MIN_RANGE);
        assert_eq!(next_range(MIN_RANGE, None), MIN_RANGE);
        assert_eq!(
            next_range(256, Some(256)),
            512,
            "dense, below the first range"
        );
        assert_eq!(
            next_range(FIRST_RANGE, Some(4096)),
            FIRST_RANGE,
            "dense, at it"
        );
        assert_eq!(next_range(FIRST_RANGE, Some(10)), 8192, "sparse");
        assert_eq!(next_range(MAX_RANGE, Some(0)), MAX_RANGE);
    }

    #[test]
    fn header_fields_give_a_fingerprint() {
        let h = Bytes::from_static(b"Message-ID: <a@b>\nSubject: s\n\n");
        assert_eq!(fingerprint(Some(h)).as_deref(), Some("id:a@b"));
        assert_eq!(fingerprint(None), None);
    }
}
