//! The mapping rules, one behaviour per test.

use super::*;
use crate::folder::FolderStatus;

fn folder(path: &str, role: Option<SpecialUse>) -> Folder {
    Folder {
        path: FolderPath::from_delimited(path, Some('/')),
        special_use: role,
        status: FolderStatus {
            count: 3,
            ..FolderStatus::default()
        },
        selectable: true,
    }
}

fn plain(paths: &[&str]) -> Vec<Folder> {
    paths.iter().map(|p| folder(p, None)).collect()
}

fn path(p: &str) -> FolderPath {
    FolderPath::from_delimited(p, Some('/'))
}

/// The (source, target, role) of every job.
fn mapped(plan: &MappingPlan) -> Vec<(String, String, Option<SpecialUse>)> {
    plan.jobs
        .iter()
        .map(|p| {
            let j = &p.job;
            (j.source.path.join("/"), j.target.join("/"), j.special_use)
        })
        .collect()
}

fn target_of(rules: MappingRules, source: &[Folder], target: &[Folder], name: &str) -> String {
    let plan = FolderMapper::new(rules).plan(source, target);
    let job = plan.jobs.iter().find(|p| p.job.source.path == path(name));
    job.map(|p| p.job.target.join("/"))
        .unwrap_or_else(|| panic!("{name} not mapped: {plan}"))
}

#[test]
fn special_use_folder_goes_to_the_targets_folder_with_that_role() {
    let source = [folder("Sent Items", Some(SpecialUse::Sent))];
    let target = [folder("Sent Messages", Some(SpecialUse::Sent))];
    let plan = FolderMapper::default().plan(&source, &target);
    let expected = (
        "Sent Items".into(),
        "Sent Messages".into(),
        Some(SpecialUse::Sent),
    );
    assert_eq!(mapped(&plan), [expected]);
}

#[test]
fn special_use_folder_without_a_counterpart_gets_the_default_name_and_role() {
    let source = [
        folder("Gesendet", Some(SpecialUse::Sent)),
        folder("Spamverdacht", Some(SpecialUse::Junk)),
        folder("[Gmail]/All Mail", Some(SpecialUse::All)),
    ];
    let target = [folder("Drafts", Some(SpecialUse::Drafts))];
    let plan = FolderMapper::default().plan(&source, &target);
    assert_eq!(
        mapped(&plan),
        [
            ("Gesendet".into(), "Sent".into(), Some(SpecialUse::Sent)),
            ("Spamverdacht".into(), "Junk".into(), Some(SpecialUse::Junk)),
            (
                "[Gmail]/All Mail".into(),
                "All Mail".into(),
                Some(SpecialUse::All)
            ),
        ]
    );
}

#[test]
fn roles_are_guessed_from_gmail_and_localised_names_when_the_source_reports_none() {
    let cases = [
        ("[Gmail]/Sent Mail", "Sent"),
        ("Sent Items", "Sent"),
        ("Envoyés", "Sent"),
        ("Envoye\u{301}s", "Sent"),
        ("Éléments envoyés", "Sent"),
        ("Enviados", "Sent"),
        ("Posta inviata", "Sent"),
        ("Verzonden items", "Sent"),
        ("INBOX/Sent", "Sent"),
        ("[Gmail]/Drafts", "Drafts"),
        ("Deleted Items", "Trash"),
        ("Spam", "Junk"),
        ("Junk E-mail", "Junk"),
        ("bulk mail", "Junk"),
        ("[Gmail]/All Mail", "All Mail"),
        ("[Gmail]/Starred", "Flagged"),
        ("[Gmail]/Important", "[Gmail]/Important"),
        ("Sent/Old", "Sent/Old"),
    ];
    for (name, expected) in cases {
        let got = target_of(MappingRules::default(), &plain(&[name]), &[], name);
        assert_eq!(got, expected, "{name}");
    }
    let plan = FolderMapper::default().plan(&plain(&["[Gmail]/Starred"]), &[]);
    assert_eq!(plan.jobs[0].job.special_use, Some(SpecialUse::Flagged));
}

#[test]
fn names_are_not_guessed_when_the_source_reports_roles() {
    let source = [folder("Junk", Some(SpecialUse::Junk)), folder("Spam", None)];
    let plan = FolderMapper::default().plan(&source, &[]);
    assert_eq!(
        mapped(&plan),
        [
            ("Junk".into(), "Junk".into(), Some(SpecialUse::Junk)),
            ("Spam".into(), "Spam".into(), None),
        ]
    );
}

