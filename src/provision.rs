//! Provisioning a database (no queries of the application live here): connect, create it
//! if missing, start a private cluster when nothing listens, migrate, and build the pools
//! (`store::pool`).
//!
//! The private cluster (`hashar serve` with no configuration and nothing listening on the
//! default address) lives in `<data_dir>/pgdata`, listens on 127.0.0.1:[`PRIVATE_PORT`] and
//! on a Unix socket in its data directory (mode 0700), and asks for a password
//! (scram-sha-256) on both: a random one drawn at its first start and kept in
//! `<data_dir>/pgdata.password` (mode 0600, see [`private_cluster_password_file`]). A
//! cluster made by an earlier version, which trusted every local user, is switched to that
//! at its next start. See [`start_private_cluster`].

use std::{
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};

use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, PgPool};

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
///
/// When the configured database is the default one and nothing listens there, a private
/// cluster is started ([`start_private_cluster`]) and its password set on the connection
/// options used for creating the database, migrating and both pools.
pub async fn prepare_pools(config: &Config) -> Result<crate::store::pool::Pools, DbError> {
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
            let password = start_private_cluster(&dir, PRIVATE_PORT).await?;
            // The same options (with the password) serve the database's creation, the
            // migrations and both pools.
            options = options
                .host("127.0.0.1")
                .port(PRIVATE_PORT)
                .password(password.expose_secret());
            ensure_database(&options).await?;
            tracing::info!(
                dir = %dir.display(),
                port = PRIVATE_PORT,
                password_file = %private_cluster_password_file(&dir).unwrap_or_default().display(),
                "using a private PostgreSQL cluster"
            );
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
    Ok(crate::store::pool::pools(&options, config))
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

/// Length of a generated password of the private cluster: 32 letters and digits (about
/// 190 bits) from a generator seeded by the operating system's (`OsRng`).
const PASSWORD_LEN: usize = 32;

/// The shortest password a password file may hold (letters and digits only).
const MIN_PASSWORD_LEN: usize = 16;

/// How long [`start_private_cluster`] waits, after switching a cluster from trust to
/// password authentication, for the server to stop accepting connections without one.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// Where the password of the private cluster in `dir` is kept: the data directory's
/// sibling `<name>.password` (`<data_dir>/pgdata.password` for `<data_dir>/pgdata`), outside
/// it so that it stays the invoking user's when the data directory belongs to `postgres`.
/// `None` when `dir` has no last component (`/`, `..`).
pub fn private_cluster_password_file(dir: &Path) -> Option<PathBuf> {
    let mut name = dir.file_name()?.to_os_string();
    name.push(".password");
    Some(dir.with_file_name(name))
}

/// Initialises (once) and starts a PostgreSQL cluster in `dir`, listening on
/// 127.0.0.1:`port` only, and returns the password of its superuser `postgres`.
///
/// - At the first initialisation a password is generated (32 random letters and
///   digits) and stored in [`private_cluster_password_file`] (mode 0600, written to a
///   temporary file and linked into place, so it appears whole or not at all and is never
///   overwritten); the cluster is created with `--auth=scram-sha-256` (TCP and the Unix
///   socket) and that password. As root, `initdb` runs as `postgres` and reads a copy of
///   the file owned by `postgres` (mode 0600, next to the data directory), removed as soon
///   as `initdb` is done; the password file itself stays the invoking user's.
/// - A later start reads the password from that file. A password file that its group or
///   other users may read or write is refused (like ssh does with a private key): the
///   error says to `chmod 600` it. So is one that does not hold at least
///   16 letters and digits.
/// - A cluster made by an earlier version (with `trust` in `pg_hba.conf`) is switched to
///   password authentication: a password is generated and stored as above (unless the
///   file already exists), the server started, `ALTER ROLE postgres PASSWORD` run over a
///   trusted connection, every `trust` of `pg_hba.conf` replaced by `scram-sha-256` (a
///   new file renamed over the old one, same owner and mode) and the configuration
///   reloaded; then it waits until a connection without the password is refused. Each
///   step can be redone: a process that dies half-way leaves the password file and
///   `trust` in `pg_hba.conf`, and the next start finishes the switch with the stored
///   password. An initialised cluster whose `pg_hba.conf` has no `trust` but whose
///   password file is missing is refused (the password cannot be recovered).
/// - The server gets `-c unix_socket_permissions=0700` (its socket is in `dir`), and when
///   it was already running it is told to reload its configuration, so that a
///   `pg_hba.conf` rewritten just before a crash takes effect.
///
/// The password never appears in a log line or an error, and statements carrying it are
/// neither logged by sqlx nor by the server. PostgreSQL refuses to run as root, so as root
/// the cluster runs as the `postgres` user.
pub async fn start_private_cluster(dir: &Path, port: u16) -> Result<SecretString, DbError> {
    let initdb =
        find_pg_bin("initdb").ok_or_else(|| DbError::Cluster("initdb not found".into()))?;
    let pg_ctl =
        find_pg_bin("pg_ctl").ok_or_else(|| DbError::Cluster("pg_ctl not found".into()))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| DbError::Cluster(format!("{}: {e}", dir.display())))?;
    let canonical = dir
        .canonicalize()
        .map_err(|e| DbError::Cluster(format!("{}: {e}", dir.display())))?;
    let password_file = private_cluster_password_file(dir)
        .or_else(|| private_cluster_password_file(&canonical))
        .ok_or_else(|| {
            DbError::Cluster(format!("{}: no place for a password file", dir.display()))
        })?;
    let dir = canonical;
    // Checked before anything is started: a file others may read is refused.
    let stored = read_password(&password_file)?;
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
    let (password, switch) = if !dir.join("PG_VERSION").exists() {
        let password = match stored {
            Some(p) => p,
            None => store_new_password(&password_file)?,
        };
        init_cluster(&initdb, &dir, &password_file, &password, as_root).await?;
        (password, false)
    } else {
        let trusting = hba_trusts(&dir.join("pg_hba.conf"))?;
        match stored {
            Some(p) => (p, trusting),
            None if trusting => (store_new_password(&password_file)?, true),
            None => {
                return Err(DbError::Cluster(format!(
                    "the cluster in {d} asks for a password but its password file {} is \
                     missing: restore it, or remove the cluster to start afresh",
                    password_file.display()
                )))
            }
        }
    };
    let opts =
        format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700");
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
    let mut already_running = false;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Already running from an earlier start: fine.
        if !stderr.contains("another server might be running") {
            return Err(DbError::Cluster(format!("pg_ctl start failed: {stderr}")));
        }
        already_running = true;
    }
    if switch {
        switch_to_password(&dir, port, &password).await?;
        tracing::info!(dir = %d, "private cluster switched from trust to password authentication");
    } else if already_running {
        let out = run(
            &pg_ctl,
            vec!["-D".into(), d.clone(), "-s".into(), "reload".into()],
        )
        .output()
        .await
        .map_err(|e| DbError::Cluster(format!("pg_ctl: {e}")))?;
        if !out.status.success() {
            tracing::warn!(
                dir = %d,
                error = %String::from_utf8_lossy(&out.stderr).trim(),
                "cannot make the running private cluster reload its configuration"
            );
        }
    }
    Ok(password)
}

