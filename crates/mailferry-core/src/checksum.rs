//! [`Checksum`]: BLAKE3-256 of a message's canonical bytes. BLAKE3 rather than SHA-256 because
//! it is about three times faster per core, and checksums are taken on every item. Because it is
//! taken over the canonical form (every line ending CRLF, lone CRs included; see
//! [`crate::normalise`]), the same message has the same checksum in every store, and checksums
//! recorded in state files before stores kept lone CRs as data stay valid. The canonical form is
//! only hashed, never built: [`Checksum::of_message`] streams it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// BLAKE3-256 of canonical message bytes. Displays and serialises as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The checksum of `canonical` bytes.
    pub fn of(canonical: &[u8]) -> Self {
        Checksum(*blake3::hash(canonical).as_bytes())
    }

    /// The checksum of a message in any form (source bytes, wire form, LF storage form): BLAKE3
    /// of its canonical form, streamed through a bounded buffer when it differs from `raw`, so
    /// no canonical copy of the message is made. Equals `Checksum::of(&canonicalise(raw).0)`.
    pub fn of_message(raw: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        crate::normalise::hash_canonical(raw, &mut hasher);
        Checksum(*hasher.finalize().as_bytes())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From a raw digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Checksum(bytes)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// The error for a string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a checksum (64 hex digits expected): {0:?}")]
pub struct ParseChecksumError(String);

impl FromStr for Checksum {
    type Err = ParseChecksumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseChecksumError(s.chars().take(80).collect());
        if s.len() != 64 || !s.is_ascii() {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err())?;
        }
        Ok(Checksum(out))
    }
}

impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_matches_blake3() {
        let c = Checksum::of(b"abc");
        let hex = c.to_string();
        assert_eq!(
            hex,
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(hex.parse::<Checksum>().expect("parse"), c);
        assert!("zz".parse::<Checksum>().is_err());
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(serde_json::from_str::<Checksum>(&json).expect("back"), c);
    }

    #[test]
    fn a_message_has_one_checksum_in_every_form() {
        let canonical = b"Subject: x\r\n\r\nold\r\nmac\r\n";
        let want = Checksum::of(canonical);
        for form in [
            &canonical[..],
            b"Subject: x\n\nold\rmac\n",
            b"Subject: x\r\n\r\nold\rmac\r\n",
            b"Subject: x\r\rold\rmac\r",
        ] {
            assert_eq!(
                Checksum::of_message(form),
                want,
                "{:?}",
                String::from_utf8_lossy(form)
            );
        }
    }
}
