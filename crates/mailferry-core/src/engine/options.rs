//! [`MigrationOptions`]: every knob of a run, with its default in one place. Serde, so that the
//! command line, a plan file's row and (later) a fleet's database row all build the same value
//! and mean the same thing by it. Sizes are written as in the command line (`"24M"`, `"1.5G"`,
//! `4096`), dates as `YYYY-MM-DD`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::copier::{CopyOptions, ItemFilter};
use crate::date::InternalDate;
use crate::error::{Error, ErrorDomain, Result};
use crate::layers::LayerOptions;
use crate::mapping::MappingRules;

/// A number of bytes, written `4096`, `"25M"` or `"1.5G"` (K, M, G are powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `25M`, `1.5G`, `4096`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
            Some('K') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M') => (&s[..s.len() - 1], 1 << 20),
            Some('G') => (&s[..s.len() - 1], 1 << 30),
            _ => (s, 1),
        };
        let n: f64 = num
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| config(format!("not a size: {s:?} (e.g. 4096, 25M, 1G)")))?;
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 30 && n % (1 << 30) == 0 => write!(f, "{}G", n >> 30),
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{}M", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{}K", n >> 10),
            n => write!(f, "{n}"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u64),
            S(String),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(ByteSize(n)),
            Either::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `YYYY-MM-DD` as midnight UTC.
pub fn parse_day(s: &str) -> Result<InternalDate> {
    let mut it = s.split('-');
    let parsed = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(y), Some(m), Some(d), None) => (|| {
            InternalDate::from_civil(
                y.parse().ok()?,
                m.parse().ok()?,
                d.parse().ok()?,
                (0, 0, 0),
                0,
            )
        })(),
        _ => None,
    };
    parsed.ok_or_else(|| config(format!("not a date: {s:?} (expected YYYY-MM-DD)")))
}

fn config(message: String) -> Error {
    Error::fatal(message).with_domain(ErrorDomain::Config)
}

/// Which folders go where (see [`MappingRules`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingOptions {
    /// `OLD=NEW` renames ('/'-separated paths).
    pub rename: Vec<String>,
    /// `PATTERN=>REPLACEMENT` regex renames.
    pub rename_regex: Vec<String>,
    /// Only folders whose path matches one of these regexes.
    pub include: Vec<String>,
    /// Skip folders whose path matches one of these regexes (wins over `include`).
    pub exclude: Vec<String>,
    /// Merge source folders that land on the same target folder instead of refusing.
    pub merge: bool,
}

impl MappingOptions {
    /// The rules, for a target that compares folder names case-insensitively or not.
    pub fn rules(&self, case_insensitive: bool) -> Result<MappingRules> {
        self.build_rules(case_insensitive)
            .map_err(|e| e.with_domain(ErrorDomain::Config))
    }

    fn build_rules(&self, case_insensitive: bool) -> Result<MappingRules> {
        let mut rules = MappingRules {
            merge: self.merge,
            case_insensitive,
            ..MappingRules::default()
        };
        for m in &self.rename {
            rules = rules.with_rename(m)?;
        }
        for m in &self.rename_regex {
            let (pattern, replacement) = m
                .split_once("=>")
                .ok_or_else(|| config(format!("{m:?}: expected PATTERN=>REPLACEMENT")))?;
            rules = rules.with_regex_rename(pattern, replacement)?;
        }
        for p in &self.include {
            rules = rules.with_include(p)?;
        }
        for p in &self.exclude {
            rules = rules.with_exclude(p)?;
        }
        Ok(rules)
    }
}

/// Which messages to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterOptions {
    /// Only messages dated on or after this day (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Only messages dated before this day.
    pub before: Option<String>,
    /// Leave out messages larger than this.
    pub max_size: Option<ByteSize>,
}

impl FilterOptions {
    /// The copier's filter.
    pub fn filter(&self) -> Result<ItemFilter> {
        Ok(ItemFilter {
            since: self.since.as_deref().map(parse_day).transpose()?,
            before: self.before.as_deref().map(parse_day).transpose()?,
            max_size: self.max_size.map(|s| s.0),
        })
    }
}

