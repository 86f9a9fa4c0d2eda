//! A deterministic generator of realistic mailboxes. The same spec and seed give the same bytes
//! on every machine, so benches compare like with like and no mail is checked in.
//!
//! Messages look like real mail: a `Received` chain, `Message-ID`, `Date`, MIME multipart
//! structure, wrapped text, base64 attachments with 76-character lines. With `quirks` on, the
//! awkward cases migrations meet are mixed in: LF-only messages, no `Message-ID`, reused
//! `Message-ID`s, byte-identical duplicates, raw 8-bit headers, keywords.

use bytes::Bytes;
use mailferry_core::{Flags, FolderPath, InternalDate};

/// Message sizes of a corpus, in bytes.
#[derive(Debug, Clone)]
pub struct SizeMix {
    /// Plain messages: size range.
    pub small: (usize, usize),
    /// Fraction of messages with an attachment.
    pub attachment_fraction: f64,
    /// Messages with an attachment: size range.
    pub attachment: (usize, usize),
    /// Fraction of very large messages.
    pub huge_fraction: f64,
    /// Very large messages: size range.
    pub huge: (usize, usize),
}

impl SizeMix {
    /// Mostly 2–50 KB, 10% with 0.1–2 MB attachments, 1% of 5–15 MB (the foundation benches).
    pub fn realistic() -> Self {
        SizeMix {
            small: (2_000, 50_000),
            attachment_fraction: 0.10,
            attachment: (100_000, 2_000_000),
            huge_fraction: 0.01,
            huge: (5_000_000, 15_000_000),
        }
    }

    /// Mean about 45 KB: an ordinary office mailbox.
    pub fn typical() -> Self {
        SizeMix {
            small: (1_500, 40_000),
            attachment_fraction: 0.03,
            attachment: (100_000, 1_500_000),
            huge_fraction: 0.0,
            huge: (0, 0),
        }
    }

    /// Mean about 286 KB with 1.4% of 5–15 MB messages.
    pub fn heavy() -> Self {
        SizeMix {
            small: (2_000, 60_000),
            attachment_fraction: 0.12,
            attachment: (100_000, 1_000_000),
            huge_fraction: 0.0136,
            huge: (5_000_000, 15_000_000),
        }
    }

    /// Small messages only (fast tests).
    pub fn small() -> Self {
        SizeMix {
            small: (500, 8_000),
            attachment_fraction: 0.0,
            attachment: (0, 0),
            huge_fraction: 0.0,
            huge: (0, 0),
        }
    }
}

/// The first internal date of a generated corpus (13 September 2020).
const FIRST_DATE: i64 = 1_600_000_000;
/// Seconds from [`FIRST_DATE`] to the last date (the start of 2025).
const DATE_SPAN: i64 = 1_735_689_600 - FIRST_DATE;

