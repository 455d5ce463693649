//! `hashar-console-bench`: server time of the console's heaviest pages on a running
//! `hashar serve` (issue 10: the overview, a project's page and the money search, each
//! ≤ 100 ms at the median on 100,000 households and 1,000,000 pledges).
//!
//! It signs in once as `--phone` / `--password` (a member of staff with a password, e.g.
//! from `hashar coordinator set-password`), then requests, in turn, `--reps` times each:
//!
//! * `overview`: `GET /console`;
//! * `project`: `GET /console/projects/{id}` of the project with the most pledges;
//! * `money_search`: `GET /console/money?code=…` with the code of a pledge picked at random
//!   (a different one each time) from the database.
//!
//! For each it reads the server's own figure from the `Server-Timing` header (`total`, and
//! its `db` part) and the client's latency (request sent → whole body read), and checks the
//! answer: HTTP 200 and, for the money search, the code in the page. The result is ONE JSON
//! line on stdout: per page `server_p50_ms`, `server_p95_ms`, `server_max_ms`, `db_p50_ms`,
//! `client_p50_ms`, `client_p95_ms`, `errors`, and `pledges` (how many the database holds).
//!
//! The database (`DATABASE_URL`) is read only to pick the project and the codes; the pages
//! are requested over HTTP from a loopback URL only (127.0.0.1, localhost or [::1]).
//!
//! ```text
//! cargo build --release --bins
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/hashar_console_bench
//! ./target/release/hashar demo-data --households 100000 --pledges 1000000
//! ./target/release/hashar coordinator add --name Bench --phone +992900999999 --admin
//! ./target/release/hashar coordinator set-password --phone +992900999999 <<< 'bench password 1'
//! HASHAR_LISTEN=127.0.0.1:18090 ./target/release/hashar serve &
//! ./target/release/hashar-console-bench --url http://127.0.0.1:18090 \
//!     --phone +992900999999 --password 'bench password 1' --reps 50
//! ```
//! `.ci/bench-console` does all of this on a fresh database.

