//! A pool of up to `max_connections` logged-in sessions for one account.
//!
//! Sessions are checked out per operation as a [`Lease`] and go back only through
//! [`Lease::release`], which callers reach on success. Any early return — an error, a dropped
//! stream — drops the lease and with it the session, so a session that saw an error (and may be
//! mid-command or out of step) is never reused; a new one is made on demand. New sessions are
//! opened with exponential backoff on transient failures; a refused login or an untrusted
//! certificate fails at once. Sessions that sat idle for a while get a NOOP before reuse, since
//! servers drop idle connections.

use std::sync::Mutex;
use std::time::Duration;

use mailferry_core::Result;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_rustls::TlsConnector;

use crate::config::{ImapConfig, Security};
use crate::conn::{Conn, ServerInfo};
use crate::transport;

/// Idle time after which a session is checked with NOOP before reuse.
const IDLE_CHECK: Duration = Duration::from_secs(120);

/// Sessions for one account.
pub(crate) struct Pool {
    config: ImapConfig,
    tls: Option<TlsConnector>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// A checked-out session. Dropped without [`Lease::release`], the session is discarded.
pub(crate) struct Lease<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Pool {
    /// A pool for `config`, with its TLS setup validated (a bad CA file fails here).
    pub(crate) fn new(config: ImapConfig) -> Result<Self> {
        let tls = match config.security {
            Security::Plaintext => None,
            Security::Tls | Security::StartTls => Some(transport::connector(&config)?),
        };
        let permits = Semaphore::new(config.max_connections.max(1));
        Ok(Pool {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits,
        })
    }

    /// The account's config.
    pub(crate) fn config(&self) -> &ImapConfig {
        &self.config
    }

    /// Opens a session, retrying transient failures with exponential backoff.
    pub(crate) async fn open(&self) -> Result<(Conn, ServerInfo)> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match Conn::open(&self.config, self.tls.as_ref()).await {
                Ok(opened) => return Ok(opened),
                Err(e) if e.is_transient() && attempt < self.config.connect_attempts => {
                    tracing::warn!(
                        endpoint = %self.config.label(), attempt, error = %e,
                        "connecting failed, retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) if e.is_transient() => {
                    return Err(mailferry_core::layers::retry::give_up(e)
                        .with_domain(mailferry_core::ErrorDomain::Connection));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks a session out: an idle one (checked if it sat long) or a new one.
    pub(crate) async fn get(&self) -> Result<Lease<'_>> {
        let permit = self.permits.acquire().await.map_err(|_| {
            mailferry_core::Error::fatal(format!("{}: the pool is closed", self.config.label()))
        })?;
        loop {
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(mut conn) = idle else {
                break;
            };
            if conn.last_used.elapsed() < IDLE_CHECK || conn.is_alive().await {
                return Ok(Lease {
                    conn: Some(conn),
                    pool: self,
                    _permit: permit,
                });
            }
        }
        let (conn, _) = self.open().await?;
        Ok(Lease {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// Puts a session that seeded the pool (the one opened by `connect`) into it.
    pub(crate) fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

impl Lease<'_> {
    /// The session.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        // The option is only emptied by `release`, which consumes the lease.
        self.conn
            .as_mut()
            .expect("a lease holds its session until released")
    }

    /// Returns the session to the pool for reuse.
    pub(crate) fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}
