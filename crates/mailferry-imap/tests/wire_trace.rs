//! The wire trace against both real servers: a copy in and a read-back out, over STARTTLS (so
//! the trace must follow the stream through the TLS upgrade and COMPRESS=DEFLATE), with
//! LOGIN and with AUTHENTICATE PLAIN. The trace must show the conversation (commands, tagged
//! answers, literal sizes) and must not contain the password in any form, nor a message body.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::{Flags, FolderPath, MemoryState, MemoryStore};
use mailferry_imap::{Auth, Compression, ImapConfig, ImapStore, Secret, Security, WireTrace};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::{ImapServer, ServerKind};

const BODY_MARKER: &str = "body-text-that-must-not-be-traced";

/// Base64 without padding concerns: the standard alphabet, as SASL PLAIN sends it.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn traced_round_trip(kind: ServerKind, plain: bool) {
    if !kind.available() {
        return;
    }
    let server: Box<dyn ImapServer> = kind.start('.').expect("start server");
    let (user, password) = server.login();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trace.log");
    let password_secret = Secret::new(password.to_string());
    let auth = if plain {
        Auth::Plain {
            user: user.to_string(),
            password: password_secret,
        }
    } else {
        Auth::Login {
            user: user.to_string(),
            password: password_secret,
        }
    };
    let config = ImapConfig::new(server.host(), server.imap_port(), Security::StartTls, auth)
        .with_ca_file(server.ca_pem_path())
        .with_compression(Compression::On)
        .with_wire_trace(WireTrace::to_file(&path).expect("create trace"));
    let store = Arc::new(ImapStore::connect(config).await.expect("connect"));

    let memory = MemoryStore::new();
    memory.create_folder(&FolderPath::inbox(), None);
    for i in 0..3 {
        memory.insert(
            &FolderPath::inbox(),
            Bytes::from(format!(
                "Message-ID: <trace{i}@test>\r\nSubject: traced {i}\r\n\r\n{BODY_MARKER}\r\n"
            )),
            Flags::default(),
            None,
        );
    }
    let report = copy_all(
        Arc::new(memory),
        store.clone(),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(report.totals.copied, 3, "{report:#?}");
    let back = MemoryStore::new();
    let report = copy_all(store, Arc::new(back), Arc::new(MemoryState::new())).await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");

    let trace = std::fs::read_to_string(&path).expect("read trace");
    let what = format!("{kind:?}, {}", if plain { "PLAIN" } else { "LOGIN" });
    // The conversation is there: the greeting, the login, appends with their literal sizes,
    // fetches of bodies as sizes, tagged answers.
    assert!(trace.contains(" S: * OK"), "{what}: no greeting:\n{trace}");
    assert!(trace.contains("STARTTLS"), "{what}: no STARTTLS:\n{trace}");
    if plain {
        assert!(
            trace.contains("AUTHENTICATE PLAIN"),
            "{what}: no AUTHENTICATE:\n{trace}"
        );
    } else {
        assert!(
            trace.contains("LOGIN <redacted>"),
            "{what}: no redacted LOGIN:\n{trace}"
        );
    }
    // COMPRESS moves the tracer above the compression: the commands after it are readable.
    let compress = trace
        .find("COMPRESS DEFLATE")
        .unwrap_or_else(|| panic!("{what}: no COMPRESS:\n{trace}"));
    assert!(
        trace[compress..].contains("APPEND"),
        "{what}: no APPEND after COMPRESS:\n{trace}"
    );
    assert!(
        trace.contains("<literal: "),
        "{what}: literals not abbreviated:\n{trace}"
    );
    assert!(trace.contains("FETCH"), "{what}: no FETCH:\n{trace}");
    // And no secret in any form, nor a body.
    for secret in [
        password.to_string(),
        base64(format!("\0{user}\0{password}").as_bytes()),
        base64(format!("{user}\0{user}\0{password}").as_bytes()),
        base64(password.as_bytes()),
    ] {
        assert!(
            !trace.contains(&secret),
            "{what}: the trace holds a secret ({secret}):\n{trace}"
        );
    }
    assert!(
        !trace.contains(BODY_MARKER),
        "{what}: a message body is in the trace:\n{trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_trace_shows_the_conversation_without_the_login_password() {
    traced_round_trip(ServerKind::Dovecot, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_trace_shows_the_conversation_without_the_sasl_plain_password() {
    traced_round_trip(ServerKind::Dovecot, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_trace_shows_the_conversation_without_the_login_password() {
    traced_round_trip(ServerKind::Cyrus, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_trace_shows_the_conversation_without_the_sasl_plain_password() {
    traced_round_trip(ServerKind::Cyrus, true).await;
}
