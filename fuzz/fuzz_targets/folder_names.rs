//! Folder names: IMAP modified UTF-7 and the folder mapper.
//!
//! Folder names and mapping rules come from servers and users, so: `utf7::decode` of any
//! string returns (`None` or a name), `decode(encode(s)) == s` for every string, and
//! `FolderMapper::plan` with arbitrary folders (paths, roles, selectability) and rules derived
//! from the input (exact renames, regex renames, include/exclude, merge, case folding) returns a
//! plan in which every source folder is either in a job or excluded with a reason — never both,
//! never neither — no job has an empty target, INBOX is spelled `INBOX`, and without `merge`
//! no two jobs share a target. The dry-run table (`Display`) renders too.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{Result as ArbitraryResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use mailferry_core::{
    Folder, FolderMapper, FolderPath, FolderStatus, MappingRules, SpecialUse, utf7,
};

/// Folder-name text from a small alphabet that hits the mapper's special cases often (INBOX,
/// well-known names, delimiters, combining accents, regex metacharacters), or arbitrary text.
fn name(u: &mut Unstructured<'_>) -> ArbitraryResult<String> {
    const PIECES: [&str; 16] = [
        "INBOX",
        "inbox",
        "Sent",
        "Sent Items",
        "[Gmail]",
        "Trash",
        "Drafts",
        "Archive",
        "/",
        "e\u{301}",
        "É",
        "a",
        "B",
        ".",
        "*",
        "(.*)",
    ];
    if u.arbitrary::<bool>()? {
        return u.arbitrary();
    }
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=4)? {
        out.push_str(u.choose(&PIECES)?);
    }
    Ok(out)
}

fn folder(u: &mut Unstructured<'_>) -> ArbitraryResult<Folder> {
    let path = if u.arbitrary::<bool>()? {
        FolderPath::from_delimited(&name(u)?, Some('/'))
    } else {
        let depth = u.int_in_range(0..=3)?;
        FolderPath::new(
            (0..depth)
                .map(|_| name(u))
                .collect::<ArbitraryResult<Vec<_>>>()?,
        )
    };
    let special_use = if u.arbitrary::<bool>()? {
        Some(*u.choose(&SpecialUse::ALL)?)
    } else {
        None
    };
    Ok(Folder {
        path,
        special_use,
        status: FolderStatus::default(),
        selectable: u.ratio(7, 8)?,
    })
}

fn rules(u: &mut Unstructured<'_>) -> ArbitraryResult<MappingRules> {
    let mut rules = MappingRules {
        merge: u.arbitrary()?,
        case_insensitive: u.arbitrary()?,
        ..MappingRules::default()
    };
    for _ in 0..u.int_in_range(0..=4)? {
        // Invalid rules are refused with an error, which is all a user sees of them.
        let kind = u.int_in_range(0..=3)?;
        let (a, b) = (name(u)?, name(u)?);
        if a.len() > 64 || b.len() > 64 {
            continue;
        }
        rules = match kind {
            0 => rules.clone().with_rename(&format!("{a}={b}")),
            1 => rules.clone().with_regex_rename(&a, &b),
            2 => rules.clone().with_include(&a),
            _ => rules.clone().with_exclude(&a),
        }
        .unwrap_or(rules);
    }
    Ok(rules)
}

fn check_plan(data: &[u8]) -> ArbitraryResult<()> {
    let mut u = Unstructured::new(data);
    let rules = rules(&mut u)?;
    let merge = rules.merge;
    let source = (0..u.int_in_range(0..=6)?)
        .map(|_| folder(&mut u))
        .collect::<ArbitraryResult<Vec<_>>>()?;
    let target = (0..u.int_in_range(0..=4)?)
        .map(|_| folder(&mut u))
        .collect::<ArbitraryResult<Vec<_>>>()?;
    let plan = FolderMapper::new(rules).plan(&source, &target);

    let mut expected: HashMap<&FolderPath, usize> = HashMap::new();
    for f in &source {
        *expected.entry(&f.path).or_default() += 1;
    }
    let mut planned: HashMap<&FolderPath, usize> = HashMap::new();
    for path in plan
        .jobs
        .iter()
        .map(|p| &p.job.source.path)
        .chain(plan.excluded.iter().map(|(p, _)| p))
    {
        *planned.entry(path).or_default() += 1;
    }
    assert_eq!(
        planned, expected,
        "every source folder is planned exactly once"
    );
    for (path, why) in &plan.excluded {
        assert!(!why.is_empty(), "{path} excluded without a reason");
    }
    let mut targets = HashMap::new();
    for p in &plan.jobs {
        let to = &p.job.target;
        assert!(
            to.depth() > 0,
            "{} maps to an empty name",
            p.job.source.path
        );
        if to.is_inbox() {
            assert_eq!(to.segments(), ["INBOX"]);
        }
        if let Some(first) = targets.insert(to.clone(), &p.job.source.path)
            && !merge
        {
            panic!("{first} and {} both land on {to}", p.job.source.path);
        }
    }
    let _ = plan.to_string();
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(decoded) = utf7::decode(text) {
            let _ = utf7::encode(&decoded);
        }
        let encoded = utf7::encode(text);
        assert!(
            encoded.bytes().all(|b| (b' '..=b'~').contains(&b)),
            "{encoded:?}"
        );
        assert_eq!(utf7::decode(&encoded).as_deref(), Some(text), "{encoded:?}");
    }
    let _ = check_plan(data);
});
