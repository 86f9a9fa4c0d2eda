//! Special use: which folder plays which role (`\\Sent`, `\\Drafts`, …), from what the stores say
//! or, where they say nothing, from the one table of well-known names in many languages. Every
//! backend infers roles from [`role_from_name`]; there is no second table.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::folder::{Folder, FolderPath, SpecialUse};

/// What the two stores say (or their names suggest) about special use.
pub(super) struct Roles<'a> {
    source_knows: bool,
    target: &'a [Folder],
    target_knows: bool,
    /// Source special-use folders and where they go, for their subfolders.
    special: Vec<(FolderPath, FolderPath)>,
}

impl<'a> Roles<'a> {
    pub(super) fn new(source: &[Folder], target: &'a [Folder]) -> Self {
        let mut roles = Roles {
            source_knows: source.iter().any(|f| f.special_use.is_some()),
            target,
            target_knows: target.iter().any(|f| f.special_use.is_some()),
            special: Vec::new(),
        };
        roles.special = source
            .iter()
            .filter_map(|f| Some((f.path.clone(), roles.target_for(roles.source_role(f)?.0))))
            .collect();
        roles
    }

    /// The folder's role, and whether it was guessed from its name.
    pub(super) fn source_role(&self, folder: &Folder) -> Option<(SpecialUse, bool)> {
        if folder.path.is_inbox() {
            None
        } else if self.source_knows {
            folder.special_use.map(|r| (r, false))
        } else {
            role_from_name(&folder.path).map(|r| (r, true))
        }
    }

    pub(super) fn target_has(&self, role: SpecialUse) -> bool {
        self.target.iter().any(|f| f.special_use == Some(role))
    }

    pub(super) fn target_for(&self, role: SpecialUse) -> FolderPath {
        let found = if self.target_knows {
            self.target.iter().find(|f| f.special_use == Some(role))
        } else {
            self.target
                .iter()
                .find(|f| role_from_name(&f.path) == Some(role))
        };
        found.map_or_else(|| FolderPath::new([default_name(role)]), |f| f.path.clone())
    }

    /// The nearest special-use ancestor of `path` and its target.
    pub(super) fn special_ancestor(&self, path: &FolderPath) -> Option<&(FolderPath, FolderPath)> {
        self.special
            .iter()
            .filter(|(p, _)| p.depth() < path.depth() && path.segments().starts_with(p.segments()))
            .max_by_key(|(p, _)| p.depth())
    }
}

fn default_name(role: SpecialUse) -> &'static str {
    match role {
        SpecialUse::All => "All Mail",
        SpecialUse::Archive => "Archive",
        SpecialUse::Drafts => "Drafts",
        SpecialUse::Flagged => "Flagged",
        SpecialUse::Junk => "Junk",
        SpecialUse::Sent => "Sent",
        SpecialUse::Trash => "Trash",
    }
}

/// Names that mean a role on servers without SPECIAL-USE: the usual English ones, Gmail's,
/// Outlook/Exchange's and their German, French, Spanish, Italian and Dutch translations.
/// `[Gmail]/Important` is deliberately absent: it is an ordinary folder to copy.
#[rustfmt::skip]
const WELL_KNOWN: &[(SpecialUse, &[&str])] = &[
    (SpecialUse::Sent, &[
        "Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail",
        "[Google Mail]/Sent Mail", "Gesendet", "Gesendete Objekte", "Gesendete Elemente",
        "Envoyés", "Éléments envoyés", "Messages envoyés", "Enviados", "Elementos enviados",
        "Posta inviata", "Elementi inviati", "Verzonden items", "Verzonden",
    ]),
    (SpecialUse::Drafts, &[
        "Drafts", "Draft", "[Gmail]/Drafts", "[Google Mail]/Drafts", "Entwürfe", "Brouillons",
        "Borradores", "Bozze", "Concepten",
    ]),
    (SpecialUse::Trash, &[
        "Trash", "Deleted Items", "Deleted Messages", "[Gmail]/Trash", "[Gmail]/Bin",
        "[Google Mail]/Trash", "[Google Mail]/Bin", "Papierkorb", "Gelöschte Objekte",
        "Gelöschte Elemente", "Corbeille", "Éléments supprimés", "Papelera",
        "Elementos eliminados", "Cestino", "Posta eliminata", "Elementi eliminati",
        "Prullenbak", "Verwijderde items",
    ]),
    (SpecialUse::Junk, &[
        "Junk", "Spam", "Junk E-mail", "Junk Email", "Junk Mail", "Bulk Mail", "[Gmail]/Spam",
        "[Google Mail]/Spam", "Junk-E-Mail", "Courrier indésirable", "Indésirables",
        "Correo no deseado", "Posta indesiderata", "Ongewenste e-mail",
    ]),
    (SpecialUse::Archive, &["Archive", "Archives", "Archiv", "Archivo", "Archivio", "Archief"]),
    (SpecialUse::All, &["[Gmail]/All Mail", "[Google Mail]/All Mail", "All Mail"]),
    (SpecialUse::Flagged, &["[Gmail]/Starred", "[Google Mail]/Starred", "Starred"]),
];

/// The role a folder's name suggests, at the top level or directly under INBOX (as on servers
/// that keep every folder under `INBOX.`), compared case-insensitively and accent-composed. The
/// one table every backend infers roles from (stores without SPECIAL-USE: Maildir, mbox, IMAP
/// servers without the extension).
pub fn role_from_name(path: &FolderPath) -> Option<SpecialUse> {
    role_and_rank(path).map(|(role, _)| role)
}

