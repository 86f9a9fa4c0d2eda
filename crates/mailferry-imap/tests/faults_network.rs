//! A Dovecot → Dovecot migration through a hostile network: both servers sit behind proxies
//! that cut every connection at a random byte offset (seeded, printed), end some with `* BYE`,
//! answer some commands `NO [UNAVAILABLE]` — including APPENDs the server did commit, the
//! uncertain append — and each server is restarted once mid-run. The copy is re-run with the
//! same state, as a user would, until a pass finishes clean; then both servers are read back
//! directly (no proxy) and compared per folder as multisets of (canonical checksum, flags,
//! internal date): nothing lost, nothing duplicated, nothing changed.
//!
//! Plaintext IMAP on purpose: the proxy has to see the responses to rewrite them. Set
//! `MAILFERRY_FAULT_SEED` to replay a run's offsets (connection order still varies).

mod common;
mod faults_watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailferry_core::{
    Checksum, Copier, CopyOptions, FolderPath, Hooked, MemoryState, MemoryStore, Progress, Report,
    Source, Target,
};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry_testkit::contents::{Contents, Message, contents_of};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::proxy::RandomFaults;
use mailferry_testkit::{Dovecot, Proxy, ProxyOptions};

const MESSAGES: usize = 2_000;
const MAX_PASSES: usize = 6;
/// Messages copied (over all passes) before the source, then the target, is restarted.
const RESTART_SOURCE_AT: u64 = 400;
const RESTART_TARGET_AT: u64 = 1_000;

/// The flags and dates of the copies of each body in a folder.
type ByBody = HashMap<Checksum, Vec<(Vec<String>, Option<i64>)>>;

/// Lost, duplicated and changed messages of `got` against `want`: per folder and checksum, a
/// shortfall is lost, a surplus of a known body is duplicated, a body the source does not have
/// or a different flag set or date on the same body is changed.
#[derive(Debug, Default)]
struct Outcome {
    lost: usize,
    duplicated: usize,
    changed: usize,
    /// A description of each difference, for the failure message.
    examples: Vec<String>,
}

impl Outcome {
    fn is_clean(&self) -> bool {
        (self.lost, self.duplicated, self.changed) == (0, 0, 0)
    }
}

fn compare(want: &Contents, got: &Contents) -> Outcome {
    let mut o = Outcome::default();
    let empty = Vec::new();
    let folders: std::collections::BTreeSet<&FolderPath> = want.keys().chain(got.keys()).collect();
    for folder in folders {
        let group = |v: &Vec<Message>| {
            let mut by = ByBody::new();
            for (c, f, d) in v {
                by.entry(*c).or_default().push((f.clone(), *d));
            }
            by
        };
        let w = group(want.get(folder).unwrap_or(&empty));
        let g = group(got.get(folder).unwrap_or(&empty));
        for (checksum, wanted) in &w {
            let found = g.get(checksum).map_or(&[][..], Vec::as_slice);
            o.lost += wanted.len().saturating_sub(found.len());
            o.duplicated += found.len().saturating_sub(wanted.len());
            let mut unmatched = found.to_vec();
            let mut matched = 0;
            for meta in wanted {
                if let Some(i) = unmatched.iter().position(|m| m == meta) {
                    unmatched.remove(i);
                    matched += 1;
                }
            }
            // Copies on both sides whose flags or date differ.
            let changed = wanted.len().min(found.len()) - matched;
            o.changed += changed;
            if wanted.len() != found.len() || changed > 0 {
                o.examples.push(format!(
                    "{folder}: {checksum:?}: source {wanted:?}, target {found:?}"
                ));
            }
        }
        for (checksum, found) in g.iter().filter(|(c, _)| !w.contains_key(c)) {
            o.changed += found.len();
            o.examples.push(format!(
                "{folder}: {checksum:?}: not in the source, target {found:?}"
            ));
        }
    }
    o
}

/// Plaintext login to `d` through `port` (a proxy's, or the server's own).
fn plaintext(d: &Dovecot, port: u16) -> ImapConfig {
    let (user, password) = d.login();
    let mut config = ImapConfig::new(
        d.host(),
        port,
        Security::Plaintext,
        Auth::Login {
            user: user.to_string(),
            password: password.into(),
        },
    );
    config.read_timeout = Duration::from_secs(15);
    config
}

/// Reads a whole store into memory, directly (no proxy, no faults).
async fn read_all(d: &Dovecot) -> MemoryStore {
    let store: Arc<dyn Source> = Arc::new(
        ImapStore::connect(plaintext(d, d.imap_port()))
            .await
            .expect("connect for read-back"),
    );
    let back = MemoryStore::new();
    let copier = Copier::new(
        store,
        Arc::new(back.clone()),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let report = copier
        .run(copier.identity_plan().await.expect("plan"))
        .await
        .expect("read back");
    assert!(report.is_success(), "read-back: {report:#?}");
    back
}

/// Sums the copied items of a copier's progress events into `copied`.
fn count_progress(copier: &Copier, copied: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let mut events = copier.progress();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Progress::Items { delta, .. }) => {
                    copied.fetch_add(delta.copied + delta.skipped_existing, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    })
}

