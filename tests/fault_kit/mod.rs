//! Kit for the fault suite: real `hashar serve` processes (killed on drop, also when a
//! test panics), a TCP proxy between a server and PostgreSQL that a test can cut, and a
//! mock Infobip that records every send and can answer 500, 429 or late.
//!
//! Everything waits by bounded polling (every 50 ms, with a deadline), never by sleeping a
//! guessed time.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use sqlx::PgPool;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const SECRET: &str = "fault-suite-secret";
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A loopback port nothing listens on (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The test database's (host, port, name), from the `#[sqlx::test]` pool.
pub fn database_of(pool: &PgPool) -> (String, u16, String) {
    let opts = pool.connect_options();
    (
        opts.get_host().to_owned(),
        opts.get_port(),
        opts.get_database()
            .expect("a test database name")
            .to_owned(),
    )
}

pub fn database_url(host: &str, port: u16, db: &str) -> String {
    format!("postgres://postgres@{host}:{port}/{db}")
}

/// One `hashar serve` process. Killed (SIGKILL) when dropped; its log is printed when the
/// test fails.
pub struct Serve {
    child: Option<Child>,
    pub port: u16,
    pub name: String,
    log: PathBuf,
}

/// Settings for a `serve` process: quick leases and polls, no quiet hours, the Infobip
/// client pointed at `provider` (or the console provider).
pub struct ServeOptions {
    pub name: String,
    pub database_url: String,
    pub provider: Option<String>,
    pub env: Vec<(String, String)>,
}

impl ServeOptions {
    pub fn new(name: &str, database_url: String) -> ServeOptions {
        ServeOptions {
            name: name.to_owned(),
            database_url,
            provider: None,
            env: Vec::new(),
        }
    }

    pub fn infobip(mut self, base_url: &str) -> ServeOptions {
        self.provider = Some(base_url.to_owned());
        self
    }

    pub fn set(mut self, key: &str, value: impl ToString) -> ServeOptions {
        self.env.push((key.to_owned(), value.to_string()));
        self
    }
}

impl Serve {
    /// Starts the process and waits (up to 60 s) until `/readyz` answers 200.
    pub async fn start(opts: &ServeOptions) -> Serve {
        let port = free_port();
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!(
            "hashar-faults-{}-{}-{port}",
            std::process::id(),
            opts.name
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = dir.join("serve.log");
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashar"));
        cmd.arg("serve")
            .current_dir(&manifest)
            .env("DATABASE_URL", &opts.database_url)
            .env("HASHAR_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "HASHAR_METRICS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("HASHAR_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("HASHAR_MENUS_DIR", manifest.join("menus"))
            .env("HASHAR_DATA_DIR", dir.join("data"))
            .env("HASHAR_PRIVATE_CLUSTER", "false")
            .env("HASHAR_WEBHOOK_SECRET", SECRET)
            .env("HASHAR_DEFAULT_LANGUAGE", "en")
            // no quiet hours: broadcasts go out whenever the test runs
            .env("HASHAR_QUIET_HOURS", "00:00-00:00")
            .env("HASHAR_SMS_LEASE_SECS", "2")
            .env("HASHAR_SMS_IDLE_POLL_MS", "50")
            .env("HASHAR_SMS_RETRY_BASE_MS", "50")
            .env("HASHAR_BROADCAST_POLL_MS", "100")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        match &opts.provider {
            Some(url) => {
                cmd.env("HASHAR_SMS_PROVIDER", "infobip")
                    .env("HASHAR_INFOBIP_API_KEY", "fault-suite-key")
                    .env("HASHAR_INFOBIP_BASE_URL", url);
            }
            None => {
                cmd.env("HASHAR_SMS_PROVIDER", "console");
            }
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("hashar serve starts");
        let mut serve = Serve {
            child: Some(child),
            port,
            name: opts.name.clone(),
            log,
        };
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", serve.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(status) = serve
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited at start ({status}):\n{}",
                    serve.name,
                    serve.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after 60 s:\n{}",
                serve.name,
                serve.log_text()
            );
            tokio::time::sleep(POLL).await;
        }
        serve
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (through `kill`, to keep `unsafe` and a new crate out of the tests).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit; its exit status, or `None` at the deadline.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "---- last lines of {} ({}):",
                self.name,
                self.log.display()
            );
            for line in tail.iter().rev() {
                let _ = writeln!(err, "{line}");
            }
        }
    }
}

/// Counts the lines of a server's log that contain `needle`.
pub fn log_lines(serve: &Serve, needle: &str) -> usize {
    std::io::BufReader::new(std::fs::File::open(&serve.log).expect("log"))
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(needle))
        .count()
}