#[test]
fn target_roles_are_guessed_from_names_when_the_target_reports_none() {
    let source = [folder("Trash", Some(SpecialUse::Trash))];
    let target = plain(&["INBOX", "Deleted Items"]);
    assert_eq!(
        target_of(MappingRules::default(), &source, &target, "Trash"),
        "Deleted Items"
    );
}

#[test]
fn subfolders_follow_their_special_use_parent_without_its_role() {
    let source = [
        folder("Sent Items", Some(SpecialUse::Sent)),
        folder("Sent Items/2019", None),
    ];
    let plan = FolderMapper::default().plan(&source, &[]);
    assert_eq!(plan.jobs[1].job.target, path("Sent/2019"));
    assert_eq!(plan.jobs[1].job.special_use, None);
}

#[test]
fn user_rules_apply_after_special_use() {
    let source = [folder("Sent Items", Some(SpecialUse::Sent))];
    // Written for the name special-use mapping gives it...
    let rules = MappingRules::default()
        .with_rename("Sent=Archive/Sent")
        .expect("rule");
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    assert_eq!(plan.jobs[0].job.target, path("Archive/Sent"));
    assert_eq!(plan.jobs[0].steps.len(), 2, "{:?}", plan.jobs[0].steps);
    // ...or for the source's own name.
    let rules = MappingRules::default()
        .with_rename("Sent Items=Old Sent")
        .expect("rule");
    assert_eq!(target_of(rules, &source, &[], "Sent Items"), "Old Sent");
    // A regex sees the special-use result too.
    let rules = MappingRules::default()
        .with_regex_rename("^Sent$", "Outbox/Sent")
        .expect("rule");
    assert_eq!(target_of(rules, &source, &[], "Sent Items"), "Outbox/Sent");
}

#[test]
fn renamed_special_use_folder_loses_its_role_only_when_the_target_has_that_role() {
    let source = [folder("Sent", Some(SpecialUse::Sent))];
    let rules = MappingRules::default()
        .with_rename("Sent=Old/Sent")
        .expect("rule");
    let mapper = FolderMapper::new(rules);
    let without = mapper.plan(&source, &[]);
    assert_eq!(without.jobs[0].job.special_use, Some(SpecialUse::Sent));
    let with = mapper.plan(&source, &[folder("Sent", Some(SpecialUse::Sent))]);
    assert_eq!(with.jobs[0].job.target, path("Old/Sent"));
    assert_eq!(with.jobs[0].job.special_use, None);
}

#[test]
fn regex_renames_use_captures_and_chain_in_order() {
    let rules = MappingRules::default()
        .with_regex_rename("^Projects/(.*)$", "Work/${1}")
        .and_then(|r| r.with_regex_rename("^Work/(?P<year>\\d{4})$", "Archive/$year"))
        .expect("rules");
    let source = plain(&["Projects/Acme", "Projects/2019", "Other"]);
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    let targets: Vec<String> = mapped(&plan).into_iter().map(|m| m.1).collect();
    assert_eq!(targets, ["Work/Acme", "Archive/2019", "Other"]);
    assert_eq!(plan.jobs[1].steps.len(), 2);
}

#[test]
fn exact_rename_wins_over_regex_rename() {
    let rules = MappingRules::default()
        .with_rename("Projects/Acme=Clients/Acme")
        .and_then(|r| r.with_regex_rename("^Projects/(.*)$", "Work/$1"))
        .expect("rules");
    let source = plain(&["Projects/Acme"]);
    assert_eq!(
        target_of(rules, &source, &[], "Projects/Acme"),
        "Clients/Acme"
    );
}

#[test]
fn include_and_exclude_select_source_folders_and_exclude_wins() {
    let rules = MappingRules::default()
        .with_include("^(INBOX|Projects)")
        .and_then(|r| r.with_exclude("/Old$"))
        .expect("rules");
    let source = plain(&["INBOX", "Projects/New", "Projects/Old", "Private"]);
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    let copied: Vec<String> = mapped(&plan).into_iter().map(|m| m.0).collect();
    assert_eq!(copied, ["INBOX", "Projects/New"]);
    let excluded: Vec<(String, &str)> = plan
        .excluded
        .iter()
        .map(|(p, why)| (p.join("/"), why.as_str()))
        .collect();
    assert_eq!(excluded[0].0, "Projects/Old");
    assert!(excluded[0].1.contains("/Old$"), "{}", excluded[0].1);
    assert_eq!(
        excluded[1],
        ("Private".into(), "matches no include pattern")
    );
}