/// Restarts a server (blocking: Dovecot's stop and start wait on processes) and gives it back.
async fn restart(mut d: Dovecot, what: &str) -> Dovecot {
    let started = Instant::now();
    let d = tokio::task::spawn_blocking(move || {
        d.restart().expect("restart dovecot");
        d
    })
    .await
    .expect("restart task");
    eprintln!("restarted the {what} server in {:?}", started.elapsed());
    d
}

fn seed() -> u64 {
    std::env::var("MAILFERRY_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_survives_cuts_byes_refusals_and_restarts_without_loss_or_duplicates() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let seed = seed();
    eprintln!("fault seed: {seed} (replay with MAILFERRY_FAULT_SEED={seed})");
    let folders = [
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2019"]),
        FolderPath::new(["Archive", "2020", "Q1"]),
        FolderPath::new(["Ünïcødé", "Sub folder"]),
        FolderPath::new(["Sent"]),
        FolderPath::new(["Drafts"]),
        FolderPath::new(["Projets & Idées"]),
        FolderPath::new(["Archive"]),
    ];
    // Blocks of 50 consecutive messages per folder, round robin (the generator puts half the
    // mail in its first folder): resolving an uncertain append lists the whole target folder,
    // and eight folders of 250 keep that affordable on a link this bad. Byte-identical
    // duplicates, which follow their original, mostly stay in its folder.
    let mut generated = CorpusSpec::new(MESSAGES, SizeMix::small())
        .with_quirks()
        .messages();
    for (i, m) in generated.iter_mut().enumerate() {
        m.folder = folders[(i / 50) % folders.len()].clone();
    }
    let corpus_bytes: usize = generated.iter().map(|m| m.body.len()).sum();
    let expected = MemoryStore::new();
    for m in &generated {
        expected.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }
    let src = common::dovecot('/', "");
    src.fill(src.login().0, generated).expect("fill the source");
    let dst = common::dovecot('.', "");

    let proxy_to = |d: &Dovecot| {
        let upstream = format!("{}:{}", d.host(), d.imap_port())
            .parse()
            .expect("address");
        Proxy::start(upstream, ProxyOptions::default())
    };
    let src_proxy = proxy_to(&src).await.expect("source proxy");
    let dst_proxy = proxy_to(&dst).await.expect("target proxy");
    let source: Arc<dyn Source> = Arc::new(
        ImapStore::connect(plaintext(&src, src_proxy.addr().port()))
            .await
            .expect("connect source"),
    );
    let watched = Arc::new(Hooked::new(
        Arc::new(
            ImapStore::connect(plaintext(&dst, dst_proxy.addr().port()))
                .await
                .expect("connect target"),
        ),
        faults_watch::Watcher::default(),
    ));
    let target: Arc<dyn Target> = watched.clone();
    let watch = watched.hook();

    // Offsets from 0.5 to 160 KB on the source: a few logins die, most connections move a few
    // dozen messages. The target moves several times the source's bytes (appends, plus the
    // listings that resolve uncertain appends), so up to 250 KB still cuts it 75+ times. One
    // connection in six ends with BYE instead of a cut; one answer in 40 is refused.
    for (i, proxy) in [&src_proxy, &dst_proxy].into_iter().enumerate() {
        proxy.set_random_faults(Some(RandomFaults {
            seed: seed.wrapping_add(i as u64),
            min_bytes: 500,
            max_bytes: if i == 0 { 160_000 } else { 250_000 },
            bye_one_in: 6,
        }));
        proxy.set_refuse_every(Some(40));
    }

    // Restarts are driven by progress, so they happen mid-copy whatever the machine's speed.
    let copied = Arc::new(AtomicU64::new(0));
    let chaos = {
        let copied = copied.clone();
        tokio::spawn(async move {
            while copied.load(Ordering::SeqCst) < RESTART_SOURCE_AT {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let src = restart(src, "source").await;
            while copied.load(Ordering::SeqCst) < RESTART_TARGET_AT {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let dst = restart(dst, "target").await;
            (src, dst)
        })
    };

    // Small batches, as one would configure for a flaky link: a MULTIAPPEND is atomic, and a
    // batch bigger than the link's typical life could never land. Two writers per folder (the
    // default), so resolving one writer's uncertain append races the other's appends.
    let options = CopyOptions {
        batch_items: 16,
        backoff: Duration::from_millis(50),
        ..CopyOptions::default()
    };
    let state = Arc::new(MemoryState::new());
    let started = Instant::now();
    let mut passes: Vec<String> = Vec::new();
    let mut converged = false;
    for pass in 1..=MAX_PASSES {
        let copier = Copier::new(
            source.clone(),
            target.clone(),
            state.clone(),
            options.clone(),
        );
        let counter = count_progress(&copier, copied.clone());
        let plan = match copier.identity_plan().await {
            Ok(plan) => plan,
            Err(e) if e.is_transient() => {
                passes.push(format!("pass {pass}: listing folders failed: {e}"));
                continue;
            }
            Err(e) => panic!("pass {pass}: a fatal error listing folders: {e}"),
        };
        let report: Report = copier
            .run(plan)
            .await
            .unwrap_or_else(|e| panic!("pass {pass}: transient faults became fatal: {e}"));
        counter.abort();
        let errors: Vec<String> = report
            .folders
            .iter()
            .filter_map(|f| f.error.as_ref().map(|e| format!("{}: {e}", f.source)))
            .collect();
        passes.push(format!(
            "pass {pass}: copied {}, already {}, skipped_existing {}, failed {}, folder errors {} \
             ({:.1} s)",
            report.totals.copied,
            report.totals.already_copied,
            report.totals.skipped_existing,
            report.totals.failed,
            errors.len(),
            report.duration_secs
        ));
        for e in errors.iter().take(3) {
            passes.push(format!("    {e}"));
        }
        if report.is_success() && chaos.is_finished() {
            converged = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    for line in &passes {
        eprintln!("{line}");
    }
    assert!(converged, "no clean pass within {MAX_PASSES} passes");
    let (src, dst) = chaos.await.expect("both servers were restarted");
    let faults = [&src_proxy, &dst_proxy].map(|p| {
        (
            p.connections(),
            p.cuts(),
            p.cut_sites(),
            p.byes(),
            p.refusals(),
            p.refusals_by_command(),
        )
    });
    // Faults off before reading back, so nothing the proxies do can mask a difference.
    drop((src_proxy, dst_proxy));

    let want = contents_of(&expected);
    let from_source = contents_of(&read_all(&src).await);
    let from_target = contents_of(&read_all(&dst).await);
    let source_vs_corpus = compare(&want, &from_source);
    let outcome = compare(&from_source, &from_target);

    eprintln!(
        "\n{MESSAGES} messages ({:.1} MB) in {} passes, {elapsed:.1?}",
        corpus_bytes as f64 / 1e6,
        passes.iter().filter(|l| l.starts_with("pass")).count()
    );
    eprintln!("{:<58} {:>7} {:>7}", "fault injected", "source", "target");
    let [
        (sc, scuts, ssites, sbyes, srefs, sby),
        (tc, tcuts, tsites, tbyes, trefs, tby),
    ] = &faults;
    let rows: [(&str, u64, u64); 10] = [
        ("connections made", *sc, *tc),
        ("cut at a random offset (total)", *scuts, *tcuts),
        (
            "  … inside a FETCH literal (server → client)",
            ssites.server_literal,
            tsites.server_literal,
        ),
        (
            "  … inside an APPEND literal (client → server)",
            ssites.client_literal,
            tsites.client_literal,
        ),
        (
            "  … between a command and its tagged reply",
            ssites.awaiting_reply,
            tsites.awaiting_reply,
        ),
        ("  … with no command outstanding", ssites.idle, tsites.idle),
        ("* BYE at a response boundary, then closed", *sbyes, *tbyes),
        ("tagged answer replaced by NO [UNAVAILABLE]", *srefs, *trefs),
        (
            "  … of which an APPEND's answer (uncertain append)",
            sby.get("APPEND").copied().unwrap_or(0),
            tby.get("APPEND").copied().unwrap_or(0),
        ),
        ("server restarted mid-run", 1, 1),
    ];
    for (what, s, t) in rows {
        eprintln!("{what:<58} {s:>7} {t:>7}");
    }
    eprintln!("refused commands: source {sby:?}, target {tby:?}");
    eprintln!(
        "target: {} appends failed as a whole, {} listings of a folder failed, {} items \
         re-appended before any listing could resolve them; {} read-backs failed",
        watch.failed_appends(),
        watch.failed_listings(),
        watch.blind(),
        watch.failed_read_backs()
    );
    eprintln!(
        "outcome over the whole run: lost {}, duplicated {}, changed {}",
        outcome.lost, outcome.duplicated, outcome.changed
    );

    assert!(
        source_vs_corpus.is_clean(),
        "the source differs from the corpus: {source_vs_corpus:#?}"
    );
    assert!(
        outcome.is_clean(),
        "the target differs ({} blind re-appends seen): {:#?}",
        watch.blind(),
        outcome.examples
    );
    assert_eq!(from_target, from_source, "per-folder contents are equal");
    assert_eq!(
        watch.blind(),
        0,
        "items were appended again while uncertain, before a listing resolved them"
    );
    assert!(
        *scuts >= 50 && *tcuts >= 50,
        "cuts: source {scuts}, target {tcuts}"
    );
    assert!(
        *sbyes >= 1 && *tbyes >= 1,
        "BYEs: source {sbyes}, target {tbyes}"
    );
    assert!(
        *srefs >= 1 && *trefs >= 1,
        "refusals: source {srefs}, target {trefs}"
    );
    for sites in [ssites, tsites] {
        assert!(sites.awaiting_reply >= 1, "{sites:?}");
    }
    assert!(
        ssites.server_literal >= 1,
        "cuts inside a FETCH body: {ssites:?}"
    );
    assert!(
        tsites.client_literal >= 1,
        "cuts inside an APPEND literal: {tsites:?}"
    );
}
