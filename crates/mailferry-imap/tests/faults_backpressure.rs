//! Back-pressure: a fast source and a target slower than it (50 ms added round trip and a
//! rate limit), with a corpus several times the copier's byte budget, including 5–15 MB
//! messages. The pipeline must hold the reader back instead of buffering the mailbox: the
//! process's peak resident memory stays within the budget plus a fixed overhead. Alone in its
//! test binary so that no other test's allocations count in the peak.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mailferry_core::layers::rate_limited;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Checksum, Copier, CopyOptions, FolderPath, MemoryState, Source, Target};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::rss::{current_rss_bytes, peak_rss_bytes};
use mailferry_testkit::{Dovecot, Proxy, ProxyOptions};

const BUDGET: u64 = 16 << 20;
/// What the process may use beyond the budget: the runtime, rayon, the proxy's delay lines,
/// async-imap's read buffers (one whole FETCH response each) and the largest message being
/// fetched before it is admitted to the budget.
const OVERHEAD: u64 = 120 << 20;
const MIB: f64 = (1 << 20) as f64;

fn plaintext(d: &Dovecot, port: u16) -> ImapConfig {
    let (user, password) = d.login();
    ImapConfig::new(
        d.host(),
        port,
        Security::Plaintext,
        Auth::Login {
            user: user.to_string(),
            password: password.into(),
        },
    )
}

/// Per folder, sorted canonical checksums, read from `store` one message at a time.
async fn stream_checksums(store: &ImapStore) -> BTreeMap<FolderPath, Vec<Checksum>> {
    let mut out = BTreeMap::new();
    for folder in Source::list_folders(store).await.expect("folders") {
        let metas: Vec<_> = store
            .list_items(&folder.path, None)
            .map(|m| m.expect("listed"))
            .collect()
            .await;
        let mut sums: Vec<Checksum> = store
            .fetch(&folder.path, metas)
            .map(|item| Checksum::of(&canonicalise(item.expect("fetched").body).0))
            .collect()
            .await;
        sums.sort();
        if !sums.is_empty() {
            out.insert(folder.path, sums);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_holds_memory_to_the_budget_not_the_mailbox() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let sizes = SizeMix {
        small: (2_000, 50_000),
        attachment_fraction: 0.10,
        attachment: (100_000, 2_000_000),
        huge_fraction: 0.05,
        huge: (5_000_000, 15_000_000),
    };
    let spec = CorpusSpec::new(250, sizes)
        .with_quirks()
        .in_folders(vec![FolderPath::inbox(), FolderPath::new(["Archive"])]);
    // The corpus is generated and written one message at a time: only its checksums stay.
    let expected: Mutex<BTreeMap<FolderPath, Vec<Checksum>>> = Mutex::new(BTreeMap::new());
    let (mut total, mut huge, mut largest) = (0u64, 0, 0u64);
    let src = common::dovecot('.', "");
    let messages = spec.generate().inspect(|m| {
        let size = m.body.len() as u64;
        total += size;
        largest = largest.max(size);
        huge += usize::from(size >= 5_000_000);
        let sum = Checksum::of(&canonicalise(m.body.clone()).0);
        if let Ok(mut e) = expected.lock() {
            e.entry(m.folder.clone()).or_default().push(sum);
        }
    });
    src.fill(src.login().0, messages).expect("fill");
    let mut expected = expected.into_inner().expect("checksums");
    expected.values_mut().for_each(|v| v.sort());
    assert!(huge >= 5, "{huge} messages of 5–15 MB");
    assert!(
        total >= 6 * BUDGET,
        "the corpus ({total} bytes) is several times the budget"
    );

    let dst = common::dovecot('.', "");
    let upstream = format!("{}:{}", dst.host(), dst.imap_port())
        .parse()
        .expect("address");
    let proxy = Proxy::start(
        upstream,
        ProxyOptions {
            round_trip: Duration::from_millis(50),
            cut_after_bytes: None,
        },
    )
    .await
    .expect("proxy");
    let source = Arc::new(
        ImapStore::connect(plaintext(&src, src.imap_port()))
            .await
            .expect("connect source"),
    );
    let target_store = Arc::new(
        ImapStore::connect(plaintext(&dst, proxy.addr().port()))
            .await
            .expect("connect target"),
    );
    // 50 ms per round trip and 25 MB/s: a few times slower than reading the source.
    let target: Arc<dyn Target> = rate_limited(target_store, None, Some(25e6));
    // Generating and writing the corpus had its own peak; count the copy's alone where Linux
    // allows resetting the high-water mark (writing 5 to clear_refs, Linux 4.0+).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = current_rss_bytes().unwrap_or(0);
    let options = CopyOptions {
        byte_budget: BUDGET,
        ..CopyOptions::default()
    };
    let copier = Copier::new(source, target, Arc::new(MemoryState::new()), options);
    let started = Instant::now();
    let report = copier
        .run(copier.identity_plan().await.expect("plan"))
        .await
        .expect("copy");
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_bytes().expect("/proc/self/status");
    eprintln!(
        "back-pressure: {:.0} MB in {} messages ({huge} of 5–15 MB, the largest {:.1} MB) \
         through a 50 ms, 25 MB/s target in {secs:.1} s ({:.1} MB/s); budget {:.0} MiB; \
         RSS before the copy {:.0} MiB, peak {:.0} MiB{} (limit {:.0} MiB)",
        total as f64 / 1e6,
        report.totals.copied,
        largest as f64 / 1e6,
        total as f64 / 1e6 / secs,
        BUDGET as f64 / MIB,
        before as f64 / MIB,
        peak as f64 / MIB,
        if reset {
            " during the copy"
        } else {
            " (including the fill)"
        },
        (BUDGET + OVERHEAD) as f64 / MIB,
    );
    assert!(report.is_success(), "{report:#?}");
    assert_eq!(report.totals.copied, 250);
    assert!(
        peak < BUDGET + OVERHEAD,
        "peak RSS {:.0} MiB exceeds the budget plus overhead ({:.0} MiB) for a {:.0} MB corpus",
        peak as f64 / MIB,
        (BUDGET + OVERHEAD) as f64 / MIB,
        total as f64 / 1e6
    );
    assert!(
        peak < total,
        "the peak is not below the corpus size: nothing was bounded"
    );

    drop(proxy);
    let direct = ImapStore::connect(plaintext(&dst, dst.imap_port()))
        .await
        .expect("connect for read-back");
    assert!(
        stream_checksums(&direct).await == expected,
        "the target differs from the corpus"
    );
}