#[test]
fn inbox_is_always_inbox_unless_a_rule_says_otherwise() {
    let source = plain(&["inbox", "Inbox/Sub"]);
    let plan = FolderMapper::default().plan(&source, &[]);
    assert_eq!(plan.jobs[0].job.target, FolderPath::inbox());
    assert_eq!(plan.jobs[0].job.target.segments(), ["INBOX"]);
    let rules = MappingRules::default()
        .with_rename("INBOX=Old/INBOX")
        .expect("rule");
    assert_eq!(target_of(rules, &source, &[], "inbox"), "Old/INBOX");
    // A folder named like a role inside INBOX is guessed, INBOX itself never is.
    assert!(
        FolderMapper::default().plan(&plain(&["INBOX"]), &[]).jobs[0]
            .steps
            .is_empty()
    );
}

#[test]
fn case_insensitive_target_collision_excludes_the_later_folder() {
    let source = plain(&["Projects", "projects"]);
    let sensitive = FolderMapper::default().plan(&source, &[]);
    assert_eq!(sensitive.jobs.len(), 2);
    assert!(sensitive.conflicts.is_empty());

    let rules = MappingRules {
        case_insensitive: true,
        ..MappingRules::default()
    };
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    assert_eq!(plan.jobs.len(), 1);
    let conflict = MappingConflict {
        target: path("Projects"),
        first: path("Projects"),
        second: path("projects"),
        merged: false,
    };
    assert_eq!(plan.conflicts, [conflict]);
    assert_eq!(plan.excluded[0].0, path("projects"));
    assert!(
        plan.excluded[0].1.contains("merge"),
        "{}",
        plan.excluded[0].1
    );
}

#[test]
fn merge_copies_colliding_folders_into_one() {
    let rules = MappingRules {
        merge: true,
        ..MappingRules::default()
    };
    // Without SPECIAL-USE both names mean \Sent: two sources, one target.
    let plan = FolderMapper::new(rules).plan(&plain(&["Sent", "Sent Items"]), &[]);
    let targets: Vec<String> = mapped(&plan).into_iter().map(|m| m.1).collect();
    assert_eq!(targets, ["Sent", "Sent"]);
    assert!(plan.excluded.is_empty());
    assert!(plan.conflicts[0].merged);
}

#[test]
fn special_use_folder_colliding_with_a_same_named_folder_is_reported() {
    let source = [
        folder("Sent Items", Some(SpecialUse::Sent)),
        folder("Sent", None),
    ];
    let plan = FolderMapper::default().plan(&source, &[]);
    assert_eq!(plan.jobs.len(), 1);
    assert_eq!(plan.conflicts[0].first, path("Sent Items"));
    assert_eq!(plan.conflicts[0].second, path("Sent"));
}

#[test]
fn decomposed_accents_collide_with_precomposed_ones() {
    let plan = FolderMapper::default().plan(&plain(&["Café", "Cafe\u{301}"]), &[]);
    assert_eq!(plan.jobs.len(), 1);
    assert_eq!(plan.conflicts.len(), 1);
}

#[test]
fn every_source_folder_is_either_mapped_or_excluded_with_a_reason() {
    let mut source = plain(&["INBOX", "A", "A/B", "Trash"]);
    source[1].selectable = false;
    let rules = MappingRules::default()
        .with_regex_rename("^A/B$", "")
        .expect("rule");
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    assert_eq!(plan.jobs.len() + plan.excluded.len(), source.len());
    let excluded: Vec<String> = plan.excluded.iter().map(|(p, _)| p.join("/")).collect();
    assert_eq!(excluded, ["A", "A/B"]);
    assert!(plan.excluded[0].1.contains("cannot hold messages"));
    assert!(plan.excluded[1].1.contains("empty name"));
}

