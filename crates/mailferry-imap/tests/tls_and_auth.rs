//! Connection security and login against a real Dovecot: implicit TLS and STARTTLS verified
//! with the instance's CA, refusal without it, and refused logins that name the account without
//! leaking the password.

mod common;

use mailferry_core::{ErrorKind, Source};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};

async fn lists_inbox(store: &ImapStore) {
    let folders = store.list_folders().await.expect("list folders");
    assert!(
        folders.iter().any(|f| f.path.is_inbox()),
        "no INBOX in {folders:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_verified_with_the_instance_ca_works() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    let store = common::store(&d).await;
    lists_inbox(&store).await;
    let caps = store.server_capabilities();
    for cap in [
        "MULTIAPPEND",
        "LITERAL+",
        "UIDPLUS",
        "CONDSTORE",
        "LIST-STATUS",
    ] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing from {caps:?}");
    }
    assert_eq!(store.delimiter(), Some('.'));
    assert!(
        !store.is_compressed(),
        "COMPRESS stays off on loopback by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_verified_with_the_instance_ca_works() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('/', "");
    let mut config = common::config(&d);
    config.port = d.imap_port();
    config.security = Security::StartTls;
    let store = ImapStore::connect(config).await.expect("STARTTLS connect");
    lists_inbox(&store).await;
    assert_eq!(store.delimiter(), Some('/'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_when_forced_on_loopback_still_round_trips() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    let config = common::config(&d).with_compression(mailferry_imap::Compression::On);
    let store = ImapStore::connect(config).await.expect("connect");
    assert!(store.is_compressed(), "Dovecot offers COMPRESS=DEFLATE");
    lists_inbox(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_with_advice() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    for (security, port) in [
        (Security::Tls, d.imaps_port()),
        (Security::StartTls, d.imap_port()),
    ] {
        let mut config = common::config(&d);
        config.ca_file = None;
        config.security = security;
        config.port = port;
        let err = ImapStore::connect(config)
            .await
            .expect_err("the instance's certificate is not in the webpki roots");
        assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
        let text = err.to_string();
        assert!(text.contains("certificate"), "{text}");
        assert!(text.contains("--ca-file"), "{text}");
        assert!(text.contains(&format!("alice@127.0.0.1:{port}")), "{text}");
    }
    let mut insecure = common::config(&d);
    insecure.ca_file = None;
    insecure.insecure = true;
    let store = ImapStore::connect(insecure)
        .await
        .expect("insecure accepts it");
    lists_inbox(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_fatal_names_the_account_and_hides_the_password() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    let secret = "not-the-password-93817";
    for auth in [
        Auth::Login {
            user: "alice".into(),
            password: secret.into(),
        },
        Auth::Plain {
            user: "alice".into(),
            password: secret.into(),
        },
    ] {
        let mut config = common::config(&d);
        config.auth = auth;
        let debug = format!("{config:?}");
        assert!(!debug.contains(secret), "{debug}");
        let err = ImapStore::connect(config).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
        let text = format!("{err} {err:?}");
        assert!(
            text.contains(&format!("alice@127.0.0.1:{}", d.imaps_port())),
            "{text}"
        );
        assert!(text.contains("authentication failed"), "{text}");
        assert!(!text.contains(secret), "the password leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_only_when_chosen_and_a_closed_port_is_transient() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    let (user, password) = d.login();
    let auth = Auth::Plain {
        user: user.into(),
        password: password.into(),
    };
    let plain = ImapConfig::new(d.host(), d.imap_port(), Security::Plaintext, auth.clone());
    let store = ImapStore::connect(plain)
        .await
        .expect("plaintext when chosen");
    lists_inbox(&store).await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut nowhere = ImapConfig::new("127.0.0.1", port, Security::Plaintext, auth);
    nowhere.connect_attempts = 2;
    let err = ImapStore::connect(nowhere)
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        err.to_string().contains(&format!("alice@127.0.0.1:{port}")),
        "{err}"
    );
}
