//! Metrics in Prometheus' text format, served on their own listener
//! (`HASHAR_METRICS_LISTEN`, loopback by default) so that they are never public by accident.
//!
//! Events are counted where they happen, through the `metrics` facade (a no-op until
//! [`install`] sets the Prometheus recorder, so library code and tests need no set-up);
//! what lives in the database (queue depth, oldest queued message, broadcast progress) is
//! read by [`sample`] every few seconds, so every instance on one database reports the
//! same figures. Metric names and labels are listed in `docs/OPERATIONS.md`; no label ever
//! holds a phone number, a text or an id chosen from outside.

use std::{net::SocketAddr, time::Duration};

use axum::{http::header, response::IntoResponse, routing::get, Router};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::store::{self, outbox::OutboxStatus};

/// Latency buckets in seconds: a USSD hop should answer in milliseconds, a provider in
/// tens to hundreds of them; the last buckets catch the timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("building the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
    #[error("binding the metrics listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Sets the process-wide Prometheus recorder and binds the metrics listener; returns the
/// listener's address (useful with port 0) and a future that serves it until `shutdown`.
pub async fn install(
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    describe();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let app = router(handle.clone());
    let task = tokio::spawn(async move {
        // Histograms keep their samples in buckets that need draining now and then.
        let upkeep = async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
            }
        };
        let serve = axum::serve(listener, app.into_make_service()).with_graceful_shutdown(shutdown);
        tokio::select! {
            r = serve => if let Err(e) = r { tracing::error!(error = %e, "metrics listener failed") },
            _ = upkeep => {}
        }
    });
    Ok((bound, task))
}

fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("hashar_ussd_hops_total", "USSD hops answered, by outcome");
    describe_histogram!(
        "hashar_ussd_hop_seconds",
        Unit::Seconds,
        "Time to answer a USSD hop"
    );
    describe_counter!(
        "hashar_inbound_sms_total",
        "Inbound SMS webhook calls, by provider and outcome"
    );
    describe_counter!(
        "hashar_delivery_reports_total",
        "Delivery-report webhook calls, by provider and outcome"
    );
    describe_counter!(
        "hashar_provider_sends_total",
        "Messages handed to the SMS provider, by provider and outcome"
    );
    describe_histogram!(
        "hashar_provider_send_seconds",
        Unit::Seconds,
        "Time the SMS provider took to accept (or refuse) a message"
    );
    describe_gauge!(
        "hashar_outbox_messages",
        "Outbox messages by status (all instances; sampled)"
    );
    describe_gauge!(
        "hashar_outbox_oldest_queued_seconds",
        Unit::Seconds,
        "Age of the oldest message waiting to be sent (sampled)"
    );
    describe_gauge!(
        "hashar_broadcast_messages",
        "Messages of broadcasts being sent, by status (sampled)"
    );
    describe_gauge!(
        "hashar_broadcasts_sending",
        "Broadcasts being sent (sampled)"
    );
    describe_gauge!(
        "hashar_db_pool_connections",
        "This process's database connections, in use and idle (sampled)"
    );
    describe_gauge!(
        "hashar_db_pool_max_connections",
        "This process's database pool size limit"
    );
    describe_counter!(
        "hashar_ussd_cache_starts_total",
        "Times this process's hop cache started over (start, a lost connection or heartbeat)"
    );
    describe_counter!(
        "hashar_ussd_cache_reads_total",
        "Hop-context reads by where they were answered: memory, database (a miss) or uncached (the cache not following)"
    );
    describe_counter!(
        "hashar_db_pool_acquire_timeouts_total",
        "Requests that waited for a database connection longer than the pool allows"
    );
}

/// How a USSD hop ended.
#[derive(Debug, Clone, Copy)]
pub enum HopOutcome {
    /// A `CON` screen: the session goes on.
    Continue,
    /// An `END` screen the menus chose.
    End,
    /// An `END` refusal with a reason (e.g. a project closed meanwhile).
    Refused,
    /// The database failed or was too slow: "service busy".
    Busy,
}

pub fn ussd_hop(outcome: HopOutcome, took: Duration) {
    let outcome = match outcome {
        HopOutcome::Continue => "continue",
        HopOutcome::End => "end",
        HopOutcome::Refused => "refused",
        HopOutcome::Busy => "busy",
    };
    metrics::counter!("hashar_ussd_hops_total", "outcome" => outcome).increment(1);
    metrics::histogram!("hashar_ussd_hop_seconds").record(took.as_secs_f64());
}

/// One inbound SMS webhook call: `outcome` is one of a fixed set of words
/// (`handled`, `duplicate`, `bad_request`, `forbidden`, `error`, `timeout`, …).
pub fn inbound_sms(provider: &'static str, outcome: &'static str) {
    metrics::counter!("hashar_inbound_sms_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// One delivery-report webhook call, like [`inbound_sms`].
pub fn delivery_report(provider: &'static str, outcome: &'static str) {
    metrics::counter!("hashar_delivery_reports_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

/// One send to the provider: `outcome` is `accepted`, `retryable` or `fatal`.
pub fn provider_send(provider: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!("hashar_provider_sends_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("hashar_provider_send_seconds", "provider" => provider)
        .record(took.as_secs_f64());
}

/// The hop cache started over (`reason`: `start`, `lost`, `heartbeat`).
pub fn cache_start(reason: &'static str) {
    metrics::counter!("hashar_ussd_cache_starts_total", "reason" => reason).increment(1);
}

/// A hop's caller came from memory (`memory`), was read and kept (`database`), or the
/// cache was not following (`uncached`).
pub fn cache_read(source: &'static str) {
    metrics::counter!("hashar_ussd_cache_reads_total", "source" => source).increment(1);
}

/// Counts a request that could not get a database connection in time.
pub fn pool_timeout(e: &sqlx::Error) {
    if matches!(e, sqlx::Error::PoolTimedOut) {
        metrics::counter!("hashar_db_pool_acquire_timeouts_total").increment(1);
    }
}

/// Reads the database-wide gauges once.
pub async fn sample_once(pool: &PgPool) -> Result<(), sqlx::Error> {
    metrics::gauge!("hashar_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.size()) - pool.num_idle() as f64);
    metrics::gauge!("hashar_db_pool_connections", "state" => "idle").set(pool.num_idle() as f64);
    metrics::gauge!("hashar_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));

    let by_status = store::gauges::outbox_by_status(pool).await?;
    // Every status is set, so one that emptied shows 0 rather than its last value.
    for status in OutboxStatus::ALL {
        let n = by_status
            .iter()
            .find(|c| c.status == status)
            .map_or(0, |c| c.count);
        metrics::gauge!("hashar_outbox_messages", "status" => status.as_str()).set(n as f64);
    }
    let oldest = store::gauges::oldest_waiting_secs(pool).await?;
    metrics::gauge!("hashar_outbox_oldest_queued_seconds").set(oldest.unwrap_or(0.0).max(0.0));

    // Broadcasts with messages still waiting, and how far along they are.
    let progress = store::gauges::broadcast_progress(pool).await?;
    metrics::gauge!("hashar_broadcasts_sending").set(progress.sending as f64);
    metrics::gauge!("hashar_broadcast_messages", "status" => "waiting")
        .set(progress.waiting as f64);
    metrics::gauge!("hashar_broadcast_messages", "status" => "done").set(progress.done as f64);
    Ok(())
}

/// Samples the gauges every `every` until `stop` turns true.
pub async fn sample(pool: PgPool, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = sample_once(&pool).await {
            tracing::warn!(error = %e, "sampling metrics failed");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