/// Every knob of a run. `MigrationOptions::default()` is the one place defaults live; the
/// command line's flags default to it and a plan row overrides only what it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationOptions {
    /// Folders copied, synced or verified at once (rclone's transfers/checkers).
    pub jobs: usize,
    /// Memory for messages in flight. In a many-mailbox run, the budget all mailboxes share.
    pub memory_budget: ByteSize,
    /// Concurrent append batches per folder.
    pub writers_per_folder: usize,
    /// Folder mapping.
    pub mapping: MappingOptions,
    /// Message filters.
    pub filter: FilterOptions,
    /// Retry, pacing, tracing.
    pub layers: LayerOptions,
    /// On first contact with a non-empty target folder, skip messages it already holds.
    pub dedupe_existing: bool,
    /// sync: delete target messages whose source message is gone.
    pub delete: bool,
    /// sync: refuse to delete more than this percentage of a folder.
    pub max_delete_percent: f64,
    /// sync: delete even above `max_delete_percent`.
    pub force: bool,
    /// verify: read both sides back and compare checksums.
    pub read_back: bool,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        let copy = CopyOptions::default();
        MigrationOptions {
            jobs: copy.folder_concurrency,
            memory_budget: ByteSize(copy.byte_budget),
            writers_per_folder: copy.writers_per_folder,
            mapping: MappingOptions::default(),
            filter: FilterOptions::default(),
            layers: LayerOptions::default(),
            dedupe_existing: copy.dedupe_existing,
            delete: false,
            max_delete_percent: 10.0,
            force: false,
            read_back: false,
        }
    }
}

impl MigrationOptions {
    /// Checks every value that can be wrong (dates, rules), so a bad option stops a run before
    /// anything is opened.
    pub fn validate(&self) -> Result<()> {
        self.filter.filter()?;
        self.mapping.rules(false)?;
        if !(0.0..=100.0).contains(&self.max_delete_percent) {
            return Err(config(format!(
                "max_delete_percent {} is not a percentage",
                self.max_delete_percent
            )));
        }
        Ok(())
    }

    /// The copier's options for the migration named `migration`.
    pub fn copy_options(&self, migration: &str) -> Result<CopyOptions> {
        let defaults = CopyOptions::default();
        Ok(CopyOptions {
            migration: migration.to_string(),
            byte_budget: self.memory_budget.0.max(1),
            folder_concurrency: self.jobs.max(1),
            writers_per_folder: self.writers_per_folder.max(1),
            filter: self.filter.filter()?,
            dedupe_existing: self.dedupe_existing,
            retries: self.layers.retry.attempts.max(1),
            backoff: std::time::Duration::from_millis(self.layers.retry.first_delay_ms),
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_as_on_the_command_line() {
        assert_eq!(ByteSize::parse("24M").expect("24M").0, 24 << 20);
        assert_eq!(ByteSize::parse("1.5G").expect("1.5G").0, 3 << 29);
        assert_eq!(ByteSize::parse("4096").expect("4096").0, 4096);
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("-1M").is_err());
        assert_eq!(ByteSize(24 << 20).to_string(), "24M");
    }

    #[test]
    fn a_plan_row_overrides_only_what_it_names() {
        let o: MigrationOptions = serde_json::from_str(
            r#"{"jobs": 2, "memory_budget": "64M", "filter": {"max_size": "25M"}}"#,
        )
        .expect("options");
        assert_eq!(o.jobs, 2);
        assert_eq!(o.memory_budget, ByteSize(64 << 20));
        assert_eq!(o.filter.max_size, Some(ByteSize(25 << 20)));
        let d = MigrationOptions::default();
        assert_eq!(o.writers_per_folder, d.writers_per_folder);
        assert_eq!(o.layers, d.layers);
        assert!(serde_json::from_str::<MigrationOptions>(r#"{"jobz": 2}"#).is_err());
    }

    #[test]
    fn defaults_agree_with_the_copier() {
        let o = MigrationOptions::default()
            .copy_options("m")
            .expect("copy options");
        let c = CopyOptions::default();
        assert_eq!(o.byte_budget, c.byte_budget);
        assert_eq!(o.folder_concurrency, c.folder_concurrency);
        assert_eq!(o.retries, c.retries);
        assert_eq!(o.backoff, c.backoff);
    }

    #[test]
    fn bad_dates_and_rules_are_configuration_errors() {
        let mut o = MigrationOptions::default();
        o.filter.since = Some("2024-13-45".into());
        let e = o.validate().expect_err("bad date");
        assert_eq!(e.domain(), Some(ErrorDomain::Config));
        let mut o = MigrationOptions::default();
        o.mapping.rename_regex = vec!["no arrow".into()];
        assert!(o.validate().is_err());
    }
}
