//! `hashar-sms-bench`: load generators for the SMS side of Hashar.
//!
//! Two subcommands:
//!
//! ## `inbound`: inbound texts through a running `hashar serve`
//!
//! N virtual migrants (tokio tasks sharing one keep-alive HTTP client) post Africa's
//! Talking inbound SMS callbacks (`POST /webhooks/africastalking/sms`, form fields `id`,
//! `from`, `to`, `text`, `date`) as fast as the server answers, each waiting for its answer
//! before sending the next text (a closed loop). Before the load starts, each sender gets its
//! own `+7916…` number, linked (via SQL on `--database-url`, the server's database) to a
//! demo household picked round-robin among the households whose community has open
//! projects; run `hashar demo-data` against that database first. Each text is
//!
//! * about 2 %: a deliberate duplicate, i.e. an earlier message of the same sender re-sent
//!   with the same `id` and text (what an aggregator retry looks like); it must be answered
//!   200 and must not be handled a second time;
//! * about 13 %: `TOTAL`;
//! * the rest: `PLEDGE <amount> <CODE>` with CODE an open project of the sender's community
//!   and amount 10..5000 (a quarter with cents, e.g. `250.50`).
//!
//! Every new message has a unique `id` (`smsbench-<run nonce>-<sender>-<counter>`). Latency
//! (request sent → whole answer read) goes into an HDR histogram in microseconds; anything
//! but HTTP 200 is an error. At the end the database is checked: every distinct id that was
//! answered 200 must be stored exactly once in `inbound_messages`, have exactly one reply in
//! `outbox` (`outbox.inbound_id`), and have the outcome `pledge` or `total`. Each id that
//! fails one of these counts as one more error (details on stderr).
//!
//! Timeline as in `hashar-bench`: `--warmup-secs` of load (not measured), then
//! `--duration-secs` measured. `texts` and the percentiles count requests sent after the
//! warm-up (duplicates included); `errors` and `duplicates_sent` count the whole run.
//!
//! ONE JSON line on stdout:
//! `{"senders":64,"duration_s":…,"texts":…,"texts_per_s":…,"p50_ms":…,"p99_ms":…,
//!   "max_ms":…,"errors":…,"duplicates_sent":…,"distinct_ids":…,"server_rss_kib":…,
//!   "server_hwm_kib":…}`
//!
//! ## `outbox`: the dispatcher against a local mock of Africa's Talking
//!
//! Everything runs in this process: a tiny axum app on `127.0.0.1:0` plays Africa's
//! Talking (`POST /version1/messaging` answered 201 with a valid JSON answer and a unique
//! `messageId`, recording when each request arrived and which outbox id its `message`
//! names); `--messages` rows are queued into `outbox` with one SQL statement (status
//! `queued`, provider `africastalking`, gsm7, 1 segment, body `bench-<outbox id> …`), then
//! `--dispatchers` real [`Dispatcher`]s with the real Africa's Talking client pointed at the
//! mock drain the outbox concurrently. Each `Dispatcher` plays a separate server instance:
//! it is configured with the whole `--rate` and coordinates with the others through
//! `dispatcher_instances` heartbeats, as `hashar serve` does (see `src/outbox/rate.rs`), so
//! each ends up with `--rate / --dispatchers` per second (reported as `rate_per_dispatcher`).
//!
//! It uses its own database (default `hashar_smsbench`, created and migrated if missing; its
//! name must contain `bench`) and first empties its `outbox` with `truncate … cascade` (not
//! stopped by the no-delete trigger; `cascade` also empties tables that point at outbox rows,
//! such as broadcast recipients), so it never touches other data.
//!
//! ONE JSON line on stdout:
//! `{"messages":…,"dispatchers":2,"rate_limit":2500,"rate_per_dispatcher":1250,
//!   "seconds":…,"messages_per_s":…,"max_in_any_second":…,"max_pct_of_rate":…,
//!   "over_limit_pct":…,"duplicates":…,"unsent":…,"errors":…,"retried":…,"failed":…}`
//! where `seconds` runs from the first to the last request the mock saw, `messages_per_s`
//! is requests ÷ `seconds`, `max_in_any_second` is the largest number of requests that
//! arrived within any 1-second window `[t, t + 1 s)` (computed exactly from the sorted
//! arrival times), `max_pct_of_rate` is that as a percentage of `--rate` and
//! `over_limit_pct` = `max_pct_of_rate − 100` (negative: under the limit). `duplicates`:
//! requests beyond the first for an outbox id; `unsent`: queued rows that are not `sent`,
//! were never seen by the mock, or do not carry the `messageId` the mock gave them;
//! `errors`: requests the mock could not attribute to a queued row.
//!
//! How to run (only loopback URLs and database hosts are accepted):
//!
//! ```text
//! cargo build --release --bins
//! dropdb -h 127.0.0.1 -U postgres --if-exists --force hashar_bench
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/hashar_bench
//! ./target/release/hashar demo-data
//! HASHAR_LISTEN=127.0.0.1:18080 HASHAR_DISPATCHERS=0 ./target/release/hashar serve &
//! ./target/release/hashar-sms-bench inbound --url http://127.0.0.1:18080 --senders 64 \
//!     --duration-secs 20 --warmup-secs 3 --server-pid $!
//! ./target/release/hashar-sms-bench outbox --messages 40000 --rate 2500 --dispatchers 2
//! ```
//!
//! See docs/PERFORMANCE.md for recorded results.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    str::FromStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

