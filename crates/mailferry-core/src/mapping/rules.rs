//! The user's folder rules: exact renames (`OLD=NEW`), regex renames, include and exclude
//! patterns, checked when they are made so a bad rule stops a run before anything is opened.

use regex::Regex;

use crate::error::{Error, Result};

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
