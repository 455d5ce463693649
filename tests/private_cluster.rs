//! The zero-configuration fallback: with PostgreSQL's server binaries installed, Hashar can
//! start its own cluster in a folder, create its database there and migrate it. The
//! cluster asks for a generated password, kept in a file only its owner may read; one made
//! by an earlier version (trust authentication) is switched to a password at its next start.
//!
//! Each test has its own folder and port (they may run at once); the folder's cluster is
//! stopped and the folder removed when the test ends, passed or failed.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::PathBuf,
    process::Command,
    str::FromStr,
};

use hashar::provision::{self as db, DbError};
use secrecy::ExposeSecret;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("addr").port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server program: on PATH, or the newest under /usr/lib/postgresql.
fn pg_bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop().expect("PostgreSQL server binaries")
    })
}

/// `name`, run as `postgres` when we are root (as the library does).
fn pg_command(name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(name));
        c
    } else {
        Command::new(pg_bin(name))
    }
}

/// One test's folder: the cluster in `<root>/pgdata`, its password in
/// `<root>/pgdata.password`. Dropping it stops the cluster and removes the folder.
struct Place {
    root: PathBuf,
    dir: PathBuf,
}

impl Place {
    fn new(name: &str) -> Self {
        assert!(
            db::server_binaries_installed(),
            "PostgreSQL's server binaries (initdb, pg_ctl) are needed for this test"
        );
        let root = std::env::temp_dir().join(format!(
            "hashar-private-cluster-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("folder");
        // postgres (as root) goes through it to its data directory
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self {
            dir: root.join("pgdata"),
            root,
        }
    }

    fn password_file(&self) -> PathBuf {
        self.root.join("pgdata.password")
    }

    /// A cluster made the way earlier versions did: everyone local trusted.
    fn init_trusting(&self) {
        std::fs::create_dir_all(&self.dir).expect("data directory");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.dir)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown");
        }
        let out = pg_command("initdb")
            .arg("-D")
            .arg(&self.dir)
            .args(["-U", "postgres", "--auth=trust"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts it the way earlier versions did (the socket open to all).
    fn start_old_way(&self, port: u16) {
        let out = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                self.dir.display()
            ))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_hba(&self) -> String {
        std::fs::read_to_string(self.dir.join("pg_hba.conf")).expect("pg_hba.conf")
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.dir.join("postmaster.pid").exists() {
            let _ = pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.dir)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn options(port: u16, database: &str, password: Option<&str>) -> PgConnectOptions {
    let options =
        PgConnectOptions::from_str(&format!("postgres://postgres@127.0.0.1:{port}/{database}"))
            .expect("url");
    match password {
        Some(p) => options.password(p),
        // Explicitly none, whatever PGPASSWORD says.
        None => options.password(""),
    }
}

/// A connection without the password is refused by authentication.
async fn assert_refused_without_password(port: u16) {
    let err = options(port, "postgres", None)
        .connect()
        .await
        .expect_err("a connection without the password is refused");
    assert!(
        matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01")),
        "refused by password authentication, not {err:?}"
    );
}

async fn assert_connects_with(port: u16, password: &str) {
    let mut conn = options(port, "postgres", Some(password))
        .connect()
        .await
        .expect("connects with the password");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    conn.close().await.ok();
}

fn assert_private_and_mine(place: &Place, password: &str) {
    let meta = std::fs::metadata(place.password_file()).expect("password file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "mode 0600");
    let root = std::fs::metadata(&place.root).expect("folder");
    assert_eq!(
        meta.uid(),
        root.uid(),
        "the invoking user's, not postgres's"
    );
    let stored = std::fs::read_to_string(place.password_file()).expect("read");
    assert_eq!(stored.trim_end(), password);
}

fn assert_no_trust(pg_hba: &str) {
    let trusting: Vec<&str> = pg_hba
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter(|l| l.split_whitespace().any(|t| t == "trust"))
        .collect();
    assert!(trusting.is_empty(), "lines still trusting: {trusting:?}");
    assert!(pg_hba.contains("scram-sha-256"));
}

#[tokio::test]
async fn a_private_cluster_starts_creates_the_database_and_stops() {
    let place = Place::new("fresh");
    let port = free_port();
    let password = db::start_private_cluster(&place.dir, port)
        .await
        .expect("cluster starts");
    let pw = password.expose_secret().to_owned();
    assert_eq!(pw.len(), 32);
    assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        db::private_cluster_password_file(&place.dir),
        Some(place.password_file())
    );
    assert_private_and_mine(&place, &pw);
    // no copy given to initdb is left behind
    let mut names: Vec<String> = std::fs::read_dir(&place.root)
        .expect("folder")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(names, ["pgdata", "pgdata.password"]);
    // the socket is for the server's user only
    let socket = std::fs::metadata(place.dir.join(format!(".s.PGSQL.{port}"))).expect("socket");
    assert_eq!(socket.permissions().mode() & 0o777, 0o700);
    assert_no_trust(&place.pg_hba());

    // starting it again while it runs is fine, and gives the same password
    let again = db::start_private_cluster(&place.dir, port)
        .await
        .expect("second start is a no-op");
    assert_eq!(again.expose_secret(), pw);

    assert_refused_without_password(port).await;
    assert_connects_with(port, &pw).await;

    let options = options(port, "hashar_private", Some(&pw));
    db::ensure_database(&options)
        .await
        .expect("database created");
    db::ensure_database(&options)
        .await
        .expect("and found the second time");
    let pool = sqlx::PgPool::connect_with(options.clone())
        .await
        .expect("connects");
    hashar::MIGRATOR.run(&pool).await.expect("migrates");
    assert!(db::migrations_applied(&pool).await.expect("query"));
    pool.close().await;
    let mut conn = options.connect().await.expect("connects");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    conn.close().await.ok();
    assert!(!place.server_log().contains(&pw));
    db::stop_private_cluster(&place.dir)
        .await
        .expect("cluster stops");

    // started again after a stop: the same password, still required
    let third = db::start_private_cluster(&place.dir, port)
        .await
        .expect("starts again");
    assert_eq!(third.expose_secret(), pw);
    assert_refused_without_password(port).await;
    assert_connects_with(port, &pw).await;
    db::stop_private_cluster(&place.dir)
        .await
        .expect("cluster stops");
}

#[tokio::test]
async fn a_trusting_cluster_of_an_earlier_version_is_switched_to_a_password() {
    let place = Place::new("upgrade");
    let port = free_port();
    place.init_trusting();
    assert!(place.pg_hba().contains("trust"));
    assert!(!place.password_file().exists());

    let password = db::start_private_cluster(&place.dir, port)
        .await
        .expect("cluster starts and switches");
    let pw = password.expose_secret().to_owned();
    assert_private_and_mine(&place, &pw);
    assert_no_trust(&place.pg_hba());
    assert_refused_without_password(port).await;
    assert_connects_with(port, &pw).await;
    assert!(
        !place.server_log().contains(&pw),
        "the password is not in the server's log"
    );

    // the next start changes nothing
    let again = db::start_private_cluster(&place.dir, port)
        .await
        .expect("second start");
    assert_eq!(again.expose_secret(), pw);
    assert_refused_without_password(port).await;
    db::stop_private_cluster(&place.dir)
        .await
        .expect("cluster stops");
}

#[tokio::test]
async fn a_switch_interrupted_after_storing_the_password_is_finished_at_the_next_start() {
    let place = Place::new("interrupted");
    let port = free_port();
    place.init_trusting();
    // left running by the earlier version
    place.start_old_way(port);
    let trusted = options(port, "postgres", None)
        .connect()
        .await
        .expect("trusted while nothing was switched");
    trusted.close().await.ok();
    // What a process that died right after storing the password leaves: the file, and a
    // cluster still trusting everyone.
    let stored = "Interrupted0Switch0Password0123x";
    std::fs::write(place.password_file(), format!("{stored}\n")).expect("write");
    std::fs::set_permissions(
        place.password_file(),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    let password = db::start_private_cluster(&place.dir, port)
        .await
        .expect("cluster starts and finishes the switch");
    assert_eq!(
        password.expose_secret(),
        stored,
        "the stored password is kept"
    );
    assert_no_trust(&place.pg_hba());
    assert_refused_without_password(port).await;
    assert_connects_with(port, stored).await;
    db::stop_private_cluster(&place.dir)
        .await
        .expect("cluster stops");
}

#[tokio::test]
async fn a_password_file_others_may_read_is_refused() {
    let place = Place::new("exposed");
    let port = free_port();
    let stored = "Exposed0Password0Others0Can0Read";
    std::fs::write(place.password_file(), format!("{stored}\n")).expect("write");
    std::fs::set_permissions(
        place.password_file(),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");

    let err = db::start_private_cluster(&place.dir, port)
        .await
        .expect_err("refused");
    let DbError::Cluster(message) = &err else {
        panic!("a cluster error, not {err:?}");
    };
    assert!(
        message.contains(&place.password_file().display().to_string()),
        "names the file: {message}"
    );
    assert!(message.contains("chmod 600"), "says what to do: {message}");
    assert!(!message.contains(stored), "never shows the password");
    assert!(
        !place.dir.join("PG_VERSION").exists(),
        "no cluster is made with it"
    );
    // the file is left as it was, for its owner to decide
    let mode = std::fs::metadata(place.password_file())
        .expect("still there")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // a file that does not hold a password of the expected form is refused as well
    std::fs::write(place.password_file(), "short\n").expect("write");
    std::fs::set_permissions(
        place.password_file(),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let err = db::start_private_cluster(&place.dir, port)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, DbError::Cluster(m) if m.contains("letters and digits") && !m.contains("short\n"))
    );
    assert!(!place.dir.join("PG_VERSION").exists());
}