mod common;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use common::{
    is_loopback_host, loopback_endpoint, ms, new_histogram, proc_status_kib, round2, SplitMix64,
    MAX_PRINTED_ERRORS, REQUEST_TIMEOUT,
};
use hashar::{
    channels::{
        africastalking::{self, AfricasTalking},
        Provider, Sender,
    },
    clock::{Clock, SystemClock},
    outbox::{DispatchConfig, Dispatcher, RateShare, Round},
};
use hdrhistogram::Histogram;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Row,
};

#[derive(Debug, Parser)]
#[command(
    name = "hashar-sms-bench",
    about = "Load generators for inbound SMS (against a running hashar server) and the outbox dispatcher (in-process, against a mock)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inbound Africa's Talking texts against a running `hashar serve`.
    Inbound(InboundArgs),
    /// The outbox dispatcher against an in-process mock of Africa's Talking.
    Outbox(OutboxArgs),
}

#[derive(Debug, clap::Args)]
struct InboundArgs {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    url: String,
    /// The server's database, where the senders' numbers are set up and the results checked.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/hashar_bench"
    )]
    database_url: String,
    /// Number of concurrent senders.
    #[arg(long, default_value_t = 64)]
    senders: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// PID of the server, to report its memory (VmRSS, VmHWM) at the end.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seed of the random choices (each sender uses seed + its index).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sender i texts from +7916 followed by (phone_base + i) in 7 digits.
    #[arg(long, default_value_t = 2_000_000)]
    phone_base: u64,
}

#[derive(Debug, clap::Args)]
struct OutboxArgs {
    /// Messages to queue and send.
    #[arg(long, default_value_t = 40_000)]
    messages: u64,
    /// The configured rate limit, messages per second over all dispatchers.
    #[arg(long, default_value_t = 2_500)]
    rate: u32,
    /// Concurrent dispatchers, each as a separate instance given the whole rate (they
    /// share it through their heartbeats).
    #[arg(long, default_value_t = 2)]
    dispatchers: u32,
    /// Rows each dispatcher claims per round.
    #[arg(long, default_value_t = 100)]
    batch: i64,
    /// Database connections shared by the dispatchers (as `hashar serve` shares its pool,
    /// `HASHAR_DB_POOL_SIZE`, default 8).
    #[arg(long, default_value_t = 8)]
    pool_size: u32,
    /// A database of its own: created and migrated if missing; its outbox is truncated.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/hashar_smsbench"
    )]
    database_url: String,
}