/// Seconds between the internal dates of consecutive messages in a corpus of `count`.
fn date_step(count: usize) -> i64 {
    (DATE_SPAN / count.max(1) as i64).clamp(1, 3_600)
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct CorpusSpec {
    /// Number of messages.
    pub count: usize,
    /// Seed; the same seed gives the same corpus.
    pub seed: u64,
    /// Folders the messages are spread over (round-robin, weighted to the first).
    pub folders: Vec<FolderPath>,
    /// Size distribution.
    pub sizes: SizeMix,
    /// Mix in awkward cases (see the module docs).
    pub quirks: bool,
}

impl CorpusSpec {
    /// `count` messages in INBOX with the given sizes and quirks.
    pub fn new(count: usize, sizes: SizeMix) -> Self {
        CorpusSpec {
            count,
            seed: 42,
            folders: vec![FolderPath::inbox()],
            sizes,
            quirks: false,
        }
    }

    /// With quirks.
    pub fn with_quirks(mut self) -> Self {
        self.quirks = true;
        self
    }

    /// Spread over these folders.
    pub fn in_folders(mut self, folders: Vec<FolderPath>) -> Self {
        self.folders = folders;
        self
    }

    /// Generates the messages lazily (a multi-GB corpus never sits in memory).
    pub fn generate(&self) -> Generator {
        Generator {
            spec: self.clone(),
            rng: Rng(self.seed ^ 0x9E37_79B9_7F4A_7C15),
            index: 0,
            previous: None,
        }
    }

    /// All messages in memory (small corpora).
    pub fn messages(&self) -> Vec<GeneratedMessage> {
        self.generate().collect()
    }
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct GeneratedMessage {
    /// Its folder.
    pub folder: FolderPath,
    /// Raw bytes.
    pub body: Bytes,
    /// Flags and keywords.
    pub flags: Flags,
    /// Internal date.
    pub internal_date: InternalDate,
}

/// SplitMix64: tiny, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn range(&mut self, (lo, hi): (usize, usize)) -> usize {
        lo + self.below((hi.saturating_sub(lo)) as u64 + 1) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

const WORDS: &[&str] = &[
    "the",
    "meeting",
    "report",
    "quarter",
    "please",
    "review",
    "attached",
    "budget",
    "project",
    "schedule",
    "thanks",
    "regards",
    "update",
    "customer",
    "invoice",
    "deadline",
    "team",
    "follow",
    "up",
    "on",
    "our",
    "call",
    "about",
    "new",
    "plan",
    "for",
    "next",
    "week",
    "and",
    "migration",
    "server",
    "mailbox",
    "archive",
    "patient",
    "clinic",
    "ward",
    "rota",
    "audit",
];
const NAMES: &[&str] = &[
    "Alice Smith",
    "Bob Jones",
    "Chloé Durand",
    "Dmitri Ivanov",
    "Eve Müller",
    "Farah Khan",
    "Giovanni Rossi",
    "Hana Sato",
];
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The iterator [`CorpusSpec::generate`] returns.
pub struct Generator {
    spec: CorpusSpec,
    rng: Rng,
    index: usize,
    previous: Option<GeneratedMessage>,
}

fn rfc5322_date(d: InternalDate) -> String {
    // asctime is "Wed Nov 25 00:28:58 2026" in UTC.
    let a = d.to_asctime();
    let p: Vec<&str> = a.split_whitespace().collect();
    format!("{}, {} {} {} {} +0000", p[0], p[2], p[1], p[4], p[3])
}

impl Generator {
    fn text(&mut self, out: &mut Vec<u8>, bytes: usize, eol: &[u8]) {
        let start = out.len();
        let mut line = 0;
        while out.len() - start < bytes {
            let w = WORDS[self.rng.below(WORDS.len() as u64) as usize];
            out.extend_from_slice(w.as_bytes());
            line += w.len() + 1;
            if line > 68 {
                out.extend_from_slice(eol);
                line = 0;
            } else {
                out.push(b' ');
            }
        }
        out.extend_from_slice(eol);
    }

    fn base64(&mut self, out: &mut Vec<u8>, bytes: usize, eol: &[u8]) {
        let lines = bytes.div_ceil(77);
        out.reserve(lines * 78);
        for _ in 0..lines {
            let mut r = self.rng.next();
            for i in 0..76 {
                if i % 10 == 0 {
                    r = self.rng.next();
                }
                out.push(B64[(r & 63) as usize]);
                r >>= 6;
            }
            out.extend_from_slice(eol);
        }
    }

    fn message(&mut self) -> GeneratedMessage {
        let i = self.index;
        let q = self.spec.quirks;
        let folder = {
            let n = self.spec.folders.len().max(1) as u64;
            // Half the mail in the first folder, the rest spread over all of them.
            let f = if self.rng.chance(0.5) {
                0
            } else {
                self.rng.below(n)
            };
            self.spec
                .folders
                .get(f as usize)
                .cloned()
                .unwrap_or_else(FolderPath::inbox)
        };
        let sizes = self.spec.sizes.clone();
        let (target, attachment) = if self.rng.chance(sizes.huge_fraction) {
            (self.rng.range(sizes.huge), true)
        } else if self.rng.chance(sizes.attachment_fraction) {
            (self.rng.range(sizes.attachment), true)
        } else {
            (self.rng.range(sizes.small), false)
        };
        let lf_only = q && self.rng.chance(0.1);
        let eol: &[u8] = if lf_only { b"\n" } else { b"\r\n" };
        // An hour apart from September 2020, closer together in a corpus so large that hourly
        // dates would run past 2025: every date is in the past, as in a real mailbox (Dovecot
        // replaces a future APPEND date with the time of the append).
        let step = date_step(self.spec.count);
        let date = InternalDate::from_timestamp(
            FIRST_DATE + (i as i64) * step + self.rng.below(step as u64) as i64,
        );
        let from = NAMES[self.rng.below(NAMES.len() as u64) as usize];
        let to = NAMES[self.rng.below(NAMES.len() as u64) as usize];
        let mut out = Vec::with_capacity(target + 1024);
        let mut header = |line: String| {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        };
        header(format!(
            "Received: from mx{}.example.net (mx{}.example.net [192.0.2.{}]) by mail.example.org; {}",
            i % 7,
            i % 7,
            i % 250,
            rfc5322_date(date)
        ));
        let no_id = q && self.rng.chance(0.05);
        let reused_id = q && !no_id && i > 0 && self.rng.chance(0.02);
        if !no_id {
            let id = if reused_id { i - 1 } else { i };
            header(format!(
                "Message-ID: <{}.{id}@gen.mailferry.test>",
                self.spec.seed
            ));
        }
        header(format!("Date: {}", rfc5322_date(date)));
        let user = |n: &str| n.split(' ').next().unwrap_or("x").to_lowercase();
        header(format!("From: \"{from}\" <{}@example.org>", user(from)));
        header(format!("To: \"{to}\" <{}@example.org>", user(to)));
        let subject = if q && self.rng.chance(0.05) {
            // Raw 8-bit UTF-8 in a header, as many real clients send.
            format!("Réunion über das Budget #{i}")
        } else {
            format!(
                "Re: {} {} #{i}",
                WORDS[i % WORDS.len()],
                WORDS[(i * 7) % WORDS.len()]
            )
        };
        header(format!("Subject: {subject}"));
        header("MIME-Version: 1.0".into());
        let boundary = format!("=_mf_{}_{i}", self.spec.seed);
        if attachment {
            header(format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\""
            ));
            out.extend_from_slice(eol);
            out.extend_from_slice(format!("--{boundary}").as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8");
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            self.text(&mut out, 1_500, eol);
            out.extend_from_slice(format!("--{boundary}").as_bytes());
            out.extend_from_slice(eol);
            out.extend_from_slice(b"Content-Type: application/pdf; name=\"report.pdf\"");
            out.extend_from_slice(eol);
            out.extend_from_slice(b"Content-Transfer-Encoding: base64");
            out.extend_from_slice(eol);
            out.extend_from_slice(b"Content-Disposition: attachment; filename=\"report.pdf\"");
            out.extend_from_slice(eol);
            out.extend_from_slice(eol);
            let remaining = target.saturating_sub(out.len() + 64);
            self.base64(&mut out, remaining, eol);
            out.extend_from_slice(format!("--{boundary}--").as_bytes());
            out.extend_from_slice(eol);
        } else {
            header("Content-Type: text/plain; charset=utf-8".into());
            out.extend_from_slice(eol);
            let remaining = target.saturating_sub(out.len());
            self.text(&mut out, remaining, eol);
        }
        let mut flags = Flags {
            seen: self.rng.chance(0.7),
            answered: self.rng.chance(0.1),
            flagged: self.rng.chance(0.05),
            draft: self.rng.chance(0.01),
            ..Flags::default()
        };
        if q && self.rng.chance(0.1) {
            flags.keywords.insert("$Forwarded".into());
        }
        if q && self.rng.chance(0.05) {
            flags.keywords.insert("Project-X".into());
        }
        GeneratedMessage {
            folder,
            body: Bytes::from(out),
            flags,
            internal_date: date,
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedMessage;

    fn next(&mut self) -> Option<GeneratedMessage> {
        if self.index >= self.spec.count {
            return None;
        }
        let duplicate = self.spec.quirks && self.index > 0 && self.rng.chance(0.02);
        let msg = match (&self.previous, duplicate) {
            // A byte-identical duplicate of the previous message, in the same folder.
            (Some(prev), true) => prev.clone(),
            _ => self.message(),
        };
        self.index += 1;
        self.previous = Some(msg.clone());
        Some(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_stay_in_the_past_however_large_the_corpus() {
        for count in [1, 20_000, 37_602, 200_000, 5_000_000] {
            let step = date_step(count);
            let last = FIRST_DATE + (count as i64 - 1) * step + (step - 1);
            assert!(
                last < FIRST_DATE + DATE_SPAN,
                "count {count}: last date {last}"
            );
        }
        assert_eq!(date_step(20_000), 3_600, "small corpora keep hourly dates");
    }

    #[test]
    fn is_deterministic_and_sized_as_asked() {
        let spec = CorpusSpec::new(200, SizeMix::realistic()).with_quirks();
        let a: Vec<_> = spec.generate().map(|m| m.body).collect();
        let b: Vec<_> = spec.generate().map(|m| m.body).collect();
        assert_eq!(a, b);
        let small = a.iter().filter(|m| m.len() <= 50_500).count();
        assert!(small > 150, "{small} of 200 are small");
        assert!(
            a.iter().any(|m| !m.windows(2).any(|w| w == b"\r\n")),
            "some LF-only"
        );
    }
}
