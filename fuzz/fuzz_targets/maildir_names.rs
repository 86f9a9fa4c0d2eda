//! Maildir names: message file names (unique part, info suffix, size fields), info letters ↔
//! flags through a `dovecot-keywords` table, the keyword file itself, and folder-name segments
//! ↔ directory names in both layouts.
//!
//! Every file and directory name in a Maildir may come from another program, and every folder
//! name from another store, so nothing here may panic. Properties: a file name splits into a
//! prefix that is its key and an info suffix that re-joins to it; info → flags → info → flags
//! is stable; the keyword file re-reads as itself; and every folder-name segment encodes, in
//! both layouts, to one safe path component that decodes back to the segment (a hostile name
//! cannot leave the store's root or land on the layout's own entries).

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use mailferry_core::FolderPath;
use mailferry_maildir::Layout;
use mailferry_maildir::fuzzing::{
    Keywords, decode_maildirpp, decode_segment, encode_segment, flags_from_info, info_from_flags,
    parse_file_name, relative_dir, size_field, with_info,
};

const MAIL_DIRS: [&str; 3] = ["cur", "new", "tmp"];

fn check_file_name(name: &str, separator: char) {
    let parsed = parse_file_name(name, separator);
    assert!(name.starts_with(parsed.unique));
    match parsed.info {
        Some(info) => assert_eq!(with_info(parsed.unique, separator, info), name),
        None => assert!(
            name == parsed.unique || name[parsed.unique.len()..].starts_with(separator),
            "no info: the key is the name or ends at the separator"
        ),
    }
    let _ = (
        size_field(parsed.unique, 'S'),
        size_field(parsed.unique, 'W'),
    );
}

fn check_flags(info: &str, keywords_text: &str) {
    let keywords = Keywords::parse(keywords_text);
    assert_eq!(
        Keywords::parse(&keywords.to_text()),
        keywords,
        "the keyword file re-reads as itself"
    );
    let (flags, _unknown) = flags_from_info(info, &keywords);
    let rendered = info_from_flags(&flags, &keywords)
        .unwrap_or_else(|k| panic!("keyword {k:?} read from a letter has no letter"));
    let (again, unknown) = flags_from_info(&rendered, &keywords);
    assert!(
        unknown.is_empty(),
        "written letters are all known: {unknown:?}"
    );
    assert_eq!(
        again, flags,
        "info {info:?} -> {rendered:?} keeps the flags"
    );
    let mut letters: Vec<char> = rendered.chars().collect();
    letters.dedup();
    assert!(
        letters.is_sorted(),
        "info letters in ASCII order: {rendered:?}"
    );
    assert_eq!(letters.len(), rendered.chars().count(), "no letter twice");
}

fn check_assign(names: &[String]) {
    let mut keywords = Keywords::default();
    for name in names {
        if let Ok(letter) = keywords.assign(name) {
            assert!(letter.is_ascii_lowercase());
            assert_eq!(keywords.name_of(letter), Some(name.as_str()));
            assert_eq!(keywords.letter_of(name), Some(letter));
        }
    }
    assert_eq!(Keywords::parse(&keywords.to_text()), keywords);
}

fn check_segment(segment: &str) {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let Ok(encoded) = encode_segment(segment, layout) else {
            assert!(segment.is_empty(), "only an empty segment is refused");
            continue;
        };
        let mut components = Path::new(&encoded).components();
        assert!(
            matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none(),
            "{segment:?} -> {encoded:?} is not one plain path component"
        );
        assert!(
            encoded.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{encoded:?}"
        );
        assert!(
            !encoded.starts_with('.'),
            "{segment:?} -> {encoded:?} is hidden"
        );
        match layout {
            Layout::MaildirPlusPlus => assert!(!encoded.contains('.'), "{encoded:?}"),
            Layout::Fs => assert!(
                !MAIL_DIRS.contains(&encoded.as_str()) && !encoded.starts_with("dovecot"),
                "{encoded:?} collides with the folder's own entries"
            ),
        }
        assert_eq!(
            decode_segment(&encoded).as_deref(),
            Some(segment),
            "{layout:?}: {encoded:?}"
        );
    }
}

fn check_path(segments: &[String]) {
    let path = FolderPath::new(segments.iter().cloned());
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let Ok(dir) = relative_dir(&path, layout) else {
            continue;
        };
        assert!(dir.is_relative());
        assert!(
            dir.components().all(|c| matches!(c, Component::Normal(_))),
            "{path} -> {dir:?} leaves the root"
        );
        if path.is_inbox() {
            assert_eq!(dir.components().count(), 0);
            continue;
        }
        match layout {
            Layout::MaildirPlusPlus => {
                assert_eq!(dir.components().count(), 1);
                let name = dir.to_str().unwrap_or_else(|| panic!("not UTF-8: {dir:?}"));
                let inner = name.strip_prefix('.').unwrap_or_else(|| panic!("{name}"));
                assert_eq!(decode_maildirpp(inner), path, "{name}");
            }
            Layout::Fs => assert_eq!(dir.components().count(), path.depth()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(text) = u.arbitrary::<String>() else {
        return;
    };
    for separator in [':', ';', '!'] {
        check_file_name(&text, separator);
    }
    let _ = decode_segment(&text);
    let _ = decode_maildirpp(&text);
    check_segment(&text);

    let keywords_text = u.arbitrary::<String>().unwrap_or_default();
    check_flags(&text, &keywords_text);
    let names: Vec<String> = u.arbitrary().unwrap_or_default();
    check_assign(&names);
    check_path(&names);
    for name in &names {
        check_segment(name);
    }
});
