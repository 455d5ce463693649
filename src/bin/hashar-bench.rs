//! `hashar-bench`: a load generator for the USSD webhook of a running `hashar serve`.
//!
//! What it measures: N virtual feature phones (tokio tasks sharing one keep-alive HTTP
//! client) dial the Africa's Talking USSD callback (`POST /webhooks/africastalking/ussd`)
//! as fast as the server answers, one hop at a time, each waiting for its answer before the
//! next hop (a closed loop; `--rate` paces it instead, see below). Each phone runs
//! sessions back to back:
//!
//! * 80 % pledge sessions: `""` (main menu) → `1` (projects) → `1*P` (amount prompt) →
//!   `1*P*AMOUNT` (confirm) → `1*P*AMOUNT*1` (`END` "Bridge: pledged 250 TJS. Code …"), where P is
//!   project 1 or 2 and AMOUNT is 10..5000, sometimes with cents (e.g. `250.50`; never a
//!   bare `99`, which the menus take as the "more" key). When the same household pledged
//!   the same amount to the same project in the last 10 minutes, the confirm hop answers
//!   `CON` "pledge again?" instead; the phone then answers `1` (yes) once more, as a
//!   caller who meant it would, and that hop must end the session;
//! * 20 % total sessions: `""` → `2` → `2*P` (the project's totals).
//!
//! Every hop's latency (request sent → whole body read) goes into an HDR histogram in
//! microseconds. Every answer is checked: HTTP 200, body `CON …` on every hop but the last
//! of a pledge session, which must be `END …` (for English callers `END …: pledged …`, so
//! a "service busy" `END` counts as an error). Anything else is an error; the first few
//! error bodies are printed to stderr, the session is abandoned and the phone starts a new
//! one.
//!
//! Timeline: first every phone makes sure it is registered (walking the language and
//! village screens if the server does not know it yet; not measured). Then all phones run
//! sessions for `--warmup-secs` (not measured) followed by `--duration-secs` (measured):
//! `hops`, `sessions` and the latency percentiles count only hops sent, and sessions
//! started, after the warm-up. `errors` counts errors over warm-up and measurement alike.
//! Rates are divided by the measured wall time (which ends when the last phone has finished
//! the session it was in when time ran out, so it is a little more than `--duration-secs`).
//!
//! Phone numbers are `+99293` followed by 7 digits, `--phone-base` + the phone's index, so
//! repeated runs against the same database reuse the same (already registered) callers.
//! Each session gets a new unique `sessionId` (run nonce + phone + counter). Random choices
//! come from a splitmix64 generator seeded with `--seed` + the phone's index, so two runs
//! with the same seed make the same choices.
//!
//! The result is ONE JSON line on stdout:
//! `{"phones":64,"duration_s":20.0,"sessions":…,"sessions_per_s":…,"hops":…,"hops_per_s":…,
//!   "p50_ms":…,"p99_ms":…,"max_ms":…,"errors":…,"server_rss_kib":…,"server_hwm_kib":…,
//!   "paced_rate":…}`
//! where the server_* fields are VmRSS and VmHWM from `/proc/PID/status` of `--server-pid`
//! at the end of the run (null without `--server-pid`), and `paced_rate` is `--rate`.
//!
//! With `--rate R` the load is paced (open loop) instead: all phones together send R hops a
//! second, each phone one hop every phones ÷ R seconds on a fixed schedule, and a hop's
//! latency runs from when it was due, not from when it could be sent — a phone still
//! waiting for its previous answer sends late, and that lateness counts (the correction
//! for "coordinated omission" that wrk2 and HdrHistogram's authors describe). This answers
//! "what latency do callers see at R hops a second"; the closed loop answers "how many
//! hops a second at most". (tokio's timer has millisecond resolution, so a hop may leave up
//! to about 1 ms after it was due; that is counted against the server too.)
//!
//! How to run (only loopback URLs are accepted: 127.0.0.1, localhost or [::1]):
//!
//! ```text
//! cargo build --release --bins
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/hashar_bench ./target/release/hashar demo-data
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/hashar_bench HASHAR_LISTEN=127.0.0.1:18080 \
//!     ./target/release/hashar serve &
//! cargo run --release --bin hashar-bench -- --url http://127.0.0.1:18080 \
//!     --phones 64 --duration-secs 20 --warmup-secs 3 --server-pid $!
//! ```
//!
//! See docs/PERFORMANCE.md for recorded results.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