/// [`role_from_name`] and how usual the name is for its role (0 = the most usual), so that a
/// store with both `Sent` and `Sent Items` gives the role to `Sent`.
pub fn role_and_rank(path: &FolderPath) -> Option<(SpecialUse, usize)> {
    static NAMES: OnceLock<HashMap<String, (SpecialUse, usize)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        WELL_KNOWN
            .iter()
            .flat_map(|(role, names)| {
                names
                    .iter()
                    .enumerate()
                    .map(|(rank, n)| (fold(n, true), (*role, rank)))
            })
            .collect()
    });
    let segments = match path.segments() {
        [first, rest @ ..] if first.eq_ignore_ascii_case("INBOX") && !rest.is_empty() => rest,
        all => all,
    };
    names.get(&fold(&segments.join("/"), true)).copied()
}

pub(super) fn fold(s: &str, case_insensitive: bool) -> String {
    let composed = compose(s);
    if case_insensitive {
        composed.to_lowercase()
    } else {
        composed
    }
}

/// Decomposed Latin letters (base + combining mark) and their precomposed form, for Latin-1
/// and Latin Extended-A: the accents folder names in European languages use. Full NFC would
/// need a Unicode normalisation crate for a rare case; this covers macOS-style decomposed names.
const COMPOSITIONS: &[&str] = &[
    "A\u{300}ÀA\u{301}ÁA\u{302}ÂA\u{303}ÃA\u{304}ĀA\u{306}ĂA\u{308}ÄA\u{30a}ÅA\u{328}Ą",
    "C\u{301}ĆC\u{302}ĈC\u{307}ĊC\u{30c}ČC\u{327}ÇD\u{30c}ĎE\u{300}ÈE\u{301}ÉE\u{302}Ê",
    "E\u{304}ĒE\u{306}ĔE\u{307}ĖE\u{308}ËE\u{30c}ĚE\u{328}ĘG\u{302}ĜG\u{306}ĞG\u{307}Ġ",
    "G\u{327}ĢH\u{302}ĤI\u{300}ÌI\u{301}ÍI\u{302}ÎI\u{303}ĨI\u{304}ĪI\u{306}ĬI\u{307}İ",
    "I\u{308}ÏI\u{328}ĮJ\u{302}ĴK\u{327}ĶL\u{301}ĹL\u{30c}ĽL\u{327}ĻN\u{301}ŃN\u{303}Ñ",
    "N\u{30c}ŇN\u{327}ŅO\u{300}ÒO\u{301}ÓO\u{302}ÔO\u{303}ÕO\u{304}ŌO\u{306}ŎO\u{308}Ö",
    "O\u{30b}ŐR\u{301}ŔR\u{30c}ŘR\u{327}ŖS\u{301}ŚS\u{302}ŜS\u{30c}ŠS\u{327}ŞT\u{30c}Ť",
    "T\u{327}ŢU\u{300}ÙU\u{301}ÚU\u{302}ÛU\u{303}ŨU\u{304}ŪU\u{306}ŬU\u{308}ÜU\u{30a}Ů",
    "U\u{30b}ŰU\u{328}ŲW\u{302}ŴY\u{301}ÝY\u{302}ŶY\u{308}ŸZ\u{301}ŹZ\u{307}ŻZ\u{30c}Ž",
    "a\u{300}àa\u{301}áa\u{302}âa\u{303}ãa\u{304}āa\u{306}ăa\u{308}äa\u{30a}åa\u{328}ą",
    "c\u{301}ćc\u{302}ĉc\u{307}ċc\u{30c}čc\u{327}çd\u{30c}ďe\u{300}èe\u{301}ée\u{302}ê",
    "e\u{304}ēe\u{306}ĕe\u{307}ėe\u{308}ëe\u{30c}ěe\u{328}ęg\u{302}ĝg\u{306}ğg\u{307}ġ",
    "g\u{327}ģh\u{302}ĥi\u{300}ìi\u{301}íi\u{302}îi\u{303}ĩi\u{304}īi\u{306}ĭi\u{308}ï",
    "i\u{328}įj\u{302}ĵk\u{327}ķl\u{301}ĺl\u{30c}ľl\u{327}ļn\u{301}ńn\u{303}ñn\u{30c}ň",
    "n\u{327}ņo\u{300}òo\u{301}óo\u{302}ôo\u{303}õo\u{304}ōo\u{306}ŏo\u{308}öo\u{30b}ő",
    "r\u{301}ŕr\u{30c}řr\u{327}ŗs\u{301}śs\u{302}ŝs\u{30c}šs\u{327}şt\u{30c}ťt\u{327}ţ",
    "u\u{300}ùu\u{301}úu\u{302}ûu\u{303}ũu\u{304}ūu\u{306}ŭu\u{308}üu\u{30a}ůu\u{30b}ű",
    "u\u{328}ųw\u{302}ŵy\u{301}ýy\u{302}ŷy\u{308}ÿz\u{301}źz\u{307}żz\u{30c}ž",
];

fn compose(s: &str) -> String {
    static TABLE: OnceLock<HashMap<(char, char), char>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let chars: Vec<char> = COMPOSITIONS.iter().flat_map(|l| l.chars()).collect();
        chars
            .chunks_exact(3)
            .map(|t| ((t[0], t[1]), t[2]))
            .collect()
    });
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if ('\u{300}'..='\u{36f}').contains(&c)
            && let Some(prev) = out.chars().next_back()
            && let Some(&composed) = table.get(&(prev, c))
        {
            out.pop();
            out.push(composed);
        } else {
            out.push(c);
        }
    }
    out
}
