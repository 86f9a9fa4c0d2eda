//! Maildir file names: `<unique>[<sep>2,<info>]`.
//!
//! The unique part (everything before the info separator) is the item's key: it never changes
//! when flags change (only the info suffix is rewritten), so keys recorded in the state stay
//! valid after a MUA marks a message read. New names follow Dovecot's scheme,
//! `<secs>.M<usec>P<pid>Q<counter>.<host>,S=<file size>,W=<CRLF size>`, so that `existing()`
//! learns the wire size from the name alone instead of reading the whole file.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mailferry_core::Flags;

use crate::keywords::Keywords;

/// The keyword Maildir stores as the `P` ("passed") info letter.
pub const FORWARDED: &str = "$Forwarded";

/// A file name split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    /// Everything before the info separator: the item's key.
    pub unique: &'a str,
    /// The letters after `<sep>2,`, if the name has an experimental-free info suffix.
    pub info: Option<&'a str>,
}

/// Splits `name` at the first `separator`. An info suffix that is not version 2 (`:1,...`) is
/// kept out of the key but yields no flags, as the Maildir spec leaves it undefined.
pub fn parse(name: &str, separator: char) -> FileName<'_> {
    match name.split_once(separator) {
        Some((unique, info)) => FileName {
            unique,
            info: info.strip_prefix("2,"),
        },
        None => FileName {
            unique: name,
            info: None,
        },
    }
}

/// The value of a `,X=<number>` field of the unique part (`S` = file size, `W` = CRLF size).
pub fn size_field(unique: &str, field: char) -> Option<u64> {
    unique.split(',').skip(1).find_map(|f| {
        let mut chars = f.chars();
        (chars.next() == Some(field) && chars.next() == Some('='))
            .then(|| f[2..].parse().ok())
            .flatten()
    })
}

/// The flags an info string stands for. Keyword letters (`a`–`z`) are looked up in the
/// folder's keyword file; letters it does not name and unknown capitals are returned in the
/// second value so the caller can say so instead of dropping them silently.
pub fn flags_from_info(info: &str, keywords: &Keywords) -> (Flags, Vec<char>) {
    let mut flags = Flags::default();
    let mut unknown = Vec::new();
    for c in info.chars() {
        match c {
            'D' => flags.draft = true,
            'F' => flags.flagged = true,
            'P' => {
                flags.keywords.insert(FORWARDED.to_string());
            }
            'R' => flags.answered = true,
            'S' => flags.seen = true,
            'T' => flags.deleted = true,
            // Separators some writers leave in (`2,RDF,`) carry nothing.
            ',' => {}
            'a'..='z' => match keywords.name_of(c) {
                Some(name) => {
                    flags.keywords.insert(name.to_string());
                }
                None => unknown.push(c),
            },
            _ => unknown.push(c),
        }
    }
    (flags, unknown)
}

/// The info letters for `flags`, in ASCII order as the spec requires. Every keyword other than
/// `$Forwarded` must already have a letter in `keywords`; the first one without is returned as
/// the error.
pub fn info_from_flags(flags: &Flags, keywords: &Keywords) -> Result<String, String> {
    let mut info = String::with_capacity(6 + flags.keywords.len());
    for (set, letter) in [
        (flags.draft, 'D'),
        (flags.flagged, 'F'),
        (flags.keywords.contains(FORWARDED), 'P'),
        (flags.answered, 'R'),
        (flags.seen, 'S'),
        (flags.deleted, 'T'),
    ] {
        if set {
            info.push(letter);
        }
    }
    let mut letters = Vec::with_capacity(flags.keywords.len());
    for keyword in flags.keywords.iter().filter(|k| *k != FORWARDED) {
        letters.push(keywords.letter_of(keyword).ok_or_else(|| keyword.clone())?);
    }
    letters.sort_unstable();
    info.extend(letters);
    Ok(info)
}

/// The full file name for a unique part and info letters.
pub fn with_info(unique: &str, separator: char, info: &str) -> String {
    format!("{unique}{separator}2,{info}")
}

/// This host's name made safe for a unique part: `/`, `:` and `,` would be read as path,
/// info and field separators, so they are written as octal escapes, as the Maildir spec and
/// Dovecot do; anything outside printable ASCII becomes `_`.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let raw = raw.trim();
        let raw = if raw.is_empty() { "localhost" } else { raw };
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                '/' => out.push_str("\\057"),
                ':' => out.push_str("\\072"),
                ',' => out.push_str("\\054"),
                ';' => out.push_str("\\073"),
                c if c.is_ascii_graphic() => out.push(c),
                _ => out.push('_'),
            }
        }
        out
    })
}

/// A new unique part. Time, microseconds, pid and a process-wide counter make it unique among
/// every writer on this host, however many stores and writers run in this process.
pub fn new_unique(file_size: u64, wire_size: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{},S={file_size},W={wire_size}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        counter,
        host_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_unique_part_from_info_at_the_separator() {
        let n = parse("1234.M5P6Q7.host,S=10,W=12:2,FS", ':');
        assert_eq!(n.unique, "1234.M5P6Q7.host,S=10,W=12");
        assert_eq!(n.info, Some("FS"));
        assert_eq!(parse("1234.abc", ':').info, None);
        assert_eq!(parse("1234.abc:1,xyz", ':').unique, "1234.abc");
        assert_eq!(parse("1234.abc:1,xyz", ':').info, None);
        let semi = parse("1.M2.kurkku,S=1355,W=1394;2,", ';');
        assert_eq!(
            (semi.unique, semi.info),
            ("1.M2.kurkku,S=1355,W=1394", Some(""))
        );
    }

    #[test]
    fn reads_size_fields_of_the_unique_part() {
        let u = "1035478339.27041_118.foo.org,S=1000,W=1030";
        assert_eq!(size_field(u, 'S'), Some(1000));
        assert_eq!(size_field(u, 'W'), Some(1030));
        assert_eq!(size_field("1.2.host", 'W'), None);
        assert_eq!(size_field("1.2.host,W=abc", 'W'), None);
    }

    #[test]
    fn maps_info_letters_to_imap_flags_and_back() {
        let mut kw = Keywords::default();
        kw.assign("Project-X").expect("room for a keyword");
        let (flags, unknown) = flags_from_info("DFPRSTa", &kw);
        assert!(unknown.is_empty());
        assert_eq!(
            flags.to_string(),
            "\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded Project-X"
        );
        assert_eq!(info_from_flags(&flags, &kw).as_deref(), Ok("DFPRSTa"));
    }

    #[test]
    fn reports_letters_it_cannot_name() {
        let (flags, unknown) = flags_from_info("SbX,", &Keywords::default());
        assert!(flags.seen);
        assert_eq!(unknown, vec!['b', 'X']);
    }

    #[test]
    fn refuses_keywords_without_a_letter() {
        let flags = Flags::from_imap(["\\Seen", "Unassigned"]);
        assert_eq!(
            info_from_flags(&flags, &Keywords::default()),
            Err("Unassigned".to_string())
        );
    }

    #[test]
    fn new_unique_names_differ_and_carry_sizes() {
        let a = new_unique(10, 12);
        let b = new_unique(10, 12);
        assert_ne!(a, b);
        assert!(!a.contains([':', '/', ';']), "{a}");
        assert_eq!(size_field(&a, 'S'), Some(10));
        assert_eq!(size_field(&a, 'W'), Some(12));
    }
}