mod common;

use anyhow::{bail, Context};
use clap::Parser;
use common::{
    loopback_endpoint, ms, new_histogram, proc_status_kib, round2, SplitMix64, MAX_PRINTED_ERRORS,
    REQUEST_TIMEOUT,
};
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
#[command(
    name = "hashar-bench",
    about = "Load generator for the USSD webhook of a running hashar server"
)]
struct Args {
    /// Base URL of the running server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Number of concurrent virtual phones.
    #[arg(long, default_value_t = 64)]
    phones: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// PID of the server, to report its memory (VmRSS, VmHWM) at the end.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seed of the random choices (each phone uses seed + its index).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Phone i is +99293 followed by (phone_base + i) in 7 digits.
    #[arg(long, default_value_t = 1_000_000)]
    phone_base: u64,
    /// Paced (open loop) instead of as fast as the server answers: all phones together
    /// send this many hops a second, each phone one hop every phones ÷ rate seconds on a
    /// fixed schedule; a hop's latency is counted from its scheduled time, so a server that
    /// falls behind is charged for the wait (no coordinated omission).
    #[arg(long)]
    rate: Option<f64>,
}

/// The English main-menu title, and its Russian and Tajik counterparts.
const MAIN_TITLES: [&str; 3] = ["Hashar", "Хашар", "Ҳашар"];
/// Title of the language screen (the same in every language).
const LANGUAGE_TITLE: &str = "Забон / Язык / Language";
/// Titles of the village list, en / ru / tg.
const VILLAGE_TITLES: [&str; 3] = [
    "Welcome to Hashar. Choose your village:",
    "Хашар. Выберите ваше село:",
    "Ҳашар. Деҳаро интихоб кунед:",
];

/// Shared by all phones.
struct Shared {
    client: reqwest::Client,
    endpoint: String,
    /// Makes session ids unique across runs against the same database.
    nonce: String,
    errors: AtomicU64,
}

impl Shared {
    /// Counts an error and prints the first few.
    fn error(&self, phone: &str, text: &str, what: &str) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < MAX_PRINTED_ERRORS {
            eprintln!("error #{} (phone {phone}, text {text:?}): {what}", n + 1);
        }
    }
}

/// One virtual phone's results.
struct Tally {
    hist: Histogram<u64>,
    hops: u64,
    sessions: u64,
}

/// A well-formed answer: the screen after `CON ` or `END `.
enum Answer {
    Con(String),
    End(String),
}

struct Phone {
    shared: Arc<Shared>,
    index: u64,
    number: String,
    rng: SplitMix64,
    session_no: u64,
    /// With `--rate`: this phone's time between hops, and when its next hop is due.
    pace: Option<(Duration, Instant)>,
}

impl Phone {
    fn new_session_id(&mut self) -> String {
        self.session_no += 1;
        format!(
            "bench-{}-{}-{}",
            self.shared.nonce, self.index, self.session_no
        )
    }

