//! Folder mapping: which target folder each source folder is copied to, decided before anything
//! is copied so a dry run can show it. A [`FolderMapper`] turns the source's and the target's
//! folder lists into a [`MappingPlan`] in three steps, in this order:
//!
//! 1. **Special use.** A folder with a role (`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`,
//!    `\All`, `\Flagged`) goes to the target's folder with the same role, else to a default name
//!    (`Sent`, `Drafts`, …) created with the role. When the source reports no roles at all, roles
//!    are guessed from well-known names (`Sent Items`, `[Gmail]/Sent Mail`, `Gesendet`,
//!    `Envoyés`, …); likewise the target's folders when it reports none. Subfolders follow their
//!    special-use parent (`Sent Items/2019` → `Sent/2019`).
//! 2. **User rules**, on the path as step 1 left it: an exact rename (`OLD=NEW`, matched against
//!    that path or, failing that, the source's own name), else the regex renames in order, each
//!    on the previous one's output. Include/exclude patterns select source folders by their own
//!    `/`-joined names; exclude wins; no include pattern means include all.
//! 3. **Collisions.** Two source folders landing on one target folder — exactly, after composing
//!    common Latin accents (NFC for Latin-1/Extended-A), or case-insensitively on a target that
//!    folds case — are a [`MappingConflict`]; unless `merge` was asked, the later one is excluded
//!    with the reason.
//!
//! The result is a delimiter-free [`FolderPath`]: delimiters, encodings and escaping are the
//! target backend's job. INBOX is always `INBOX`, whatever its case in the source. Every source
//! folder ends up either in a job or in `excluded` with a reason: nothing is dropped silently.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

use crate::copier::FolderJob;
use crate::error::{Error, Result};
use crate::folder::{Folder, FolderPath, SpecialUse};

/// The user's mapping rules and what the mapper must know about the target.
#[derive(Debug, Clone, Default)]
pub struct MappingRules {
    /// Exact renames, `(OLD, NEW)`, paths written with `/`.
    pub renames: Vec<(String, String)>,
    /// Regex renames on the `/`-joined path: the first match is replaced (`$1`, `${name}`).
    pub regex_renames: Vec<(Regex, String)>,
    /// Copy only source folders matching one of these (all when empty).
    pub include: Vec<Regex>,
    /// Never copy source folders matching one of these (wins over `include`).
    pub exclude: Vec<Regex>,
    /// Copy colliding source folders into the same target folder instead of excluding the later.
    pub merge: bool,
    /// The target compares folder names case-insensitively
    /// ([`crate::Capabilities::case_insensitive_folders`]).
    pub case_insensitive: bool,
}

impl MappingRules {
    /// Adds an exact rename parsed from `OLD=NEW` (see [`parse_rename`]).
    pub fn with_rename(mut self, rule: &str) -> Result<Self> {
        self.renames.push(parse_rename(rule)?);
        Ok(self)
    }

    /// Adds a regex rename; an invalid pattern or a replacement naming a group the pattern does
    /// not have is a fatal error naming the rule.
    pub fn with_regex_rename(mut self, pattern: &str, replacement: &str) -> Result<Self> {
        let re = compile("regex rename", pattern)?;
        check_replacement(&re, replacement)?;
        self.regex_renames.push((re, replacement.to_string()));
        Ok(self)
    }

    /// Adds an include pattern.
    pub fn with_include(mut self, pattern: &str) -> Result<Self> {
        self.include.push(compile("include", pattern)?);
        Ok(self)
    }

    /// Adds an exclude pattern.
    pub fn with_exclude(mut self, pattern: &str) -> Result<Self> {
        self.exclude.push(compile("exclude", pattern)?);
        Ok(self)
    }
}

