//! Google Takeout: one mbox file in which every message names its Gmail labels in an
//! `X-Gmail-Labels:` header. With [`crate::MboxOptions::gmail_labels`] on, a message appears in
//! the folder of each of its labels, as Gmail shows it over IMAP.
//!
//! Labels that are message state rather than places become flags: `Opened` / `Unread` set or
//! clear `\Seen`, `Starred` is `\Flagged`, `Important` is the keyword `$Important`. `Archived`
//! and `Category …` name no folder; they stay in the header, which is copied unchanged, so
//! nothing is lost. A message left with no folder goes to `Archive` (Gmail's "All Mail").

use mailferry_core::{Flags, FolderPath};

/// The folder of messages whose labels name no folder.
pub fn unlabelled_folder() -> FolderPath {
    FolderPath::new(["Archive"])
}

/// Splits a label list on commas outside double quotes, unquoting quoted labels.
pub fn split_labels(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => current.extend(chars.next()),
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The folders a message belongs in, and what its labels say about its flags.
pub fn apply_labels(value: Option<&str>, flags: &mut Flags) -> Vec<FolderPath> {
    let mut folders = Vec::new();
    for label in value.map(split_labels).unwrap_or_default() {
        match label.as_str() {
            "Opened" => flags.seen = true,
            "Unread" => flags.seen = false,
            "Starred" => flags.flagged = true,
            "Important" => {
                flags.keywords.insert("$Important".into());
            }
            "Archived" => {}
            l if l.starts_with("Category ") => {}
            l if l.eq_ignore_ascii_case("Inbox") => folders.push(FolderPath::inbox()),
            l => {
                let path = FolderPath::from_delimited(l, Some('/'));
                if path.depth() > 0 {
                    folders.push(path);
                }
            }
        }
    }
    if folders.is_empty() {
        folders.push(unlabelled_folder());
    }
    folders.sort();
    folders.dedup();
    folders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_folders_and_flags() {
        let mut flags = Flags::default();
        let folders = apply_labels(
            Some("Inbox,Important,Opened,Category Updates,Work/Projects,\"a, b\",Starred"),
            &mut flags,
        );
        assert_eq!(
            folders,
            [
                FolderPath::inbox(),
                FolderPath::new(["Work", "Projects"]),
                FolderPath::new(["a, b"]),
            ]
        );
        assert!(flags.seen && flags.flagged && flags.keywords.contains("$Important"));
        let mut flags = Flags::default();
        assert_eq!(
            apply_labels(Some("Archived,Unread"), &mut flags),
            [unlabelled_folder()]
        );
        assert_eq!(apply_labels(None, &mut flags), [unlabelled_folder()]);
    }
}
