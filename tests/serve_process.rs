//! The real `hashar serve` process: its Prometheus metrics on their own listener, and a
//! graceful stop on SIGTERM (the listener closes, the hop in flight is answered, the process
//! exits within 10 s).

mod common;

use std::{
    net::TcpListener as StdTcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use sqlx::PgPool;

const POLL: Duration = Duration::from_millis(50);

fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `hashar serve` child, killed when dropped (also when the test panics).
struct Server {
    child: Child,
    base: String,
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `hashar serve` on the test's own database and waits until it answers.
    async fn start(pool: &PgPool) -> Server {
        let db = pool
            .connect_options()
            .get_database()
            .expect("the test database has a name")
            .to_owned();
        let (port, metrics_port) = (free_port(), free_port());
        let data_dir = std::env::temp_dir().join(format!("hashar-serve-test-{port}"));
        let child = Command::new(env!("CARGO_BIN_EXE_hashar"))
            .arg("serve")
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{db}"),
            )
            .env("HASHAR_LISTEN", format!("127.0.0.1:{port}"))
            .env("HASHAR_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env(
                "HASHAR_MENUS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("menus"),
            )
            .env("HASHAR_DATA_DIR", data_dir)
            .env("HASHAR_PRIVATE_CLUSTER", "false")
            // The stop test holds a hop on a lock; it must not be answered "busy" meanwhile.
            .env("HASHAR_DB_TIMEOUT_MS", "30000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start hashar serve");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", server.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "hashar serve did not get ready in 30 s"
            );
            tokio::time::sleep(POLL).await;
        }
        server
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }
}

async fn hop(http: &reqwest::Client, base: &str, session: &str, phone: &str, text: &str) -> String {
    http.post(format!("{base}/webhooks/africastalking/ussd"))
        .form(&[
            ("sessionId", session),
            ("serviceCode", "*384*4274#"),
            ("phoneNumber", phone),
            ("networkCode", "43604"),
            ("text", text),
        ])
        .send()
        .await
        .expect("hop answered")
        .text()
        .await
        .expect("hop body")
}

/// The value of one sample line (`name{labels} value`) in Prometheus' text format.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn metrics_are_served_on_their_own_listener(pool: PgPool) {
    seed(&pool).await;
    let server = Server::start(&pool).await;
    let http = reqwest::Client::new();

    let screen = hop(&http, &server.base, "m1", PHONE_EN, "").await;
    assert!(screen.starts_with("CON "), "{screen}");
    let sms = http
        .post(format!("{}/webhooks/africastalking/sms", server.base))
        .form(&[
            ("id", "m-sms-1"),
            ("from", PHONE_EN),
            ("to", "4274"),
            ("text", "HELP"),
        ])
        .send()
        .await
        .expect("sms answered");
    assert_eq!(sms.status(), 200);

    let text = http
        .get(&server.metrics)
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics body");
    assert_eq!(
        sample(&text, "hashar_ussd_hops_total{outcome=\"continue\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hashar_ussd_hop_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("hashar_ussd_hop_seconds_bucket{le=\"0.005\"}"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "hashar_inbound_sms_total{provider=\"africastalking\",outcome=\"handled\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // sampled from the database at start
    assert!(
        sample(&text, "hashar_outbox_messages{status=\"queued\"}").is_some(),
        "{text}"
    );
    assert!(
        sample(&text, "hashar_outbox_oldest_queued_seconds").is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hashar_db_pool_max_connections"),
        Some(8.0),
        "{text}"
    );
    // no phone number, nor any text, in any label
    assert!(!text.contains("+992"), "{text}");

    // the public listener does not serve them
    let public = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("public answer");
    assert_eq!(public.status(), 404);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn sigterm_answers_the_hop_in_flight_and_exits_within_ten_seconds(pool: PgPool) {
    seed(&pool).await;
    let mut server = Server::start(&pool).await;
    let http = reqwest::Client::new();

    // Hold a hop in flight: its first read (who calls: the number is not in the hop cache
    // yet) waits on a lock the test holds.
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query("lock table phones in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let in_flight = {
        let http = http.clone();
        let base = server.base.clone();
        tokio::spawn(async move { hop(&http, &base, "term", PHONE_EN, "").await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hop never reached the database"
        );
        tokio::time::sleep(POLL).await;
    }

    server.terminate();
    let signalled = Instant::now();
    // The listener closes: a new connection is refused (or reset) from now on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::new();
        if fresh
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
        {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(POLL).await;
    }
    // The hop in flight still gets its screen once the database answers.
    locker.rollback().await.expect("unlock");
    let screen = in_flight.await.expect("hop task");
    assert!(screen.starts_with("CON "), "{screen}");

    let status = loop {
        if let Some(status) = server.child.try_wait().expect("child status") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "hashar serve still running 10 s after SIGTERM"
        );
        tokio::time::sleep(POLL).await;
    };
    assert!(status.success(), "{status}");
}

/// The lines `hashar serve` logs (on stdout) until it says it is listening, with
/// `HASHAR_HOTLINE` as given (`None`: unset); the process is killed afterwards.
fn start_log(pool: &PgPool, hotline: Option<&str>) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let db = pool
        .connect_options()
        .get_database()
        .expect("the test database has a name")
        .to_owned();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashar"));
    cmd.arg("serve")
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        )
        .env("HASHAR_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "HASHAR_MENUS_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("menus"),
        )
        .env(
            "HASHAR_DATA_DIR",
            std::env::temp_dir().join(format!("hashar-serve-test-{port}")),
        )
        .env("HASHAR_METRICS_LISTEN", "off")
        .env("HASHAR_PRIVATE_CLUSTER", "false")
        .env("RUST_LOG", "info,sqlx=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match hotline {
        Some(h) => cmd.env("HASHAR_HOTLINE", h),
        None => cmd.env_remove("HASHAR_HOTLINE"),
    };
    let mut child = cmd.spawn().expect("start hashar serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let listening = line.contains("hashar listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("hashar listening")),
        "hashar serve did not start in 30 s: {lines:#?}"
    );
    lines
}

/// Issue 11 point 7: without `HASHAR_HOTLINE` the safe-migration screens leave the hotline
/// out, and `serve` says so at start, as a warning; with it, no such warning.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn serve_warns_at_start_when_the_hotline_is_not_set(pool: PgPool) {
    let unset = start_log(&pool, None);
    let warning: Vec<&String> = unset
        .iter()
        .filter(|l| l.contains("HASHAR_HOTLINE is not set"))
        .collect();
    assert_eq!(warning.len(), 1, "{unset:#?}");
    assert!(warning[0].contains("WARN"), "{}", warning[0]);
    let set = start_log(&pool, Some("+992 44 600 00 00"));
    assert!(
        !set.iter().any(|l| l.contains("HASHAR_HOTLINE")),
        "{set:#?}"
    );
}
