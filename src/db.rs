//! Getting a database: connect, create it if missing, start a private cluster when nothing
//! listens, migrate.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgPool,
};

use crate::config::{Config, DEFAULT_DATABASE_URL};

/// Port of the private cluster, chosen away from 5432 so it never fights a system server.
pub const PRIVATE_PORT: u16 = 54329;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("bad DATABASE_URL: {0}")]
    BadUrl(sqlx::Error),
    #[error("cannot reach PostgreSQL at {host}:{port}: {source}")]
    Unreachable {
        host: String,
        port: u16,
        source: sqlx::Error,
    },
    #[error("creating database {name}: {source}")]
    Create { name: String, source: sqlx::Error },
    #[error("migrating: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("private PostgreSQL cluster: {0}")]
    Cluster(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Connects to the configured database, creating and migrating it as needed; the
/// webhooks' pool (what every command but `serve` needs).
pub async fn prepare(config: &Config) -> Result<PgPool, DbError> {
    Ok(prepare_pools(config).await?.webhooks)
}

/// [`prepare`], with both pools of a server.
pub async fn prepare_pools(config: &Config) -> Result<Pools, DbError> {
    use secrecy::ExposeSecret;
    let url = config.database_url.expose_secret();
    let mut options = PgConnectOptions::from_str(url).map_err(DbError::BadUrl)?;
    if let Err(e) = ensure_database(&options).await {
        let refused = matches!(
            &e,
            DbError::Unreachable {
                source: sqlx::Error::Io(_),
                ..
            }
        );
        if refused && config.private_cluster && url == DEFAULT_DATABASE_URL {
            tracing::warn!(error = %e, "no PostgreSQL at the default address; trying a private cluster");
            let dir = config.data_dir.join("pgdata");
            start_private_cluster(&dir, PRIVATE_PORT).await?;
            options = options.host("127.0.0.1").port(PRIVATE_PORT);
            ensure_database(&options).await?;
            tracing::info!(dir = %dir.display(), port = PRIVATE_PORT, "using a private PostgreSQL cluster");
        } else {
            return Err(e);
        }
    }
    // Migrations on a connection of their own: they may run longer than the pools'
    // statement timeout allows.
    let mut conn = options.connect().await?;
    let before = applied_migrations(&mut conn).await;
    crate::MIGRATOR.run(&mut conn).await?;
    let after = applied_migrations(&mut conn).await;
    conn.close().await.ok();
    tracing::info!(
        database = options.get_database().unwrap_or("postgres"),
        host = options.get_host(),
        port = options.get_port(),
        migrations = after,
        newly_applied = after.saturating_sub(before),
        "database ready"
    );
    Ok(pools(&options, config))
}

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

/// How many migrations the database records as applied (0 before the first run).
async fn applied_migrations(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(conn)
        .await
        .unwrap_or(0)
}

/// Creates the database named in `options` when it does not exist.
pub async fn ensure_database(options: &PgConnectOptions) -> Result<(), DbError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let host = options.get_host().to_owned();
    let port = options.get_port();
    let unreachable = |source| DbError::Unreachable {
        host: host.clone(),
        port,
        source,
    };
    let maintenance = options.clone().database("postgres");
    let mut conn = match maintenance.connect().await {
        Ok(c) => c,
        Err(source) => return Err(unreachable(source)),
    };
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; quote it the way PostgreSQL does.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("create database {quoted}"))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our create.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
            Err(source) => return Err(DbError::Create { name, source }),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Finds PostgreSQL's server binaries: on PATH, or in Debian's versioned directories.
fn find_pg_bin(name: &str) -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// Initialises (once) and starts a PostgreSQL cluster in `dir`, listening on 127.0.0.1:`port`.
///
/// PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
pub async fn start_private_cluster(dir: &Path, port: u16) -> Result<(), DbError> {
    let initdb =
        find_pg_bin("initdb").ok_or_else(|| DbError::Cluster("initdb not found".into()))?;
    let pg_ctl =
        find_pg_bin("pg_ctl").ok_or_else(|| DbError::Cluster("pg_ctl not found".into()))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| DbError::Cluster(format!("{}: {e}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| DbError::Cluster(format!("{}: {e}", dir.display())))?;
    let as_root = is_root().await;
    let run = |program: &Path, args: Vec<String>| {
        let mut cmd = pg_command(program, as_root);
        cmd.args(args);
        cmd
    };
    if as_root {
        let status = tokio::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .await
            .map_err(|e| DbError::Cluster(format!("chown: {e}")))?;
        if !status.success() {
            return Err(DbError::Cluster(
                "cannot give the data directory to user postgres".into(),
            ));
        }
    }
    let d = dir.display().to_string();
    if !dir.join("PG_VERSION").exists() {
        let out = run(
            &initdb,
            vec![
                "-D".into(),
                d.clone(),
                "-U".into(),
                "postgres".into(),
                "--auth=trust".into(),
            ],
        )
        .output()
        .await
        .map_err(|e| DbError::Cluster(format!("initdb: {e}")))?;
        if !out.status.success() {
            return Err(DbError::Cluster(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    let opts = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1");
    let out = run(
        &pg_ctl,
        vec![
            "-D".into(),
            d.clone(),
            "-o".into(),
            opts,
            "-l".into(),
            format!("{d}/server.log"),
            "-w".into(),
            "start".into(),
        ],
    )
    .output()
    .await
    .map_err(|e| DbError::Cluster(format!("pg_ctl: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Already running from an earlier start: fine.
        if !stderr.contains("another server might be running") {
            return Err(DbError::Cluster(format!("pg_ctl start failed: {stderr}")));
        }
    }
    Ok(())
}

/// Stops a cluster started by [`start_private_cluster`].
pub async fn stop_private_cluster(dir: &Path) -> Result<(), DbError> {
    let pg_ctl =
        find_pg_bin("pg_ctl").ok_or_else(|| DbError::Cluster("pg_ctl not found".into()))?;
    let mut cmd = pg_command(&pg_ctl, is_root().await);
    let out = cmd
        .arg("-D")
        .arg(dir)
        .args(["-m", "fast", "-w", "stop"])
        .output()
        .await
        .map_err(|e| DbError::Cluster(format!("pg_ctl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DbError::Cluster(format!(
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// A PostgreSQL server program, run as user `postgres` when we are root (PostgreSQL
/// refuses to run as root).
fn pg_command(program: &Path, as_root: bool) -> tokio::process::Command {
    if as_root {
        let mut c = tokio::process::Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(program);
        c
    } else {
        tokio::process::Command::new(program)
    }
}

/// Whether PostgreSQL's server binaries are installed here.
pub fn server_binaries_installed() -> bool {
    find_pg_bin("initdb").is_some() && find_pg_bin("pg_ctl").is_some()
}

async fn is_root() -> bool {
    match tokio::process::Command::new("id").arg("-u").output().await {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim() == "0",
        Err(_) => false,
    }
}

/// Whether every embedded migration has been applied to this database.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(pool)
            .await?;
    Ok(applied.unwrap_or(0) >= latest)
}
