//! `Server-Timing` on every console response (§7 of the console design): where a page's
//! time went, readable in the browser's developer tools and by `hashar-bench`'s console
//! walk, without a log line per request.
//!
//! `Server-Timing: db;dur=3.1, app;dur=0.9, total;dur=4.0` (milliseconds):
//! - `db`: time spent awaiting the database — the session's load and save
//!   ([`auth::PgStore`](super::auth::PgStore)), the signed-in person's re-read, and each
//!   page's own queries, wrapped in [`db`] where the handler calls the service layer;
//! - `app`: the rest of the request (rendering the template, formatting, checks), i.e.
//!   `total - db`;
//! - `total`: from the moment the request reached the console's router to the response's
//!   head (a streamed CSV export's body is not in it).
//!
//! Written by hand: the figures live in a `tokio::task_local!` for the request, and the
//! crates for `Server-Timing` (e.g. `server-timing`) either time a whole service or want a
//! timer threaded through every call; a task-local lets the store and the service calls add
//! their time without changing their signatures. A future awaited outside the request's task
//! (none today) would simply not be counted.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The header's name.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// One request's database time, in microseconds.
#[derive(Debug, Default)]
struct Spent {
    db_us: AtomicU64,
    db_calls: AtomicU64,
}

tokio::task_local! {
    static SPENT: Arc<Spent>;
}

/// Awaits `work` (a call that reads or writes the database) and adds its time to the
/// request's `db` figure. Outside a console request it only awaits.
pub async fn db<F: std::future::Future>(work: F) -> F::Output {
    let start = Instant::now();
    let out = work.await;
    let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let _ = SPENT.try_with(|s| {
        s.db_us.fetch_add(us, Ordering::Relaxed);
        s.db_calls.fetch_add(1, Ordering::Relaxed);
    });
    out
}

/// Pages answered before anyone signed in, where the header would tell an attacker more
/// than the page: signing in checks a dummy hash for an unknown number so that the answer
/// takes as long as for a real one, and a count of database calls would undo that.
fn without_header(path: &str) -> bool {
    path.starts_with("/console/login") || path.starts_with("/console/welcome/")
}

/// The middleware: runs the request with its own figures and writes the header (not on
/// [`without_header`] pages).
pub async fn measure(req: Request, next: Next) -> Response {
    if without_header(req.uri().path()) {
        return next.run(req).await;
    }
    let start = Instant::now();
    let spent = Arc::new(Spent::default());
    let mut response = SPENT.scope(spent.clone(), next.run(req)).await;
    let total_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let db_us = spent.db_us.load(Ordering::Relaxed).min(total_us);
    let calls = spent.db_calls.load(Ordering::Relaxed);
    if let Ok(value) = HeaderValue::from_str(&header_value(db_us, calls, total_us)) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    response
}

fn ms(us: u64) -> String {
    format!("{}.{}", us / 1000, (us % 1000) / 100)
}

/// The header's value: `db` (with how many database calls, as its description), `app` and
/// `total`, in milliseconds with one decimal.
fn header_value(db_us: u64, db_calls: u64, total_us: u64) -> String {
    format!(
        "db;dur={};desc=\"{db_calls} calls\", app;dur={}, total;dur={}",
        ms(db_us),
        ms(total_us - db_us),
        ms(total_us)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_and_welcome_pages_get_no_header() {
        assert!(without_header("/console/login"));
        assert!(without_header("/console/welcome/abc"));
        assert!(!without_header("/console"));
        assert!(!without_header("/console/money"));
    }

    #[test]
    fn the_header_gives_milliseconds_with_one_decimal_and_app_is_the_rest() {
        assert_eq!(
            header_value(3_140, 4, 4_050),
            "db;dur=3.1;desc=\"4 calls\", app;dur=0.9, total;dur=4.0"
        );
        assert_eq!(
            header_value(0, 0, 999),
            "db;dur=0.0;desc=\"0 calls\", app;dur=0.9, total;dur=0.9"
        );
    }

    #[tokio::test]
    async fn database_time_adds_up_inside_a_request_and_is_ignored_outside() {
        // Outside a request: no panic, the value passes through.
        assert_eq!(db(async { 7 }).await, 7);
        let spent = Arc::new(Spent::default());
        SPENT
            .scope(spent.clone(), async {
                db(async {}).await;
                db(async {}).await;
            })
            .await;
        assert_eq!(spent.db_calls.load(Ordering::Relaxed), 2);
    }
}