/// Parses `Old/Name=New/Name`. The first `=` not escaped as `\=` separates the two paths; `\\` is
/// a backslash. Neither side may be empty.
pub fn parse_rename(rule: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::fatal(format!("folder rename rule {rule:?}: {why}"));
    let (mut old, mut new) = (String::new(), String::new());
    let mut seen_eq = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        let side = if seen_eq { &mut new } else { &mut old };
        match c {
            '\\' => match chars.next() {
                Some(e @ ('=' | '\\')) => side.push(e),
                Some(other) => {
                    side.push('\\');
                    side.push(other);
                }
                None => side.push('\\'),
            },
            '=' if !seen_eq => seen_eq = true,
            c => side.push(c),
        }
    }
    if !seen_eq {
        return Err(bad("expected OLD=NEW, folder paths written with '/'"));
    }
    if old.split('/').all(str::is_empty) || new.split('/').all(str::is_empty) {
        return Err(bad("both sides of '=' must name a folder"));
    }
    Ok((old, new))
}

fn compile(kind: &str, pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| {
        Error::fatal(format!(
            "folder {kind} pattern {pattern:?} is not a valid regex"
        ))
        .with_source(e)
    })
}

/// Refuses `$N` / `${name}` references to groups the pattern lacks: the regex crate would
/// silently replace them with nothing, mapping folders to names nobody asked for.
fn check_replacement(re: &Regex, replacement: &str) -> Result<()> {
    let names: Vec<&str> = re.capture_names().flatten().collect();
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        if let Some(stripped) = rest.strip_prefix('$') {
            rest = stripped;
            continue;
        }
        let (group, after) = match rest.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => (braced, ""),
            },
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        rest = after;
        let exists = match group.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => group.is_empty() || names.contains(&group),
        };
        if !exists {
            return Err(Error::fatal(format!(
                "folder regex rename {:?} → {replacement:?}: the pattern has no group {group:?} \
                 (write ${{1}}x rather than $1x when a name follows)",
                re.as_str()
            )));
        }
    }
    Ok(())
}

/// Two source folders that land on the same target folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConflict {
    /// The target folder, as the first source folder maps to it.
    pub target: FolderPath,
    /// The source folder that got it first.
    pub first: FolderPath,
    /// The later source folder.
    pub second: FolderPath,
    /// Both are copied into it (`merge`); otherwise `second` is excluded.
    pub merged: bool,
}

/// One folder job and how its target was chosen.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// What the copier runs.
    pub job: FolderJob,
    /// The mapping steps that applied, in words (empty: copied under its own name).
    pub steps: Vec<String>,
}

/// What a [`FolderMapper`] decided.
#[derive(Debug, Clone, Default)]
pub struct MappingPlan {
    /// The folders to copy, in source order.
    pub jobs: Vec<PlannedJob>,
    /// Source folders left out, with the reason.
    pub excluded: Vec<(FolderPath, String)>,
    /// Collisions found (also reflected in `jobs` or `excluded`).
    pub conflicts: Vec<MappingConflict>,
}

impl MappingPlan {
    /// The jobs for [`crate::Copier::run`].
    pub fn folder_jobs(&self) -> Vec<FolderJob> {
        self.jobs.iter().map(|p| p.job.clone()).collect()
    }
}

/// Maps source folders to target folders by [`MappingRules`].
///
/// ```
/// use mailferry_core::{Folder, FolderMapper, FolderPath, FolderStatus, MappingRules, SpecialUse};
///
/// let folder = |path: &[&str], role| Folder {
///     special_use: role,
///     ..Folder::new(FolderPath::new(path.iter().copied()), FolderStatus::default())
/// };
/// let source = [folder(&["inbox"], None), folder(&["Sent Items"], Some(SpecialUse::Sent)),
///               folder(&["Projects", "Acme"], None)];
/// let target = [folder(&["Sent"], Some(SpecialUse::Sent))];
/// let rules = MappingRules::default().with_regex_rename("^Projects/(.*)$", "Clients/${1}")?;
/// let plan = FolderMapper::new(rules).plan(&source, &target);
/// let targets: Vec<String> = plan.jobs.iter().map(|p| p.job.target.to_string()).collect();
/// assert_eq!(targets, ["INBOX", "Sent", "Clients/Acme"]);
/// println!("{plan}"); // the dry-run table
/// # Ok::<(), mailferry_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct FolderMapper {
    rules: MappingRules,
}