/// Outcomes (`inbound_messages.outcome`) the bench's texts must get.
const EXPECTED_OUTCOMES: [&str; 2] = ["pledge", "total"];

/// Parses a database URL and refuses a host that is not loopback (a Unix socket is fine).
fn check_database_url(raw: &str) -> anyhow::Result<PgConnectOptions> {
    let options =
        PgConnectOptions::from_str(raw).context("--database-url is not a PostgreSQL URL")?;
    let host = options.get_host();
    if !(host.starts_with('/') || is_loopback_host(host)) {
        bail!("--database-url: refusing the non-loopback host {host:?}");
    }
    Ok(options)
}

async fn connect(options: PgConnectOptions, size: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connecting to the database")
}

fn nonce() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Inbound(args) => inbound(args).await,
        Command::Outbox(args) => outbox(args).await,
    }
}

// ---------------------------------------------------------------------------------------
// inbound

/// Shared by all senders.
struct Shared {
    client: reqwest::Client,
    endpoint: String,
    /// Makes message ids unique across runs against the same database.
    nonce: String,
    errors: AtomicU64,
}

impl Shared {
    /// Counts an error and prints the first few.
    fn error(&self, from: &str, id: &str, what: &str) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_PRINTED_ERRORS {
            eprintln!("error #{} (from {from}, id {id}): {what}", n + 1);
        }
    }
}

/// One sender's results.
struct Tally {
    hist: Histogram<u64>,
    texts: u64,
    duplicates: u64,
    /// Distinct message ids answered 200.
    answered: Vec<String>,
}

struct SmsSender {
    shared: Arc<Shared>,
    index: u64,
    number: String,
    /// Open project codes of the household's community.
    codes: Vec<String>,
    rng: SplitMix64,
    counter: u64,
    /// Messages answered 200 so far (id, text): the pool duplicates are drawn from.
    sent: Vec<(String, String)>,
}