/// Runs `initdb` in `dir` with scram-sha-256 authentication and `password` for
/// `postgres`. As root `initdb` runs as `postgres`, which cannot read the invoking user's
/// password file: it gets a copy of its own (mode 0600) next to the data directory, where
/// it can reach (it reaches the data directory through there), removed right after.
async fn init_cluster(
    initdb: &Path,
    dir: &Path,
    password_file: &Path,
    password: &SecretString,
    as_root: bool,
) -> Result<(), DbError> {
    let copy = if as_root {
        let io = |e: std::io::Error| DbError::Cluster(format!("password file for initdb: {e}"));
        let parent = dir
            .parent()
            .ok_or_else(|| DbError::Cluster(format!("{}: no parent", dir.display())))?;
        // The data directory was just given to postgres: its owner is postgres.
        let owner = std::fs::metadata(dir).map_err(io)?;
        let mut copy = tempfile::Builder::new()
            .prefix(".initdb-pwfile.")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(parent)
            .map_err(io)?;
        std::os::unix::fs::fchown(copy.as_file(), Some(owner.uid()), Some(owner.gid()))
            .map_err(io)?;
        copy.write_all(password.expose_secret().as_bytes())
            .and_then(|()| copy.write_all(b"\n"))
            .and_then(|()| copy.flush())
            .map_err(io)?;
        Some(copy)
    } else {
        None
    };
    let pwfile = copy.as_ref().map_or(password_file, |c| c.path());
    let out = pg_command(initdb, as_root)
        .arg("-D")
        .arg(dir)
        .args(["-U", "postgres", "--auth=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .output()
        .await;
    if let Some(copy) = copy {
        copy.close().map_err(|e| {
            DbError::Cluster(format!("removing the password file given to initdb: {e}"))
        })?;
    }
    let out = out.map_err(|e| DbError::Cluster(format!("initdb: {e}")))?;
    if !out.status.success() {
        return Err(DbError::Cluster(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Switches a running cluster made with `trust` to password authentication: sets
/// `password` on `postgres` over a (still trusted) connection, rewrites `pg_hba.conf`,
/// reloads, and waits until a connection without the password is refused. Running it
/// again after it stopped half-way does the same.
async fn switch_to_password(dir: &Path, port: u16, password: &SecretString) -> Result<(), DbError> {
    let failed =
        |e: sqlx::Error| DbError::Cluster(format!("switching to password authentication: {e}"));
    let mut conn = local_options(port).connect().await.map_err(failed)?;
    // The statement carries the password: not in the server's log, not even when it fails.
    sqlx::raw_sql(
        "set log_statement = 'none'; set log_min_error_statement = 'panic'; \
         set log_min_duration_statement = -1; set password_encryption = 'scram-sha-256'",
    )
    .execute(&mut conn)
    .await
    .map_err(failed)?;
    let pw = password.expose_secret();
    // A password cannot be a bound parameter of ALTER ROLE. Ours are letters and digits
    // (checked when read); quoted the way PostgreSQL does all the same.
    let statement = SecretString::from(format!(
        "alter role postgres password '{}'",
        pw.replace('\'', "''")
    ));
    sqlx::raw_sql(statement.expose_secret())
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    rewrite_hba(&dir.join("pg_hba.conf"))?;
    sqlx::raw_sql("select pg_reload_conf()")
        .execute(&mut conn)
        .await
        .map_err(failed)?;
    conn.close().await.ok();
    // The postmaster rereads pg_hba.conf when it gets to the signal: wait for it.
    let deadline = tokio::time::Instant::now() + RELOAD_WAIT;
    loop {
        match local_options(port).password("").connect().await {
            Ok(c) => {
                c.close().await.ok();
                if tokio::time::Instant::now() >= deadline {
                    return Err(DbError::Cluster(
                        "the server still accepts connections without a password after \
                         reloading pg_hba.conf"
                            .into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("28P01" | "28000")) =>
            {
                return Ok(())
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// Connection options for the private cluster's maintenance database as `postgres`
/// (no password), with no statement logged by sqlx.
fn local_options(port: u16) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres")
        .ssl_mode(sqlx::postgres::PgSslMode::Disable)
        .disable_statement_logging()
}

/// The password stored in `path`; `None` when there is no such file. Refused: a file its
/// group or others may access (mode beyond 0600), and one not holding a password of at
/// least [`MIN_PASSWORD_LEN`] letters and digits (an optional line end after it).
fn read_password(path: &Path) -> Result<Option<SecretString>, DbError> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DbError::Cluster(format!("{shown}: {e}"))),
    };
    if !meta.is_file() {
        return Err(DbError::Cluster(format!("{shown} is not a file")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(DbError::Cluster(format!(
            "{shown} holds the private cluster's password but other users may access it \
             (mode {mode:04o}); refusing to use it: run `chmod 600 {shown}`"
        )));
    }
    let text = SecretString::from(
        std::fs::read_to_string(path).map_err(|e| DbError::Cluster(format!("{shown}: {e}")))?,
    );
    let password = text.expose_secret().trim_end_matches(['\n', '\r']);
    if password.len() < MIN_PASSWORD_LEN || !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DbError::Cluster(format!(
            "{shown} does not hold a password of at least {MIN_PASSWORD_LEN} letters and digits"
        )));
    }
    Ok(Some(SecretString::from(password.to_owned())))
}

/// Generates a password and stores it in `path` (mode 0600): written to a new temporary
/// file next to it, then linked to `path` without ever replacing a file there. When
/// another process stored one first, that one is returned.
fn store_new_password(path: &Path) -> Result<SecretString, DbError> {
    let shown = path.display();
    let io = |e: std::io::Error| DbError::Cluster(format!("{shown}: {e}"));
    let password = generate_password()?;
    let parent = path
        .parent()
        .ok_or_else(|| DbError::Cluster(format!("{shown}: no parent directory")))?;
    let mut file = tempfile::Builder::new()
        .prefix(".pgdata-password.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(parent)
        .map_err(io)?;
    file.write_all(password.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.as_file().sync_all())
        .map_err(io)?;
    match file.persist_noclobber(path) {
        Ok(_) => {
            // The new name durable too, before a cluster is made with that password.
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(password)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_password(path)?
            .ok_or_else(|| DbError::Cluster(format!("{shown} vanished while being written"))),
        Err(e) => Err(io(e.error)),
    }
}

/// [`PASSWORD_LEN`] random letters and digits.
fn generate_password() -> Result<SecretString, DbError> {
    use rand::{
        distr::{Alphanumeric, SampleString},
        rngs::StdRng,
        SeedableRng,
    };
    let mut rng = StdRng::try_from_os_rng()
        .map_err(|e| DbError::Cluster(format!("no randomness from the operating system: {e}")))?;
    Ok(SecretString::from(
        Alphanumeric.sample_string(&mut rng, PASSWORD_LEN),
    ))
}

/// Whether `pg_hba.conf` at `path` lets anyone in without a password somewhere.
fn hba_trusts(path: &Path) -> Result<bool, DbError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DbError::Cluster(format!("{}: {e}", path.display())))?;
    Ok(hba_without_trust(&text) != text)
}

/// `pg_hba.conf` text with the `trust` method replaced by `scram-sha-256` on every line
/// (comments, and quoted names, left as they are; spacing kept).
fn hba_without_trust(text: &str) -> String {
    fn flush(out: &mut String, token: &mut String) {
        out.push_str(if token == "trust" {
            "scram-sha-256"
        } else {
            token
        });
        token.clear();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let (fields, comment) = line.split_at(line.find('#').unwrap_or(line.len()));
        let mut token = String::new();
        for c in fields.chars() {
            if c.is_whitespace() {
                flush(&mut out, &mut token);
                out.push(c);
            } else {
                token.push(c);
            }
        }
        flush(&mut out, &mut token);
        out.push_str(comment);
    }
    out
}

/// Replaces `pg_hba.conf` at `path` by its [`hba_without_trust`] version: a new file with
/// the same owner and mode, renamed over it (so a crash leaves the old file or the new
/// one, never half of one).
fn rewrite_hba(path: &Path) -> Result<(), DbError> {
    let shown = path.display();
    let io = |e: std::io::Error| DbError::Cluster(format!("{shown}: {e}"));
    let text = std::fs::read_to_string(path).map_err(io)?;
    let new = hba_without_trust(&text);
    if new == text {
        return Ok(());
    }
    let meta = std::fs::metadata(path).map_err(io)?;
    let parent = path
        .parent()
        .ok_or_else(|| DbError::Cluster(format!("{shown}: no parent directory")))?;
    let mut file = tempfile::Builder::new()
        .prefix("pg_hba.conf.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(parent)
        .map_err(io)?;
    let own = file.as_file().metadata().map_err(io)?;
    if (own.uid(), own.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::fchown(file.as_file(), Some(meta.uid()), Some(meta.gid()))
            .map_err(io)?;
    }
    file.as_file()
        .set_permissions(meta.permissions())
        .and_then(|()| file.write_all(new.as_bytes()))
        .and_then(|()| file.as_file().sync_all())
        .map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
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