    /// Sends one hop; returns the answer and its latency. HTTP errors, non-200 statuses and
    /// bodies that are neither `CON` nor `END` are returned as `Err(description)`.
    async fn hop(&self, session_id: &str, text: &str) -> (Result<Answer, String>, Duration) {
        let form = [
            ("sessionId", session_id),
            ("serviceCode", "*384*4274#"),
            ("phoneNumber", self.number.as_str()),
            ("networkCode", "43604"),
            ("text", text),
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
        let answer = match result {
            Err(e) => Err(format!("request failed: {:#}", anyhow::Error::new(e))),
            Ok((status, body)) if status != reqwest::StatusCode::OK => {
                Err(format!("HTTP {status}: {body:?}"))
            }
            Ok((_, body)) => {
                if let Some(screen) = body.strip_prefix("CON ") {
                    Ok(Answer::Con(screen.to_owned()))
                } else if let Some(screen) = body.strip_prefix("END ") {
                    Ok(Answer::End(screen.to_owned()))
                } else {
                    Err(format!("neither CON nor END: {body:?}"))
                }
            }
        };
        (answer, latency)
    }

    /// A hop during registration: must be a `CON` screen.
    async fn setup_hop(&self, session_id: &str, text: &str) -> anyhow::Result<String> {
        match self.hop(session_id, text).await.0 {
            Ok(Answer::Con(screen)) => Ok(screen),
            Ok(Answer::End(screen)) => bail!(
                "phone {}: text {text:?} ended the session: {screen:?}",
                self.number
            ),
            Err(e) => bail!("phone {}: text {text:?}: {e}", self.number),
        }
    }

    /// Makes sure the server knows this phone: walks the language screen (English) and the
    /// village list (one of the first page's, by `index`) when it shows them. Returns whether the main
    /// menu is the English one.
    async fn register(&mut self) -> anyhow::Result<bool> {
        let session_id = self.new_session_id();
        let mut inputs: Vec<String> = Vec::new();
        let mut screen = self.setup_hop(&session_id, "").await?;
        if screen.starts_with(LANGUAGE_TITLE) {
            inputs.push("3".into()); // English
            screen = self.setup_hop(&session_id, &inputs.join("*")).await?;
        }
        if VILLAGE_TITLES.iter().any(|t| screen.starts_with(t)) {
            // One of the villages on the first page of the list (its numbered lines, not
            // "99 More" or "0 Back"), spread over them by the phone's index.
            let on_page = screen
                .lines()
                .filter_map(|l| l.split_once(' ')?.0.parse::<usize>().ok())
                .filter(|n| (1..99).contains(n))
                .count();
            if on_page == 0 {
                bail!("phone {}: no village on the list: {screen:?}", self.number);
            }
            let village = self.index % on_page as u64 + 1;
            inputs.push(village.to_string());
            let confirm = self.setup_hop(&session_id, &inputs.join("*")).await?;
            if !confirm.lines().any(|l| l.starts_with("1 ")) {
                bail!(
                    "phone {}: unexpected registration prompt: {confirm:?}",
                    self.number
                );
            }
            inputs.push("1".into()); // Yes
            screen = self.setup_hop(&session_id, &inputs.join("*")).await?;
        }
        let title = screen.lines().next().unwrap_or_default();
        if !MAIN_TITLES.contains(&title) {
            bail!(
                "phone {}: expected the main menu, got {screen:?}",
                self.number
            );
        }
        Ok(title == MAIN_TITLES[0])
    }

    /// Runs one session hop by hop. Latencies of hops sent at or after `measure_from` are
    /// recorded. Returns whether the session went as expected.
    async fn session(&mut self, english: bool, measure_from: Instant, tally: &mut Tally) -> bool {
        let pledge = self.rng.range(1, 100) <= 80;
        let project = self.rng.range(1, 2);
        let mut inputs: Vec<String> = Vec::new();
        if pledge {
            // A bare "99" on the amount screen is the engine's "more" key (answered
            // "Invalid choice."), not an amount, so it is skipped.
            let whole = match self.rng.range(10, 4999) {
                99 => 100,
                w => w,
            };
            let amount = if self.rng.range(1, 4) == 1 {
                format!("{whole}.{:02}", self.rng.range(1, 99)) // e.g. 250.50
            } else {
                whole.to_string()
            };
            inputs.extend(["1".to_owned(), project.to_string(), amount, "1".to_owned()]);
        } else {
            inputs.extend(["2".to_owned(), project.to_string()]);
        }
        let session_id = self.new_session_id();
        // Hop k sends the first k inputs: "", "1", "1*P", …
        let mut asked_again = false;
        let mut k = 0;
        while k <= inputs.len() {
            let text = inputs[..k].join("*");
            let last = k == inputs.len();
            k += 1;
            let sent = match &mut self.pace {
                Some((every, next)) => {
                    let due = *next;
                    *next += *every;
                    tokio::time::sleep_until(due.into()).await;
                    due
                }
                None => Instant::now(),
            };
            let (answer, latency) = self.hop(&session_id, &text).await;
            // paced: from when the hop was due, which includes any wait for the previous one
            let latency = match self.pace {
                Some(_) => sent.elapsed(),
                None => latency,
            };
            let problem = match (&answer, last && pledge) {
                (Err(e), _) => Some(e.clone()),
                (Ok(Answer::Con(_)), false) => None,
                // the pledge's screen since issue 11: "Bridge: pledged 250 TJS. Code …"
                (Ok(Answer::End(s)), true) if !english || s.contains(": pledged ") => None,
                (Ok(Answer::End(s)), _) => Some(format!("unexpected END: {s:?}")),
                // "You pledged this already; pledge again?": yes, once
                (Ok(Answer::Con(_)), true) if !asked_again => {
                    asked_again = true;
                    inputs.push("1".to_owned());
                    None
                }
                (Ok(Answer::Con(s)), true) => Some(format!("pledge not confirmed with END: {s:?}")),
            };
            if let Some(p) = problem {
                self.shared.error(&self.number, &text, &p);
                return false;
            }
            if sent >= measure_from {
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                tally.hist.saturating_record(micros);
                tally.hops += 1;
            }
        }
        true
    }

    /// Runs sessions until `until`.
    async fn run(
        mut self,
        english: bool,
        measure_from: Instant,
        until: Instant,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally {
            hist: new_histogram()?,
            hops: 0,
            sessions: 0,
        };
        while Instant::now() < until {
            let started = Instant::now();
            if self.session(english, measure_from, &mut tally).await {
                if started >= measure_from {
                    tally.sessions += 1;
                }
            } else {
                // Do not spin if the server is down.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(tally)
    }
}

/// The JSON line printed at the end (fields in this order).
#[derive(serde::Serialize)]
struct Summary {
    phones: u64,
    duration_s: f64,
    sessions: u64,
    sessions_per_s: f64,
    hops: u64,
    hops_per_s: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    errors: u64,
    server_rss_kib: Option<u64>,
    server_hwm_kib: Option<u64>,
    /// `--rate`, when paced; null when as fast as the server answers.
    paced_rate: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let endpoint = loopback_endpoint(&args.url, "/webhooks/africastalking/ussd")?;
    if args.phones == 0 || args.duration_secs == 0 {
        bail!("--phones and --duration-secs must be at least 1");
    }
    if args.phone_base + args.phones > 10_000_000 {
        bail!("--phone-base + --phones must stay within 7 digits");
    }
    if let Some(pid) = args.server_pid {
        proc_status_kib(pid, "VmRSS").with_context(|| format!("--server-pid {pid}"))?;
    }
    let phones = usize::try_from(args.phones).context("--phones")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(phones)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let shared = Arc::new(Shared {
        client,
        endpoint,
        nonce,
        errors: AtomicU64::new(0),
    });

    // Phase 1: every phone makes sure it is registered (not measured).
    eprintln!("registering {} phones at {} …", args.phones, args.url);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.phones {
        let mut phone = Phone {
            shared: shared.clone(),
            index,
            number: format!("+99293{:07}", args.phone_base + index),
            rng: SplitMix64(args.seed.wrapping_add(index)),
            session_no: 0,
            pace: None,
        };
        tasks.spawn(async move {
            let english = phone.register().await?;
            Ok::<_, anyhow::Error>((phone, english))
        });
    }
    let mut ready = Vec::with_capacity(phones);
    while let Some(joined) = tasks.join_next().await {
        ready.push(joined.context("a phone task panicked")??);
    }

    // Phase 2: warm-up, then the measured window.
    eprintln!(
        "warming up {} s, then measuring {} s …",
        args.warmup_secs, args.duration_secs
    );
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let until = measure_from + Duration::from_secs(args.duration_secs);
    let every = match args.rate {
        Some(r) if r.is_finite() && r > 0.0 => {
            Some(Duration::from_secs_f64(args.phones as f64 / r))
        }
        Some(r) => bail!("--rate must be a positive number of hops a second, not {r}"),
        None => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (mut phone, english) in ready {
        // phones start spread over one interval, so the hops arrive evenly
        phone.pace = every.map(|e| {
            (
                e,
                start + e.mul_f64(phone.index as f64 / args.phones as f64),
            )
        });
        tasks.spawn(phone.run(english, measure_from, until));
    }
    let mut hist = new_histogram()?;
    let (mut hops, mut sessions) = (0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        let tally = joined.context("a phone task panicked")??;
        hist.add(&tally.hist).context("merging histograms")?;
        hops += tally.hops;
        sessions += tally.sessions;
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
    let quantile = |q: f64| (!hist.is_empty()).then(|| ms(hist.value_at_quantile(q)));
    let result = Summary {
        phones: args.phones,
        duration_s: round2(measured),
        sessions,
        sessions_per_s: round2(sessions as f64 / measured),
        hops,
        hops_per_s: round2(hops as f64 / measured),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        max_ms: (!hist.is_empty()).then(|| ms(hist.max())),
        errors: shared.errors.load(Ordering::Relaxed),
        server_rss_kib: memory("VmRSS"),
        server_hwm_kib: memory("VmHWM"),
        paced_rate: args.rate,
    };
    let line = serde_json::to_string(&result).context("encoding the result")?;
    println!("{line}");
    Ok(())
}