impl SmsSender {
    /// Posts one text; returns the problem, if any, and the latency.
    async fn post(&self, id: &str, text: &str) -> (Option<String>, Duration) {
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        let form = [
            ("id", id),
            ("from", self.number.as_str()),
            ("to", "4274"),
            ("text", text),
            ("date", date.as_str()),
        ];
        let start = Instant::now();
        let result = async {
            let resp = self
                .shared
                .client
                .post(&self.shared.endpoint)
                .form(&form)
                .send()
                .await?;
            let status = resp.status();
            let body = resp.text().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let latency = start.elapsed();
        let problem = match result {
            Err(e) => Some(format!("request failed: {:#}", anyhow::Error::new(e))),
            Ok((status, body)) if status != reqwest::StatusCode::OK => {
                Some(format!("HTTP {status}: {body:?}"))
            }
            Ok(_) => None,
        };
        (problem, latency)
    }

    /// The next text: a duplicate of an earlier one, `TOTAL`, or a pledge.
    fn next_text(&mut self) -> (String, String, bool) {
        let roll = self.rng.range(1, 100);
        if roll <= 2 && !self.sent.is_empty() {
            let len = self.sent.len() as u64;
            let pick = usize::try_from(self.rng.range(0, len - 1)).unwrap_or(0);
            if let Some((id, text)) = self.sent.get(pick) {
                return (id.clone(), text.clone(), true);
            }
        }
        self.counter += 1;
        let id = format!(
            "smsbench-{}-{}-{}",
            self.shared.nonce, self.index, self.counter
        );
        let text = if roll <= 15 || self.codes.is_empty() {
            "TOTAL".to_owned()
        } else {
            let len = self.codes.len() as u64;
            let pick = usize::try_from(self.rng.range(0, len - 1)).unwrap_or(0);
            let code = self.codes.get(pick).map(String::as_str).unwrap_or("X");
            let whole = self.rng.range(10, 4999);
            let amount = if self.rng.range(1, 4) == 1 {
                format!("{whole}.{:02}", self.rng.range(1, 99))
            } else {
                whole.to_string()
            };
            format!("PLEDGE {amount} {code}")
        };
        (id, text, false)
    }

    async fn run(mut self, measure_from: Instant, until: Instant) -> anyhow::Result<Tally> {
        let mut tally = Tally {
            hist: new_histogram()?,
            texts: 0,
            duplicates: 0,
            answered: Vec::new(),
        };
        while Instant::now() < until {
            let (id, text, duplicate) = self.next_text();
            let sent_at = Instant::now();
            let (problem, latency) = self.post(&id, &text).await;
            if duplicate {
                tally.duplicates += 1;
            }
            if let Some(p) = problem {
                self.shared.error(&self.number, &id, &p);
                // Do not spin if the server is down.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if !duplicate {
                tally.answered.push(id.clone());
                self.sent.push((id, text));
            }
            if sent_at >= measure_from {
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                tally.hist.saturating_record(micros);
                tally.texts += 1;
            }
        }
        Ok(tally)
    }
}

/// Links `number` to a household (when it is not linked yet) and returns the open project
/// codes of the household it is linked to.
async fn set_up_number(pool: &PgPool, number: &str, household: i64) -> anyhow::Result<Vec<String>> {
    sqlx::query(
        "insert into phones (phone, household_id) values ($1, $2) on conflict (phone) do nothing",
    )
    .bind(number)
    .bind(household)
    .execute(pool)
    .await
    .with_context(|| format!("linking {number} to household {household}"))?;
    let codes: Vec<String> = sqlx::query_scalar(
        "select pr.code from phones p
           join households h on h.id = p.household_id
           join projects pr on pr.community_id = h.community_id and pr.status = 'open'
          where p.phone = $1
          order by pr.id",
    )
    .bind(number)
    .fetch_all(pool)
    .await
    .with_context(|| format!("reading the projects of {number}"))?;
    if codes.is_empty() {
        bail!("{number}: its household's community has no open project");
    }
    Ok(codes)
}

/// Checks every answered id in the database; returns the number of problems.
async fn verify_inbound(pool: &PgPool, nonce: &str, answered: &[String]) -> anyhow::Result<u64> {
    let rows = sqlx::query(
        "select i.provider_msg_id, i.outcome, count(o.id) as replies
           from inbound_messages i
           left join outbox o on o.inbound_id = i.id
          where i.provider = 'africastalking' and i.kind = 'sms' and i.provider_msg_id like $1
          group by i.id, i.provider_msg_id, i.outcome",
    )
    .bind(format!("smsbench-{nonce}-%"))
    .fetch_all(pool)
    .await
    .context("reading back the inbound messages")?;
    // id → (times stored, outcome, replies)
    let mut stored: HashMap<String, (u64, Option<String>, i64)> = HashMap::new();
    for row in rows {
        let id: String = row.try_get("provider_msg_id")?;
        let outcome: Option<String> = row.try_get("outcome")?;
        let replies: i64 = row.try_get("replies")?;
        let entry = stored.entry(id).or_insert((0, outcome, 0));
        entry.0 += 1;
        entry.2 += replies;
    }
    let mut problems = 0u64;
    let mut report = |what: String| {
        problems += 1;
        if problems <= MAX_PRINTED_ERRORS {
            eprintln!("check: {what}");
        }
    };
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let expected: HashSet<&str> = answered.iter().map(String::as_str).collect();
    for id in &expected {
        match stored.get(*id) {
            None => report(format!("{id}: answered 200 but not stored")),
            Some((times, outcome, replies)) => {
                let outcome = outcome.clone().unwrap_or_else(|| "(none)".to_owned());
                *outcomes.entry(outcome.clone()).or_default() += 1;
                if *times != 1 {
                    report(format!("{id}: stored {times} times"));
                } else if *replies != 1 {
                    report(format!("{id}: {replies} replies in the outbox"));
                } else if !EXPECTED_OUTCOMES.contains(&outcome.as_str()) {
                    report(format!("{id}: outcome {outcome:?}"));
                }
            }
        }
    }
    let extra = stored
        .keys()
        .filter(|id| !expected.contains(id.as_str()))
        .count();
    let mut outcomes: Vec<_> = outcomes.into_iter().collect();
    outcomes.sort();
    eprintln!(
        "checked {} ids: {problems} problems; outcomes {outcomes:?}; {extra} stored ids were not answered 200",
        expected.len()
    );
    Ok(problems)
}

/// The inbound JSON line (fields in this order).
#[derive(serde::Serialize)]
struct InboundSummary {
    senders: u64,
    duration_s: f64,
    texts: u64,
    texts_per_s: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    errors: u64,
    duplicates_sent: u64,
    distinct_ids: u64,
    server_rss_kib: Option<u64>,
    server_hwm_kib: Option<u64>,
}

async fn inbound(args: InboundArgs) -> anyhow::Result<()> {
    let endpoint = loopback_endpoint(&args.url, "/webhooks/africastalking/sms")?;
    let db = check_database_url(&args.database_url)?;
    if args.senders == 0 || args.duration_secs == 0 {
        bail!("--senders and --duration-secs must be at least 1");
    }
    if args.phone_base + args.senders > 10_000_000 {
        bail!("--phone-base + --senders must stay within 7 digits");
    }
    if let Some(pid) = args.server_pid {
        proc_status_kib(pid, "VmRSS").with_context(|| format!("--server-pid {pid}"))?;
    }
    let senders = usize::try_from(args.senders).context("--senders")?;
    let pool = connect(db, 4).await?;

    // Setup (not measured): one migrant number per sender, households round-robin.
    let households: Vec<i64> = sqlx::query_scalar(
        "select h.id from households h
          where exists (select 1 from projects p where p.community_id = h.community_id and p.status = 'open')
            and exists (select 1 from phones ph where ph.household_id = h.id)
          order by h.id",
    )
    .fetch_all(&pool)
    .await
    .context("reading the households (run `hashar demo-data` on this database first)")?;
    if households.is_empty() {
        bail!("no household with open projects: run `hashar demo-data` on this database first");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        endpoint,
        nonce: nonce(),
        errors: AtomicU64::new(0),
    });
    eprintln!(
        "setting up {} senders over {} households …",
        args.senders,
        households.len()
    );
    let mut ready = Vec::with_capacity(senders);
    for index in 0..args.senders {
        let number = format!("+7916{:07}", args.phone_base + index);
        let slot = usize::try_from(index).unwrap_or(0) % households.len();
        let household = households.get(slot).copied().unwrap_or_default();
        let codes = set_up_number(&pool, &number, household).await?;
        ready.push(SmsSender {
            shared: shared.clone(),
            index,
            number,
            codes,
            rng: SplitMix64(args.seed.wrapping_add(index)),
            counter: 0,
            sent: Vec::new(),
        });
    }