impl FolderMapper {
    /// A mapper with these rules.
    pub fn new(rules: MappingRules) -> Self {
        FolderMapper { rules }
    }

    /// Plans the copy of `source`'s folders into a target holding `target`'s folders.
    pub fn plan(&self, source: &[Folder], target: &[Folder]) -> MappingPlan {
        let roles = Roles::new(source, target);
        let mut plan = MappingPlan::default();
        // Collision key → index of the job that claimed it.
        let mut claimed: HashMap<Vec<String>, usize> = HashMap::new();
        for folder in source {
            let name = folder.path.join("/");
            if let Some(re) = self.rules.exclude.iter().find(|re| re.is_match(&name)) {
                let why = format!("excluded by the pattern {:?}", re.as_str());
                plan.excluded.push((folder.path.clone(), why));
                continue;
            }
            if !self.rules.include.is_empty()
                && !self.rules.include.iter().any(|re| re.is_match(&name))
            {
                let why = "matches no include pattern".to_string();
                plan.excluded.push((folder.path.clone(), why));
                continue;
            }
            if !folder.selectable {
                let why = "cannot hold messages (its subfolders are mapped on their own)";
                plan.excluded.push((folder.path.clone(), why.into()));
                continue;
            }
            let Some(planned) = self.map(folder, &roles) else {
                let why = "the rename rules map it to an empty name".to_string();
                plan.excluded.push((folder.path.clone(), why));
                continue;
            };
            let key = collision_key(&planned.job.target, self.rules.case_insensitive);
            match claimed.get(&key) {
                None => {
                    claimed.insert(key, plan.jobs.len());
                    plan.jobs.push(planned);
                }
                Some(&first) => {
                    let conflict = MappingConflict {
                        target: plan.jobs[first].job.target.clone(),
                        first: plan.jobs[first].job.source.path.clone(),
                        second: folder.path.clone(),
                        merged: self.rules.merge,
                    };
                    if self.rules.merge {
                        plan.jobs.push(planned);
                    } else {
                        let why = format!(
                            "it would land on {}, where {} already goes (ask for merge to copy \
                             both into it, or add a rename rule)",
                            conflict.target, conflict.first
                        );
                        plan.excluded.push((folder.path.clone(), why));
                    }
                    plan.conflicts.push(conflict);
                }
            }
        }
        plan
    }

    /// Steps 1 and 2 for one folder; `None` when the rules leave an empty name.
    fn map(&self, folder: &Folder, roles: &Roles<'_>) -> Option<PlannedJob> {
        let mut steps = Vec::new();
        let mut special_use = None;
        let mut path = if folder.path.is_inbox() {
            FolderPath::inbox()
        } else if let Some((role, by_name)) = roles.source_role(folder) {
            let to = roles.target_for(role);
            let how = if by_name {
                " (guessed from its name)"
            } else {
                ""
            };
            steps.push(format!("special-use {}{how} → {to}", role.as_imap()));
            special_use = Some(role);
            to
        } else if let Some((parent, to)) = roles.special_ancestor(&folder.path) {
            steps.push(format!("inside special-use folder {parent} → {to}"));
            let rest = folder.path.segments()[parent.depth()..].iter().cloned();
            FolderPath::new(to.segments().iter().cloned().chain(rest))
        } else {
            folder.path.clone()
        };
        let after_special_use = path.clone();

        let find = |name: &str| {
            let mut renames = self.rules.renames.iter();
            renames.find(|(old, _)| same_name(old, name))
        };
        let rename = find(&path.join("/")).or_else(|| find(&folder.path.join("/")));
        if let Some((old, new)) = rename {
            path = FolderPath::from_delimited(new, Some('/'));
            steps.push(format!("rename {old}={new}"));
        } else {
            for (re, replacement) in &self.rules.regex_renames {
                let joined = path.join("/");
                if re.is_match(&joined) {
                    let renamed = re.replace(&joined, replacement.as_str());
                    path = FolderPath::from_delimited(&renamed, Some('/'));
                    steps.push(format!("regex {:?} → {replacement:?}", re.as_str()));
                }
            }
        }
        if path.depth() == 0 {
            return None;
        }
        if path.is_inbox() {
            path = FolderPath::inbox();
        }
        // A renamed special-use folder keeps its role unless the target already has that role
        // on another folder (then the renamed one is not it).
        if let Some(role) = special_use
            && path != after_special_use
            && roles.target_has(role)
        {
            special_use = None;
        }
        Some(PlannedJob {
            job: FolderJob {
                source: folder.clone(),
                target: path,
                special_use,
            },
            steps,
        })
    }
}