#[test]
fn bad_rules_are_fatal_errors_naming_the_rule() {
    assert_eq!(
        parse_rename("Old/Name=New/Name").expect("parse"),
        ("Old/Name".into(), "New/Name".into())
    );
    assert_eq!(
        parse_rename(r"a\=b=c\\d").expect("escapes"),
        ("a=b".into(), r"c\d".into())
    );
    for bad in ["no equals sign", "=New", "Old=", "/=x"] {
        let err = parse_rename(bad).expect_err(bad);
        assert!(err.is_fatal());
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    let err = MappingRules::default()
        .with_exclude("(unclosed")
        .expect_err("regex");
    assert!(
        err.is_fatal() && err.to_string().contains("(unclosed"),
        "{err}"
    );
    let err = MappingRules::default()
        .with_regex_rename("^(a)$", "$2")
        .expect_err("missing group");
    assert!(err.to_string().contains("no group \"2\""), "{err}");
    let err = MappingRules::default()
        .with_regex_rename("^(a)$", "$1x")
        .expect_err("$1x names group 1x");
    assert!(err.to_string().contains("${1}x"), "{err}");
    for ok in ["${1}x", "$$1", "plain", "$name"] {
        MappingRules::default()
            .with_regex_rename("^(?P<name>a)$", ok)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn dry_run_table_shows_each_mapping_its_role_and_count() {
    let source = [
        folder("INBOX", None),
        folder("Sent Items", Some(SpecialUse::Sent)),
        folder("Ünïcødé/Sub", None),
        folder("Spam", Some(SpecialUse::Junk)),
    ];
    let rules = MappingRules::default()
        .with_exclude("^Spam$")
        .expect("rule");
    let text = FolderMapper::new(rules).plan(&source, &[]).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("SOURCE"), "{text}");
    assert!(
        lines[0].contains("TARGET") && lines[0].contains("MESSAGES"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("Sent Items  → Sent")
            && lines[2].contains("\\Sent")
            && lines[2].contains(" 3  special-use \\Sent → Sent"),
        "{text}"
    );
    assert!(lines[3].starts_with("Ünïcødé/Sub → Ünïcødé/Sub"), "{text}");
    // Columns line up even with non-ASCII names.
    let arrow = |l: &str| l.chars().position(|c| c == '→');
    assert_eq!(arrow(lines[1]), arrow(lines[3]));
    assert!(
        text.contains("Excluded (1):\n  Spam: excluded by the pattern \"^Spam$\""),
        "{text}"
    );
}

#[test]
fn a_rename_carries_the_folder_s_children_but_inbox_carries_nothing() {
    let source = [
        folder("Team.Alpha", None),
        folder("Team.Alpha/Plans", None),
        folder("Team.Alpha/Plans/2024", None),
        folder("INBOX/Work", None),
    ];
    let rules = MappingRules::default()
        .with_rename("Team.Alpha=Team-Alpha")
        .and_then(|r| r.with_rename("Team.Alpha/Plans/2024=Archive/Plans 2024"))
        .and_then(|r| r.with_rename("INBOX=Old Inbox"))
        .expect("rules");
    assert_eq!(
        target_of(rules.clone(), &source, &[], "Team.Alpha"),
        "Team-Alpha"
    );
    assert_eq!(
        target_of(rules.clone(), &source, &[], "Team.Alpha/Plans"),
        "Team-Alpha/Plans"
    );
    // A rule for the child itself wins over its parent's.
    assert_eq!(
        target_of(rules.clone(), &source, &[], "Team.Alpha/Plans/2024"),
        "Archive/Plans 2024"
    );
    assert_eq!(target_of(rules, &source, &[], "INBOX/Work"), "INBOX/Work");
}

#[test]
fn the_plan_names_folders_whose_name_holds_the_target_s_delimiter_and_keeps_them() {
    let source = [folder("Team.Alpha", None), folder("Projects", None)];
    let rules = MappingRules {
        target_delimiter: Some('.'),
        ..MappingRules::default()
    };
    let plan = FolderMapper::new(rules).plan(&source, &[]);
    assert_eq!(
        plan.jobs.len(),
        2,
        "kept as jobs so their messages are counted"
    );
    assert_eq!(plan.will_fail.len(), 1, "{:?}", plan.will_fail);
    assert_eq!(plan.will_fail[0].0, path("Team.Alpha"));
    assert!(plan.to_string().contains("Will fail (1)"), "{plan}");
    // A rename that takes the delimiter out clears it.
    let rules = MappingRules {
        target_delimiter: Some('.'),
        ..MappingRules::default()
            .with_rename("Team.Alpha=Team Alpha")
            .expect("rule")
    };
    assert!(
        FolderMapper::new(rules)
            .plan(&source, &[])
            .will_fail
            .is_empty()
    );
}