// Shared with the other load generators; this one needs only part of it.
#[allow(dead_code)]
mod common;

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Server time of the console's overview, project page and money search")]
struct Args {
    /// The running server's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The member of staff who signs in.
    #[arg(long)]
    phone: String,
    /// Their password.
    #[arg(long, env = "HASHAR_BENCH_PASSWORD")]
    password: String,
    /// Requests per page.
    #[arg(long, default_value_t = 50)]
    reps: usize,
    /// The database the server uses (read to pick the project and the pledge codes).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Seed of the random choice of codes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The `name=value` of cookie `name` among a response's `Set-Cookie` headers.
fn cookie_from(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The value of the hidden form field `name` in a page.
fn field(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let rest = body.split(&marker).nth(1)?;
    Some(rest.split('"').next()?.to_owned())
}

/// `total` and `db` of a `Server-Timing` header, in microseconds.
fn server_timing(resp: &reqwest::Response) -> Option<(u64, u64)> {
    let value = resp.headers().get("server-timing")?.to_str().ok()?;
    let mut total = None;
    let mut db = None;
    for metric in value.split(',') {
        let mut parts = metric.trim().split(';');
        let name = parts.next()?;
        let dur = parts
            .find_map(|p| p.trim().strip_prefix("dur="))
            .and_then(|d| d.parse::<f64>().ok())?;
        let us = (dur * 1000.0).round() as u64;
        match name {
            "total" => total = Some(us),
            "db" => db = Some(us),
            _ => {}
        }
    }
    Some((total?, db?))
}

struct Page {
    name: &'static str,
    server: hdrhistogram::Histogram<u64>,
    db: hdrhistogram::Histogram<u64>,
    client: hdrhistogram::Histogram<u64>,
    errors: u64,
}

impl Page {
    fn new(name: &'static str) -> anyhow::Result<Page> {
        Ok(Page {
            name,
            server: common::new_histogram()?,
            db: common::new_histogram()?,
            client: common::new_histogram()?,
            errors: 0,
        })
    }

    fn json(&self) -> serde_json::Value {
        let q = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            common::round2(common::ms(h.value_at_quantile(q)))
        };
        json!({
            "page": self.name,
            "requests": self.server.len(),
            "server_p50_ms": q(&self.server, 0.5),
            "server_p95_ms": q(&self.server, 0.95),
            "server_max_ms": common::round2(common::ms(self.server.max())),
            "db_p50_ms": q(&self.db, 0.5),
            "client_p50_ms": q(&self.client, 0.5),
            "client_p95_ms": q(&self.client, 0.95),
            "errors": self.errors,
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = common::loopback_endpoint(&args.url, "")?;
    let base = base.trim_end_matches('/').to_owned();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.database_url)
        .await
        .context("connecting to DATABASE_URL")?;
    let pledges: i64 = sqlx::query_scalar("select count(*) from pledges")
        .fetch_one(&pool)
        .await?;
    let project: i64 = sqlx::query_scalar(
        "select project_id from pledges group by project_id order by count(*) desc, project_id limit 1",
    )
    .fetch_optional(&pool)
    .await?
    .context("no project with pledges: run `hashar demo-data --households N --pledges M`")?;
    // Codes picked in the database, spread over the whole table.
    let codes: Vec<String> = sqlx::query_scalar(
        "select code from pledges tablesample bernoulli (1) repeatable ($1) limit $2",
    )
    .bind(args.seed as f64)
    .bind(args.reps as i64)
    .fetch_all(&pool)
    .await?;
    if codes.is_empty() {
        bail!("no pledges to search for");
    }
    pool.close().await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(common::REQUEST_TIMEOUT)
        .build()?;
    // Sign in: the pre-session CSRF cookie and token, then the form.
    let login = client
        .get(format!("{base}/console/login?lang=en"))
        .send()
        .await?;
    let pre = cookie_from(&login, "__Host-hashar-csrf").context("no pre-session cookie")?;
    let body = login.text().await?;
    let csrf = field(&body, "csrf").context("no csrf field on the sign-in page")?;
    let signed = client
        .post(format!("{base}/console/login"))
        .header("cookie", format!("{pre}; hashar-lang=en"))
        .header("origin", &base)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("phone", args.phone.as_str()),
            ("password", args.password.as_str()),
        ])
        .send()
        .await?;
    let Some(session) = cookie_from(&signed, "__Host-hashar") else {
        bail!("signing in failed: HTTP {}", signed.status());
    };
    let cookie = format!("{session}; hashar-lang=en");

    let mut pages = [
        Page::new("overview")?,
        Page::new("project")?,
        Page::new("money_search")?,
    ];
    for i in 0..args.reps {
        let code = &codes[i % codes.len()];
        let uris = [
            "/console".to_owned(),
            format!("/console/projects/{project}"),
            format!("/console/money?code={code}"),
        ];
        for (page, uri) in pages.iter_mut().zip(uris) {
            let start = Instant::now();
            let resp = client
                .get(format!("{base}{uri}"))
                .header("cookie", &cookie)
                .send()
                .await;
            let (status, timing, body) = match resp {
                Ok(r) => {
                    let status = r.status();
                    let timing = server_timing(&r);
                    (status, timing, r.text().await.unwrap_or_default())
                }
                Err(e) => {
                    eprintln!("{}: {e}", page.name);
                    page.errors += 1;
                    continue;
                }
            };
            let client_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            let found = page.name != "money_search" || body.contains(code.as_str());
            match timing {
                Some((total, db)) if status == reqwest::StatusCode::OK && found => {
                    page.server.record(total.max(1))?;
                    page.db.record(db.max(1))?;
                    page.client.record(client_us.max(1))?;
                }
                _ => {
                    if page.errors < 3 {
                        eprintln!(
                            "{} {uri}: HTTP {status}, Server-Timing {timing:?}",
                            page.name
                        );
                    }
                    page.errors += 1;
                }
            }
        }
    }
    println!(
        "{}",
        json!({
            "pledges": pledges,
            "reps": args.reps,
            "pages": pages.iter().map(Page::json).collect::<Vec<_>>(),
        })
    );
    Ok(())
}