// ---------------------------------------------------------------------------------------
// A TCP proxy to PostgreSQL that can be cut.
//
// Written by hand (about 80 lines) because what the test needs is narrow: drop every open
// connection at once and stall new ones until restored; the proxy crates at hand are
// servers or CLI tools, not something a test can switch.

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped at every cut: a connection of an older generation closes.
    generation: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        let task = {
            let (cut, generation, wake) = (cut.clone(), generation.clone(), wake.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let (cut, generation, wake) = (cut.clone(), generation.clone(), wake.clone());
                    tokio::spawn(async move {
                        // While cut, a new connection is accepted and stalls: nothing
                        // answers (like a network that drops packets). Once restored it is
                        // closed, and the client connects again.
                        if cut.load(Ordering::SeqCst) {
                            while cut.load(Ordering::SeqCst) {
                                let notified = wake.notified();
                                if !cut.load(Ordering::SeqCst) {
                                    break;
                                }
                                notified.await;
                            }
                            drop(client);
                            return;
                        }
                        let mine = generation.load(Ordering::SeqCst);
                        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (mut client, mut server) = (client, server);
                        let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                        tokio::pin!(copy);
                        loop {
                            let notified = wake.notified();
                            if generation.load(Ordering::SeqCst) != mine {
                                return; // cut: both sockets dropped
                            }
                            tokio::select! {
                                _ = &mut copy => return,
                                _ = notified => {}
                            }
                        }
                    });
                }
            })
        };
        Proxy {
            port,
            cut,
            generation,
            wake,
            task,
        }
    }

    /// Drops every open connection and stalls new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.wake.notify_waiters();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// A mock Infobip (`POST /sms/3/messages`) that records every request.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    ServerError,
    /// 429 with `Retry-After` in seconds.
    TooMany(u64),
    /// Answers only after the client gave up.
    Late,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub to: String,
    pub outbox_id: String,
    pub at: Instant,
    pub answer: Answer,
}

/// Chooses the answer to the `attempt`-th request (from 1) for a number.
pub type Script = Box<dyn Fn(&str, usize) -> Answer + Send + Sync>;

pub struct Provider {
    pub server: MockServer,
    hits: Arc<Mutex<Vec<Hit>>>,
}

struct Recorder {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Script,
    late_by: Duration,
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let dest = &body["messages"][0]["destinations"][0];
        let to = dest["to"].as_str().unwrap_or_default().to_owned();
        let outbox_id = dest["messageId"].as_str().unwrap_or_default().to_owned();
        let mut hits = self.hits.lock().expect("hits");
        let attempt = hits.iter().filter(|h| h.to == to).count() + 1;
        let answer = (self.script)(&to, attempt);
        hits.push(Hit {
            to: to.clone(),
            outbox_id: outbox_id.clone(),
            at: Instant::now(),
            answer,
        });
        match answer {
            Answer::Accepted => ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "bulkId": "fault-suite",
                "messages": [{
                    "messageId": outbox_id,
                    "destination": to,
                    "status": {"groupId": 1, "groupName": "PENDING", "id": 26,
                               "name": "PENDING_ACCEPTED", "description": "Message sent to next instance"}
                }]
            })),
            Answer::ServerError => ResponseTemplate::new(500).set_body_string("internal error"),
            Answer::TooMany(secs) => ResponseTemplate::new(429)
                .insert_header("Retry-After", secs.to_string().as_str())
                .set_body_string("too many requests"),
            Answer::Late => ResponseTemplate::new(200)
                .set_delay(self.late_by)
                .set_body_string("{}"),
        }
    }
}

impl Provider {
    /// A provider that accepts everything.
    pub async fn start() -> Provider {
        Provider::scripted(Box::new(|_, _| Answer::Accepted), Duration::ZERO).await
    }