    eprintln!(
        "warming up {} s, then measuring {} s …",
        args.warmup_secs, args.duration_secs
    );
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let until = measure_from + Duration::from_secs(args.duration_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for sender in ready {
        tasks.spawn(sender.run(measure_from, until));
    }
    let mut hist = new_histogram()?;
    let (mut texts, mut duplicates) = (0u64, 0u64);
    let mut answered: Vec<String> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a sender task panicked")??;
        hist.add(&tally.hist).context("merging histograms")?;
        texts += tally.texts;
        duplicates += tally.duplicates;
        answered.extend(tally.answered);
    }
    let measured = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();

    let memory = |field: &str| -> Option<u64> {
        let pid = args.server_pid?;
        match proc_status_kib(pid, field) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("warning: {e:#}");
                None
            }
        }
    };
    let (rss, hwm) = (memory("VmRSS"), memory("VmHWM"));

    eprintln!("checking {} ids in the database …", answered.len());
    let problems = verify_inbound(&pool, &shared.nonce, &answered).await?;
    pool.close().await;

    let quantile = |q: f64| (!hist.is_empty()).then(|| ms(hist.value_at_quantile(q)));
    let result = InboundSummary {
        senders: args.senders,
        duration_s: round2(measured),
        texts,
        texts_per_s: round2(texts as f64 / measured),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        max_ms: (!hist.is_empty()).then(|| ms(hist.max())),
        errors: shared.errors.load(Ordering::Relaxed) + problems,
        duplicates_sent: duplicates,
        distinct_ids: answered.len() as u64,
        server_rss_kib: rss,
        server_hwm_kib: hwm,
    };
    println!(
        "{}",
        serde_json::to_string(&result).context("encoding the result")?
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// outbox

/// What the mock saw: arrival time, the outbox id named in `message` (None: unreadable),
/// and the `messageId` it answered.
struct Seen {
    at: Instant,
    outbox_id: Option<i64>,
    message_id: String,
}

#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    counter: Arc<AtomicU64>,
    nonce: Arc<str>,
}

