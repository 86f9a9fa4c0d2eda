//! # mailferry-maildir
//!
//! Maildir and Maildir++ as a mailferry [`Source`](mailferry_core::Source) and
//! [`Target`](mailferry_core::Target): one [`Maildir`] value is both, like
//! [`MemoryStore`](mailferry_core::MemoryStore).
//!
//! Design decisions, and why:
//!
//! - **Layouts.** [`Layout::MaildirPlusPlus`] (Dovecot/Courier: INBOX is the root's
//!   `cur/new/tmp`, folder `A/B` is `.A.B`) and [`Layout::Fs`] (Dovecot `LAYOUT=fs`: `A/B/` with
//!   its own `cur/new/tmp`). In both, INBOX is the root, so the root's own mail is INBOX
//!   whichever layout reads it. An existing store's layout is detected (`.Name` directories →
//!   Maildir++; other directories with Maildirs below → fs); a store without folders, or a new
//!   one, is Maildir++ unless [`MaildirOptions::layout`] says otherwise.
//! - **Folder names** are encoded as Dovecot does by default, in modified UTF-7, then `%XX`
//!   escapes for what cannot be a path component: `%`, `/`, every `.` in Maildir++ (the
//!   delimiter), a leading `.` in fs, and fs segments named `cur`/`new`/`tmp` or starting with
//!   `dovecot` (they would collide with the parent's own entries). The escape is
//!   reversible, and no encoding can be empty, `.`, `..` or contain `/`, so hostile names from
//!   a source (`..`, `../../x`, `/`, NUL, control characters) stay under the root. An empty
//!   segment has no encoding and is an item error. A directory whose name does not decode, or
//!   decodes to a folder already listed (INBOX, or another directory), is listed under its
//!   on-disk name, so its mail is still copied.
//! - **Special use** is not stored by Maildir; it is inferred on listing from well-known names
//!   (Sent, Drafts, Trash, Junk/Spam, Archive and common variants, case-insensitive).
//! - **Keys** are file unique parts (everything before `:`), which stay the same when a flag
//!   change rewrites the info suffix. The folder validity is always 1: keys do not depend on
//!   any UID numbering (Dovecot's `dovecot-uidlist` is not consulted), so nothing can
//!   invalidate them. The change token (`modseq`) comes from the `cur/` and `new/` mtimes.
//! - **Flags** are the info letters `D F P R S T` ↔ `\Draft \Flagged $Forwarded \Answered
//!   \Seen \Deleted`; other keywords are letters `a`–`z` named by Dovecot's per-folder
//!   `dovecot-keywords` file (at most 26 per folder: a 27th is an item error, never dropped).
//!   Files in `new/` are read with whatever info their name has (normally none). Every
//!   delivered item goes to `cur/` with an explicit `:2,` suffix: a migrated message has been
//!   seen by a mail client, which is what `cur/` means.
//! - **Bytes and dates.** Files hold the message in LF storage form, the exact inverse of
//!   reading a file (bare LF → CRLF, lone CRs kept: see `mailferry_core::normalise`), so every
//!   message comes back byte for byte, lone CRs and NULs included; the internal date is the
//!   file's mtime, compared in whole seconds. Names follow Dovecot,
//!   `<secs>.M<usec>P<pid>Q<n>.<host>,S=<file size>,W=<wire size>:2,<flags>`, so `existing()`
//!   knows wire (RFC822.SIZE) sizes without reading whole files.
//! - **Durability.** Delivery writes to `tmp/` then renames into `cur/`; [`FsyncPolicy`] says
//!   what is synced before an append is acknowledged (default: each file, then each touched
//!   directory once per batch). Files are created 0600, directories 0700.
//! - **Concurrency.** All file work runs on tokio's blocking pool, one task per append batch.
//!   Names are unique per process (pid + a process-wide counter), so overlapping writers never
//!   collide; keyword-file updates are serialised per folder.
//!
//! ```
//! use mailferry_core::{FolderPath, Target};
//! use mailferry_maildir::{Layout, Maildir, MaildirOptions};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let options = MaildirOptions { layout: Some(Layout::Fs), ..MaildirOptions::default() };
//! let store = Maildir::create(dir.path().join("mail"), options)?;
//! store.ensure_folder(&FolderPath::new(["Archive", "2020"]), None).await?;
//! assert!(dir.path().join("mail/Archive/2020/cur").is_dir());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod deliver;
mod keywords;
mod layout;
mod name;
mod scan;
mod source;
mod store;
mod target;

pub use deliver::FsyncPolicy;
pub use layout::Layout;
pub use store::{Maildir, MaildirOptions};

/// The pure parsing and encoding functions behind the store, for the fuzz targets under `fuzz/`
/// (they need no files). Not a stable API: names may change with the modules they come from.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::keywords::Keywords;
    pub use crate::layout::{decode_maildirpp, decode_segment, encode_segment, relative_dir};
    pub use crate::name::{
        FileName, flags_from_info, info_from_flags, parse as parse_file_name, size_field, with_info,
    };
}
