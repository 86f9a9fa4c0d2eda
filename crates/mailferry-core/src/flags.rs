//! Message flags: the IMAP system flags plus keywords. `\Recent` is session state, not message
//! state, and is never carried. `$Forwarded` is a keyword (it is one in IMAP) even though Maildir
//! stores it as the `P` info letter; the Maildir backend translates.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A message's flags and keywords.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    /// `\Seen`
    pub seen: bool,
    /// `\Answered`
    pub answered: bool,
    /// `\Flagged`
    pub flagged: bool,
    /// `\Deleted`
    pub deleted: bool,
    /// `\Draft`
    pub draft: bool,
    /// Keywords such as `$Forwarded`, `$Junk`, `Important`, in their IMAP spelling.
    pub keywords: BTreeSet<String>,
}

impl Flags {
    /// Parses flags from IMAP tokens (`\Seen`, `$Forwarded`, …). System flags are matched
    /// case-insensitively; `\Recent` and unknown `\`-flags are ignored; anything else is a keyword.
    pub fn from_imap<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let mut flags = Flags::default();
        for token in tokens {
            flags.insert_imap(token);
        }
        flags
    }

    /// Adds one IMAP token (see [`Flags::from_imap`]).
    pub fn insert_imap(&mut self, token: &str) {
        let token = token.trim();
        if token.is_empty() {
            return;
        }
        if let Some(system) = token.strip_prefix('\\') {
            match system.to_ascii_lowercase().as_str() {
                "seen" => self.seen = true,
                "answered" => self.answered = true,
                "flagged" => self.flagged = true,
                "deleted" => self.deleted = true,
                "draft" => self.draft = true,
                _ => {}
            }
        } else {
            self.keywords.insert(token.to_string());
        }
    }

    /// The flags as IMAP tokens, system flags first.
    pub fn imap_tokens(&self) -> Vec<&str> {
        let mut out = Vec::with_capacity(5 + self.keywords.len());
        for (set, name) in [
            (self.seen, "\\Seen"),
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.draft, "\\Draft"),
        ] {
            if set {
                out.push(name);
            }
        }
        out.extend(self.keywords.iter().map(String::as_str));
        out
    }

    /// Whether no flag and no keyword is set.
    pub fn is_empty(&self) -> bool {
        !(self.seen || self.answered || self.flagged || self.deleted || self.draft)
            && self.keywords.is_empty()
    }
}

impl fmt::Display for Flags {
    /// Space-separated IMAP tokens, as inside an IMAP flag list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.imap_tokens().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_system_flags_case_insensitively_and_keeps_keywords() {
        let f = Flags::from_imap(["\\SEEN", "\\Recent", "$Forwarded", "\\flagged", "Work"]);
        assert!(f.seen && f.flagged && !f.answered);
        assert_eq!(f.to_string(), "\\Seen \\Flagged $Forwarded Work");
        assert_eq!(Flags::from_imap(f.imap_tokens()), f);
    }
}