/// `POST /version1/messaging`: 201 with Africa's Talking's answer for one recipient.
async fn mock_send(
    axum::extract::State(mock): axum::extract::State<Mock>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let at = Instant::now();
    let mut to = None;
    let mut message = None;
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "to" => to = Some(v.into_owned()),
            "message" => message = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(to), Some(message)) = (to, message) else {
        return (axum::http::StatusCode::BAD_REQUEST, "missing to or message").into_response();
    };
    let outbox_id = message
        .strip_prefix("bench-")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|id| id.parse::<i64>().ok());
    let n = mock.counter.fetch_add(1, Ordering::Relaxed);
    let message_id = format!("ATXid_{}_{n}", mock.nonce);
    let answer = serde_json::json!({"SMSMessageData": {
        "Message": "Sent to 1/1 Total Cost: KES 0.8000",
        "Recipients": [{
            "statusCode": 101,
            "number": to,
            "status": "Success",
            "cost": "KES 0.8000",
            "messageId": message_id,
        }]
    }});
    if let Ok(mut seen) = mock.seen.lock() {
        seen.push(Seen {
            at,
            outbox_id,
            message_id,
        });
    }
    (axum::http::StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// The largest number of `sorted` instants within any window `[t, t + 1 s)`.
fn max_in_any_second(sorted: &[Instant]) -> u64 {
    let window = Duration::from_secs(1);
    let mut best = 0usize;
    let mut end = 0usize;
    for (start, &t) in sorted.iter().enumerate() {
        if end < start {
            end = start;
        }
        while end < sorted.len() && sorted[end].saturating_duration_since(t) < window {
            end += 1;
        }
        best = best.max(end - start);
    }
    best as u64
}

/// The outbox JSON line (fields in this order).
#[derive(serde::Serialize)]
struct OutboxSummary {
    messages: u64,
    dispatchers: u32,
    rate_limit: u32,
    rate_per_dispatcher: u32,
    seconds: f64,
    messages_per_s: f64,
    max_in_any_second: u64,
    max_pct_of_rate: f64,
    over_limit_pct: f64,
    duplicates: u64,
    unsent: u64,
    errors: u64,
    retried: u64,
    failed: u64,
}

async fn outbox(args: OutboxArgs) -> anyhow::Result<()> {
    let db = check_database_url(&args.database_url)?;
    if args.messages == 0 || args.dispatchers == 0 || args.batch < 1 {
        bail!("--messages, --dispatchers and --batch must be at least 1");
    }
    let rate = NonZeroU32::new(args.rate).ok_or_else(|| anyhow!("--rate must be at least 1"))?;
    if args.rate < args.dispatchers {
        bail!("--rate must be at least --dispatchers");
    }
    let messages = i64::try_from(args.messages).context("--messages")?;

    // Database: our own, migrated, its outbox emptied.
    let name = db.get_database().unwrap_or_default();
    if !name.contains("bench") {
        bail!("--database-url: the outbox benchmark empties the outbox of its database; refusing {name:?} (its name must contain \"bench\")");
    }
    hashar::provision::ensure_database(&db)
        .await
        .context("creating the benchmark database")?;
    let pool = connect(db, args.pool_size.max(1)).await?;
    hashar::MIGRATOR
        .run(&pool)
        .await
        .context("migrating the benchmark database")?;
    // `cascade`: tables that point at outbox rows (e.g. broadcast recipients) go too; this
    // is why the database must be the benchmark's own.
    sqlx::query("truncate outbox restart identity cascade")
        .execute(&pool)
        .await
        .context("emptying the outbox")?;
    let queued = sqlx::query(
        "insert into outbox (id, phone, body, encoding, segments, provider, kind, status,
                             next_attempt_at, created_at, updated_at)
         overriding system value
         select s.id, '+79160' || lpad((s.id % 1000000)::text, 6, '0'),
                'bench-' || s.id || ' Hashar: thank you, your pledge is recorded.',
                'gsm7', 1, 'africastalking', 'broadcast', 'queued', now(), now(), now()
           from (select nextval(pg_get_serial_sequence('outbox', 'id')) as id
                   from generate_series(1, $1)) s",
    )
    .bind(messages)
    .execute(&pool)
    .await
    .context("queueing the messages")?
    .rows_affected();
    sqlx::query("analyze outbox")
        .execute(&pool)
        .await
        .context("analyzing the outbox")?;
    let queued_ids: HashSet<i64> = sqlx::query_scalar("select id from outbox")
        .fetch_all(&pool)
        .await
        .context("reading the queued ids")?
        .into_iter()
        .collect();
    eprintln!("queued {queued} messages");

    // The mock provider.
    let mock = Mock {
        seen: Arc::new(Mutex::new(Vec::with_capacity(queued_ids.len()))),
        counter: Arc::new(AtomicU64::new(0)),
        nonce: Arc::from(nonce().as_str()),
    };
    let app = axum::Router::new()
        .route("/version1/messaging", axum::routing::post(mock_send))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .context("binding the mock")?;
    let mock_addr = listener.local_addr().context("the mock's address")?;
    let mock_server = tokio::spawn(async move { axum::serve(listener, app).await });

    // The dispatchers, with the real Africa's Talking client.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;
    let sender = Arc::new(Sender::AfricasTalking(africastalking::Client::new(
        africastalking::Settings {
            username: "sandbox".into(),
            api_key: "bench-key".into(),
            sender: None,
            base_url: format!("http://{mock_addr}"),
        },
        http,
    )));
    let config = DispatchConfig {
        rate_per_sec: rate,
        batch: args.batch,
        ..DispatchConfig::default()
    };
    // One coordinated share per dispatcher, as if each were its own server instance: two
    // heartbeats each, so every one has seen all the others before sending.
    sqlx::query("truncate dispatcher_instances")
        .execute(&pool)
        .await
        .context("emptying dispatcher_instances")?;
    let shares: Vec<Arc<RateShare>> = (0..args.dispatchers)
        .map(|_| RateShare::coordinated(pool.clone(), AfricasTalking::NAME, rate))
        .collect();
    for _ in 0..2 {
        for share in &shares {
            share
                .heartbeat(SystemClock.now())
                .await
                .context("heartbeat")?;
        }
    }
    let per_dispatcher = shares[0].rate();
    let beats: Vec<_> = shares
        .iter()
        .map(|share| {
            let share = share.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(hashar::outbox::HEARTBEAT).await;
                    let _ = share.heartbeat(SystemClock.now()).await;
                }
            })
        })
        .collect();
    eprintln!(
        "draining with {} dispatchers at {} messages/s each (mock at {mock_addr}) …",
        args.dispatchers, per_dispatcher
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for share in &shares {
        let dispatcher = Dispatcher::sharing(
            pool.clone(),
            sender.clone(),
            Arc::new(SystemClock),
            config.clone(),
            share.clone(),
        );
        tasks.spawn(async move { dispatcher.drain().await });
    }
    let mut total = Round::default();
    while let Some(joined) = tasks.join_next().await {
        let round = joined
            .context("a dispatcher task panicked")?
            .context("a dispatcher failed")?;
        total.sent += round.sent;
        total.retried += round.retried;
        total.failed += round.failed;
    }
    eprintln!(
        "drained in {:.2} s: {} sent, {} retried, {} failed",
        started.elapsed().as_secs_f64(),
        total.sent,
        total.retried,
        total.failed
    );
    mock_server.abort();
    for beat in beats {
        beat.abort();
    }
    for share in &shares {
        share
            .leave()
            .await
            .context("leaving dispatcher_instances")?;
    }

    // What the mock saw.
    let seen = {
        let mut guard = mock
            .seen
            .lock()
            .map_err(|_| anyhow!("the mock's record is poisoned"))?;
        std::mem::take(&mut *guard)
    };
    let mut times: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    times.sort();
    let seconds = match (times.first(), times.last()) {
        (Some(first), Some(last)) => last.saturating_duration_since(*first).as_secs_f64(),
        _ => 0.0,
    };
    let max_second = max_in_any_second(&times);
    if let Some(first) = times.first() {
        // Requests per whole second since the first, for the record (stderr).
        let mut per_second: Vec<u64> = Vec::new();
        for t in &times {
            let slot = usize::try_from(t.saturating_duration_since(*first).as_secs()).unwrap_or(0);
            if per_second.len() <= slot {
                per_second.resize(slot + 1, 0);
            }
            if let Some(n) = per_second.get_mut(slot) {
                *n += 1;
            }
        }
        eprintln!("requests per second since the first: {per_second:?}");
    }
    let mut answered: HashMap<i64, String> = HashMap::new();
    let (mut duplicates, mut errors) = (0u64, 0u64);
    for s in &seen {
        match s.outbox_id.filter(|id| queued_ids.contains(id)) {
            None => errors += 1,
            Some(id) => {
                if answered.insert(id, s.message_id.clone()).is_some() {
                    duplicates += 1;
                }
            }
        }
    }
    // Every queued row: sent, seen by the mock, carrying the messageId it answered.
    let rows = sqlx::query("select id, status, provider_msg_id from outbox")
        .fetch_all(&pool)
        .await
        .context("reading back the outbox")?;
    let mut unsent = 0u64;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let provider_msg_id: Option<String> = row.try_get("provider_msg_id")?;
        let ok = status == "sent"
            && answered
                .get(&id)
                .is_some_and(|m| provider_msg_id.as_deref() == Some(m.as_str()));
        if !ok {
            unsent += 1;
            if unsent <= MAX_PRINTED_ERRORS {
                eprintln!("check: outbox {id}: status {status}, provider_msg_id {provider_msg_id:?}, mock answered {:?}", answered.get(&id));
            }
        }
    }
    pool.close().await;

    let rate = f64::from(args.rate);
    let pct = max_second as f64 / rate * 100.0;
    let result = OutboxSummary {
        messages: seen.len() as u64,
        dispatchers: args.dispatchers,
        rate_limit: args.rate,
        rate_per_dispatcher: per_dispatcher.get(),
        seconds: (seconds * 1000.0).round() / 1000.0,
        messages_per_s: round2(if seconds > 0.0 {
            seen.len() as f64 / seconds
        } else {
            0.0
        }),
        max_in_any_second: max_second,
        max_pct_of_rate: round2(pct),
        over_limit_pct: round2(pct - 100.0),
        duplicates,
        unsent,
        errors,
        retried: total.retried as u64,
        failed: total.failed as u64,
    };
    println!(
        "{}",
        serde_json::to_string(&result).context("encoding the result")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_counts_exactly() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // [0, 1000) holds 3; [999, 1999) holds 4 (999, 1000, 1500, 1600); an arrival exactly
        // 1 s after the window's start is outside it.
        let times = [at(0), at(10), at(999), at(1000), at(1500), at(1600)];
        assert_eq!(max_in_any_second(&times), 4);
        assert_eq!(max_in_any_second(&[at(0), at(1000), at(2000)]), 1);
        assert_eq!(max_in_any_second(&[]), 0);
    }
}
