//! The mapper: source and target folder lists in, a [`MappingPlan`] out (jobs, exclusions with
//! their reasons, collisions), and the table a dry run prints.

use std::collections::HashMap;
use std::fmt;

use super::roles::{Roles, fold};
use super::rules::MappingRules;
use crate::copier::FolderJob;
use crate::folder::{Folder, FolderPath};

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
