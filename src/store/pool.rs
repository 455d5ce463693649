//! The connection pools and what their errors mean: the two pools of a server (webhooks,
//! admin API) with the session settings every connection gets, a ping only after idleness
//! or a lost connection, and which errors are worth a retry (503) rather than a 500.

use std::time::Duration;

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    Connection, PgPool,
};

use crate::config::Config;

/// The two pools of a server process (issue 8, point 7): the webhooks' (USSD hops, SMS and
/// delivery reports, the dispatchers and the scheduler) and the admin API's (with the CSV
/// exports), so that no number of slow API calls or exports can take the connections a
/// hop needs.
#[derive(Clone, Debug)]
pub struct Pools {
    pub webhooks: PgPool,
    pub api: PgPool,
}

/// How long an admin API call waits for a connection of its pool before it is answered
/// 503.
const API_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that sat idle in the pool longer than this is pinged before it is handed
/// out, so that one a database restart (or `pg_terminate_backend`) killed is replaced
/// instead of failing a request. A busy server reuses its connections within milliseconds
/// and pays nothing; a ping costs one round trip (0.039 ms on loopback: pgbench, an empty statement), on
/// top of the ping sqlx already makes when a connection is released.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// For this long after a request saw a connection die, every connection is pinged before
/// use, so that the others the same restart killed are weeded out at once.
const SUSPECT_AFTER_LOSS: Duration = Duration::from_secs(10);

/// When a connection was last seen dead, in milliseconds since [`epoch`] (0: never).
/// Process-wide rather than per pool: both pools talk to the same server, and in a test
/// process the only cost of sharing it is a few extra pings.
static LOST_AT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn millis_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Records that a request found its connection dead: for a while every connection is
/// pinged before use.
pub fn note_connection_lost() {
    LOST_AT_MS.store(millis_since_epoch(), std::sync::atomic::Ordering::Relaxed);
}

fn recently_lost() -> bool {
    let at = LOST_AT_MS.load(std::sync::atomic::Ordering::Relaxed);
    at != 0 && millis_since_epoch().saturating_sub(at) < SUSPECT_AFTER_LOSS.as_millis() as u64
}

/// The connection itself failed (it was closed, reset, or the server ended the session):
/// the same request on another connection may well succeed.
pub fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // admin_shutdown, crash_shutdown, cannot_connect_now, connection_exception class
            Some("57P01" | "57P02" | "57P03")
                | Some("08000" | "08003" | "08006" | "08001" | "08004")
        ),
        _ => false,
    }
}

/// The database is unreachable, overloaded or restarting, rather than the request being
/// wrong: the caller should be told to retry (503), not that something broke (500).
pub fn is_temporary(e: &sqlx::Error) -> bool {
    is_connection_lost(e)
        || matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed
        )
        || matches!(e, sqlx::Error::Database(db) if matches!(
            db.code().as_deref(),
            // query_canceled (statement timeout), serialization failure, deadlock, lock timeout,
            // too many connections
            Some("57014" | "40001" | "40P01" | "55P03" | "53300")
        ))
}

/// The pools for the database `base` points at, with the session settings every
/// connection gets (statement and idle-in-transaction timeouts, generic plans); connections
/// are opened when first needed.
pub fn pools(base: &PgConnectOptions, config: &Config) -> Pools {
    let options = base.clone().options([
        // Every hot query is a short point lookup run thousands of times a second: plan it
        // once per connection instead of re-planning on each execution.
        ("plan_cache_mode", "force_generic_plan".to_owned()),
        (
            "statement_timeout",
            format!("{}ms", config.db_statement_timeout_ms),
        ),
        (
            "idle_in_transaction_session_timeout",
            format!("{}ms", config.db_idle_in_transaction_timeout_ms),
        ),
        // How far back a menu pledge looks for the same pledge to ask about
        // (`recent_pledge`; 10 minutes where this is not set, as from psql).
        (
            "hashar.pledge_repeat_minutes",
            config.pledge_repeat_minutes.to_string(),
        ),
    ]);
    let pool = |size: u32, acquire: Duration| {
        PgPoolOptions::new()
            .max_connections(size)
            // Not a ping before every checkout (a round trip on every hop): only after a
            // connection sat idle, or while connections are known to have died.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE || recently_lost() {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(acquire)
            .connect_lazy_with(options.clone())
    };
    Pools {
        webhooks: pool(
            config.db_pool_size,
            Duration::from_millis(config.db_timeout_ms.max(100)),
        ),
        api: pool(config.db_api_pool_size, API_ACQUIRE_TIMEOUT),
    }
}