/// INBOX compares case-insensitively, everything else exactly.
fn same_name(rule: &str, name: &str) -> bool {
    rule == name || (rule.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX"))
}

/// What the two stores say (or their names suggest) about special use.
struct Roles<'a> {
    source_knows: bool,
    target: &'a [Folder],
    target_knows: bool,
    /// Source special-use folders and where they go, for their subfolders.
    special: Vec<(FolderPath, FolderPath)>,
}

impl<'a> Roles<'a> {
    fn new(source: &[Folder], target: &'a [Folder]) -> Self {
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
    fn source_role(&self, folder: &Folder) -> Option<(SpecialUse, bool)> {
        if folder.path.is_inbox() {
            None
        } else if self.source_knows {
            folder.special_use.map(|r| (r, false))
        } else {
            role_from_name(&folder.path).map(|r| (r, true))
        }
    }

    fn target_has(&self, role: SpecialUse) -> bool {
        self.target.iter().any(|f| f.special_use == Some(role))
    }

    fn target_for(&self, role: SpecialUse) -> FolderPath {
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
    fn special_ancestor(&self, path: &FolderPath) -> Option<&(FolderPath, FolderPath)> {
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

/// How two target names are compared: accents composed, case folded where the target folds it,
/// and a leading INBOX always folded.
fn collision_key(path: &FolderPath, case_insensitive: bool) -> Vec<String> {
    path.segments()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            fold(
                s,
                case_insensitive || (i == 0 && s.eq_ignore_ascii_case("INBOX")),
            )
        })
        .collect()
}

fn fold(s: &str, case_insensitive: bool) -> String {
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

impl fmt::Display for MappingPlan {
    /// A table for a dry run: source → target, role, message count, and how it was mapped; then
    /// the excluded folders and the conflicts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .jobs
            .iter()
            .map(|p| {
                [
                    p.job.source.path.to_string(),
                    p.job.target.to_string(),
                    p.job
                        .special_use
                        .map_or(String::new(), |r| r.as_imap().into()),
                    p.job.source.status.count.to_string(),
                    p.steps.join("; "),
                ]
            })
            .collect();
        let header = ["SOURCE", "TARGET", "ROLE", "MESSAGES", "HOW"].map(String::from);
        let width = |i: usize| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let (ws, wt, wr, wm) = (width(0), width(1), width(2), width(3));
        for (i, r) in [&header].into_iter().chain(&rows).enumerate() {
            let arrow = if i == 0 { " " } else { "→" };
            let line = format!(
                "{:<ws$} {arrow} {:<wt$}  {:<wr$}  {:>wm$}  {}",
                r[0], r[1], r[2], r[3], r[4]
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        if !self.excluded.is_empty() {
            writeln!(f, "\nExcluded ({}):", self.excluded.len())?;
            for (path, why) in &self.excluded {
                writeln!(f, "  {path}: {why}")?;
            }
        }
        if !self.conflicts.is_empty() {
            writeln!(f, "\nConflicts ({}):", self.conflicts.len())?;
            for c in &self.conflicts {
                let outcome = if c.merged {
                    "both are copied into it (merge)"
                } else {
                    "the second is excluded"
                };
                writeln!(
                    f,
                    "  {} and {} both map to {}: {outcome}",
                    c.first, c.second, c.target
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
