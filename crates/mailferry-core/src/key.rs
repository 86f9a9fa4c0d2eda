//! The keys items are known by: a source's ([`SourceKey`]) and a target's ([`TargetKey`]). Their
//! own module, below everything else, so that errors can name an item without the error module
//! and the item model importing each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A source's key for an item, unique within a folder and its validity token: an IMAP UID, a
/// Maildir unique name, an mbox file offset. Opaque to everything but its backend.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceKey(pub String);

/// A target's key for a stored item (an APPENDUID, a Maildir unique name).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetKey(pub String);

macro_rules! key_impls {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.0)
            }
        }
        impl From<String> for $t {
            fn from(s: String) -> Self {
                $t(s)
            }
        }
        impl From<&str> for $t {
            fn from(s: &str) -> Self {
                $t(s.to_string())
            }
        }
    };
}
key_impls!(SourceKey);
key_impls!(TargetKey);