    /// A provider that answers as `script` says; `Late` answers come after `late_by`.
    pub async fn scripted(script: Script, late_by: Duration) -> Provider {
        let server = MockServer::builder()
            .listener(std::net::TcpListener::bind("127.0.0.1:0").expect("mock binds"))
            .start()
            .await;
        let hits = Arc::new(Mutex::new(Vec::new()));
        Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/sms/3/messages"))
            .respond_with(Recorder {
                hits: hits.clone(),
                script,
                late_by,
            })
            .mount(&server)
            .await;
        Provider { server, hits }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// Accepted sends per number (the number as Infobip gets it, without `+`).
    pub fn accepted(&self) -> HashMap<String, usize> {
        let mut per = HashMap::new();
        for h in self.hits().iter().filter(|h| h.answer == Answer::Accepted) {
            *per.entry(h.to.clone()).or_insert(0) += 1;
        }
        per
    }

    pub fn accepted_total(&self) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|h| h.answer == Answer::Accepted)
            .count()
    }
}

/// A deterministic random answer per (number, attempt), from `seed`: the same run gives the
/// same answers whatever order the requests come in.
pub fn random_faults(seed: u64, faulty_attempts: usize, retry_after_secs: u64) -> Script {
    Box::new(move |to: &str, attempt: usize| {
        if attempt > faulty_attempts {
            return Answer::Accepted;
        }
        let digits: u64 = to.bytes().fold(0u64, |h, b| {
            h.wrapping_mul(1_000_003).wrapping_add(u64::from(b))
        });
        let mut rng = StdRng::seed_from_u64(seed ^ digits ^ ((attempt as u64) << 56));
        match rng.random_range(0..100u32) {
            0..=19 => Answer::ServerError,
            20..=39 => Answer::TooMany(retry_after_secs),
            40..=49 => Answer::Late,
            _ => Answer::Accepted,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Fixtures written straight to the test database.

/// A community with one open project (code BRIDGE) and `households` households, each with
/// one phone `+99290xxxxxxx`, English-speaking; returns (community id, project id, phones).
pub async fn community_with(pool: &PgPool, households: usize) -> (i64, i64, Vec<String>) {
    let community: i64 = sqlx::query_scalar(
        "insert into communities (code, district, name_tg, name_ru, name_en)
         values ('anzob', 'Ayni', 'Анзоб', 'Анзоб', 'Anzob') returning id",
    )
    .fetch_one(pool)
    .await
    .expect("community");
    let project: i64 = sqlx::query_scalar(
        "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, status)
         values ($1, 'BRIDGE', 'infrastructure', 'Пул', 'Мост', 'Bridge', 1000000, 1, 'open') returning id",
    )
    .bind(community)
    .fetch_one(pool)
    .await
    .expect("project");
    let phones: Vec<String> = (0..households)
        .map(|i| format!("+99290{:07}", 1_000_000 + i))
        .collect();
    sqlx::query(
        "with h as (
             insert into households (community_id, language)
             select $1, 'en' from generate_series(1, $2)
             returning id
         ), numbered as (select id, row_number() over (order by id) as n from h)
         insert into phones (phone, household_id)
         select ($3::text[])[n], id from numbered",
    )
    .bind(community)
    .bind(i32::try_from(households).expect("households"))
    .bind(&phones)
    .execute(pool)
    .await
    .expect("households");
    (community, project, phones)
}

/// An admin token.
pub async fn admin_token(pool: &PgPool) -> String {
    hashar::api::auth::add_coordinator(pool, "Admin", "+992900000301", &[], true)
        .await
        .expect("coordinator")
        .2
}

/// Creates a broadcast draft to one community through a server's API; returns its id.
pub async fn draft_broadcast(serve: &Serve, token: &str, community: i64) -> i64 {
    let (status, body) = api(
        serve,
        "POST",
        "/api/v1/broadcasts",
        token,
        serde_json::json!({
            "communities": [community],
            "texts": {"tg": "Ҷаласа", "ru": "Собрание", "en": "Meeting on Friday"},
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["broadcast"]["id"].as_i64().expect("broadcast id")
}

pub async fn api(
    serve: &Serve,
    method: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", serve.url());
    let req = match method {
        "POST" => http.post(url).json(&body),
        _ => http.get(url),
    };
    let resp = req
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}
