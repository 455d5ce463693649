//! The work `serve` does besides answering requests, started by one runner: the outbox
//! dispatchers (sending at the deployment's rate share) and the broadcast scheduler (queuing
//! scheduled broadcasts when their time comes, outside quiet hours, and the meetings'
//! reminders of the day before). Each stops when `stop`
//! turns true: the dispatchers finish the message they are sending and give the rest of
//! their claim back; the scheduler finishes its round.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    app::AppState,
    channels::Sender,
    outbox::{run_dispatchers, DispatchConfig, Gateway, RateShare},
};

/// Starts the dispatchers and the broadcast scheduler; returns their tasks.
pub fn start(
    state: &AppState,
    sender: Arc<Sender>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let (config, settings) = (&state.config, state.settings);
    let dispatch = DispatchConfig {
        rate_per_sec: settings.sms_rate,
        max_attempts: config.sms_max_attempts,
        quiet: Some(settings.quiet_hours),
        lease: Duration::from_secs(config.sms_lease_secs),
        batch: i64::from(config.sms_batch),
        base_backoff: Duration::from_millis(config.sms_retry_base_ms),
        idle_poll: Duration::from_millis(config.sms_idle_poll_ms),
        ..DispatchConfig::default()
    };
    // HASHAR_SMS_RATE is the provider's limit for the whole deployment: this process's
    // dispatchers share one limiter, and its share shrinks while other instances send.
    let rate = RateShare::coordinated(state.pool.clone(), sender.name(), dispatch.rate_per_sec);
    vec![
        tokio::spawn(run_dispatchers(
            config.dispatchers,
            state.pool.clone(),
            sender,
            state.clock.clone(),
            dispatch,
            rate,
            stop.clone(),
        )),
        tokio::spawn(broadcast_scheduler(state.clone(), stop)),
    ]
}

/// How often the scheduler looks for texts stored without their reply
/// ([`crate::sms::answer_unhandled`]).
const UNHANDLED_SWEEP: Duration = Duration::from_secs(30);

/// How often the scheduler deletes the console's expired sessions.
const SESSION_SWEEP: Duration = Duration::from_secs(300);

/// USSD sessions are kept this long after they start (their recorded effects answer an
/// aggregator's late retries) on top of `HASHAR_USSD_SESSION_TTL_SECS`, then deleted.
pub const USSD_SESSIONS_KEPT: chrono::Duration = chrono::Duration::days(2);

/// Most USSD sessions deleted in one sweep (one statement, a few milliseconds): a backlog
/// goes in steps instead of one long delete.
const USSD_PRUNE_BATCH: i64 = 20_000;

/// Deletes the USSD sessions that can no longer be read (see [`USSD_SESSIONS_KEPT`]).
pub async fn prune_ussd_sessions(state: &AppState) {
    let before = state.clock.now() - state.config.ussd_session_ttl() - USSD_SESSIONS_KEPT;
    match crate::store::ussd_sessions::prune(&state.pool, before, USSD_PRUNE_BATCH).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "old USSD sessions deleted"),
        Err(e) => tracing::error!(error = %e, "deleting old USSD sessions failed"),
    }
}

/// Queues the broadcasts whose time has come, every `HASHAR_BROADCAST_POLL_MS`, until
/// `stop`, and deletes the console's expired sessions and old USSD sessions every five
/// minutes. A failed round is
/// logged and the next one tries again.
async fn broadcast_scheduler(state: AppState, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(state.config.broadcast_poll_ms);
    let quiet = state.settings.quiet_hours;
    let mut swept: Option<tokio::time::Instant> = None;
    let mut answered: Option<tokio::time::Instant> = None;
    loop {
        if swept.is_none_or(|at| at.elapsed() >= SESSION_SWEEP) {
            swept = Some(tokio::time::Instant::now());
            if let Err(e) = crate::console::auth::delete_expired_sessions(&state.pool).await {
                tracing::error!(error = %e, "deleting expired console sessions failed");
            }
            prune_ussd_sessions(&state).await;
        }
        if answered.is_none_or(|at| at.elapsed() >= UNHANDLED_SWEEP) {
            answered = Some(tokio::time::Instant::now());
            match crate::sms::answer_unhandled(&state).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(texts = n, "texts stored without their reply answered late")
                }
                Err(e) => {
                    tracing::error!(error = %e, "answering texts stored without their reply failed")
                }
            }
        }
        let now = state.clock.now();
        // targets reached since the last round: their announcements, sent now or scheduled
        // past the quiet hours (then queued below like any scheduled broadcast)
        if let Err(e) = crate::news::announce_reached(&state, now).await {
            tracing::error!(error = %e, "announcing reached targets failed");
        }
        if let Err(e) = crate::broadcasts::run_due(
            &state.pool,
            now,
            &quiet,
            state.config.default_language,
            state.config.sms_provider.name(),
            state.config.sms_max_segments,
        )
        .await
        {
            tracing::error!(error = %e, "broadcast scheduler failed");
        }
        if let Err(e) = crate::meetings::run_due(&state, now).await {
            tracing::error!(error = %e, "meeting reminders failed");
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
