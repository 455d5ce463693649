//! The outbox: every outgoing SMS is a row, written in the same transaction as the change
//! that caused it, and sent by the dispatcher.
//!
//! Claims and leases: a dispatcher claims due rows with `FOR UPDATE SKIP LOCKED` and marks
//! them `sending`, leased until now + `lease`, with itself as `lease_owner` and the attempt
//! number raised; (owner, attempts) is the claim's token. It never claims more than its
//! process's share of the provider rate sends in half a lease (counting what the process's
//! other dispatchers hold), so claimed rows do not wait in the rate limiter until their lease
//! runs out. Right before each send, one statement checks that the row still carries the
//! claim's token and renews its lease: a row whose lease ran out may have been taken over by
//! another dispatcher (in this or another instance), and then only that one sends it. Each
//! accepted send is recorded at once. So a message is sent twice only if a single send
//! outlasts the lease (the provider client's timeout must be well below it) or the process
//! dies between the provider's acceptance and the record (then it is sent again after the
//! lease: delivery is at least once).
//!
//! Failures that may pass (timeouts, connection errors, 429, 5xx) are retried with
//! exponential backoff and jitter up to a maximum number of attempts; any other refusal
//! fails the message at once, with the reason kept.
//!
//! The statements (the insert, the claim, the lease's renewal and release, the record of each
//! attempt, delivery reports, the sending instances) are in [`crate::store::outbox`]; the
//! reports that wait for their message in [`crate::store::inbox`].

use std::{future::Future, num::NonZeroU32, pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use sqlx::{PgConnection, PgPool};

pub mod message;
mod rate;
pub use rate::{RateShare, HEARTBEAT, STALE_AFTER};

use self::message::{Accepted, DeliveryReport, DeliveryState, MessageRef, OutboundSms, SendError};
use crate::{
    clock::Clock,
    domain::{Encoding, Phone, QuietHours, TextMeasure},
    store::{
        self,
        outbox::{Claimed, OutboxStatus, ReportRef, ReportState, Token},
        BroadcastId, OutboxId,
    },
};

/// Something that sends one SMS: each provider's client (see `crate::channels::Sender`).
pub trait Gateway: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn send<'a>(
        &'a self,
        msg: &'a OutboundSms,
    ) -> Pin<Box<dyn Future<Output = Result<Accepted, SendError>> + Send + 'a>>;
}

/// Why a message is sent (the store's type, `outbox.kind`).
pub use crate::store::outbox::Kind;

/// A message to queue.
pub struct NewMessage<'a> {
    pub to: &'a Phone,
    pub body: &'a str,
    pub kind: Kind,
    pub inbound_id: Option<i64>,
}

/// Cuts `body` so that it fits `max_segments` SMS, at a word boundary, marked with "…".
pub fn fit_segments(body: &str, max_segments: u32) -> String {
    let fits = |s: &str| TextMeasure::of(s).sms_segments() <= max_segments as usize;
    if fits(body) {
        return body.to_owned();
    }
    let mut cut = body.to_owned();
    while !cut.is_empty() {
        // drop the last word (or character, for a single long word)
        match cut.trim_end().rfind(' ') {
            Some(i) if i > 0 => cut.truncate(i),
            _ => {
                cut.pop();
            }
        }
        let candidate = format!("{}…", cut.trim_end());
        if fits(&candidate) {
            return candidate;
        }
    }
    "…".to_owned()
}

/// Queues a message inside the caller's transaction. A number that texted STOP gets
/// nothing but the STOP confirmation: anything else is stored as `suppressed`.
pub async fn enqueue(
    conn: &mut PgConnection,
    msg: &NewMessage<'_>,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    insert(conn, msg, None, None, provider, max_segments, now).await
}

/// Queues a message that can wait (a notice, a reminder: not an answer to the person), as
/// [`enqueue`], held past the quiet hours of the recipient's zone: `held.due` is when it
/// goes ([`Held::past_quiet_hours`]), and the dispatcher puts it back if it comes due
/// inside them again (a retry). Replies, receipts and codes use [`enqueue`] and go at once.
pub async fn enqueue_held(
    conn: &mut PgConnection,
    msg: &NewMessage<'_>,
    held: Held<'_>,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    insert(conn, msg, None, Some(held), provider, max_segments, now).await
}

/// Queues one message of broadcast `broadcast`, held as [`enqueue_held`]. The database
/// holds at most one message per broadcast and number (a unique index): a second one fails
/// with a unique violation, and the caller's transaction with it.
pub async fn enqueue_broadcast(
    conn: &mut PgConnection,
    msg: &NewMessage<'_>,
    broadcast: i64,
    held: Held<'_>,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    insert(
        conn,
        msg,
        Some(broadcast),
        Some(held),
        provider,
        max_segments,
        now,
    )
    .await
}

/// When a message that can wait goes, and the zone whose quiet hours it waits out.
pub use crate::store::outbox::Held;

impl Held<'static> {
    /// Due at `at`, or at the end of the quiet hours it falls in, read in `zone`.
    pub fn past_quiet_hours(quiet: &QuietHours, zone: Tz, at: DateTime<Utc>) -> Held<'static> {
        Held {
            zone: zone.name(),
            due: quiet.next_allowed_in(zone, at),
        }
    }
}

/// How an encoding is stored in `outbox.encoding`.
fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Gsm7 => "gsm7",
        Encoding::Ucs2 => "ucs2",
    }
}

/// The encoding of a stored message. Hashar writes only `gsm7` and `ucs2`; anything else (a
/// row written by hand) is measured from the body again, never taken for GSM-7 (which would
/// garble a Cyrillic text at providers that are told the coding, such as Kannel).
fn stored_encoding(id: i64, stored: &str, body: &str) -> Encoding {
    match stored {
        "gsm7" => Encoding::Gsm7,
        "ucs2" => Encoding::Ucs2,
        other => {
            let measured = TextMeasure::of(body).encoding;
            tracing::warn!(
                outbox_id = id,
                encoding = other,
                measured = encoding_name(measured),
                "outbox message with an unknown encoding; sent in the one its text needs"
            );
            measured
        }
    }
}

/// A body as the outbox stores it: cut to `HASHAR_SMS_MAX_SEGMENTS` ([`fit_segments`]),
/// with its encoding's name and its number of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    pub body: String,
    /// `gsm7` or `ucs2` (`outbox.encoding`).
    pub encoding: &'static str,
    pub segments: i32,
}

impl Measured {
    /// `body` cut to `max_segments` and measured: what [`enqueue`] stores, for statements
    /// that queue a reply together with something else (an inbound text's quick path).
    pub fn of(body: &str, max_segments: u32) -> Measured {
        let body = fit_segments(body, max_segments);
        let measure = TextMeasure::of(&body);
        Measured {
            encoding: encoding_name(measure.encoding),
            segments: i32::try_from(measure.sms_segments()).unwrap_or(i32::MAX),
            body,
        }
    }
}

async fn insert(
    conn: &mut PgConnection,
    msg: &NewMessage<'_>,
    broadcast: Option<i64>,
    held: Option<Held<'_>>,
    provider: &str,
    max_segments: u32,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let Measured {
        body,
        encoding,
        segments,
    } = Measured::of(msg.body, max_segments);
    let id = store::outbox::insert(
        conn,
        &store::outbox::NewRow {
            phone: msg.to,
            body: &body,
            encoding,
            segments,
            provider,
            kind: msg.kind,
            inbound_id: msg.inbound_id,
            broadcast: broadcast.map(BroadcastId),
            now,
            held,
        },
    )
    .await?;
    Ok(id.0)
}

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Rows claimed per round, at most (fewer when the rate share sends fewer in half a
    /// lease).
    pub batch: i64,
    /// How long a claimed row is ours before another dispatcher may take it over; renewed
    /// right before its send, so it must be well above the provider client's timeout.
    pub lease: Duration,
    pub max_attempts: i32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Messages per second to the provider, for [`Dispatcher::new`]'s own limiter
    /// (dispatchers built with [`Dispatcher::sharing`] use their [`RateShare`]).
    pub rate_per_sec: NonZeroU32,
    /// How long an idle dispatcher waits before looking again.
    pub idle_poll: Duration,
    /// Messages that can wait (broadcasts) wait while it is quiet hours in their
    /// recipient's zone (replies and receipts do not).
    pub quiet: Option<crate::domain::QuietHours>,
    /// Sends in flight at once per dispatcher.
    pub concurrency: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            batch: 50,
            lease: Duration::from_secs(60),
            max_attempts: 8,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30 * 60),
            rate_per_sec: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            idle_poll: Duration::from_millis(500),
            quiet: None,
            concurrency: 32,
        }
    }
}

/// The wait before attempt `attempts + 1`: base × 2^(attempts−1), capped, with full jitter
/// between half and all of it so that retries from many messages spread out.
pub fn backoff(cfg: &DispatchConfig, attempts: i32, jitter: f64) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let raw = cfg.base_backoff.saturating_mul(2u32.saturating_pow(exp));
    let capped = raw.min(cfg.max_backoff);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

pub struct Dispatcher {
    pool: PgPool,
    gateway: Arc<dyn Gateway>,
    clock: Arc<dyn Clock>,
    cfg: DispatchConfig,
    rate: Arc<RateShare>,
    /// Written to `outbox.lease_owner` with every claim: together with the attempt number it
    /// says whether a claimed row is still this dispatcher's (see [`Dispatcher::claim`]).
    owner: String,
    /// Turns true when the process is stopping (set by [`Dispatcher::run`]): the message
    /// being sent is finished, the rest of the claim is given back at once.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Claimed messages not sent by this dispatcher because, when their turn came, another
    /// dispatcher had taken them over (their lease had run out); that one sends them.
    pub lost: usize,
    /// Claimed messages given back unsent because the process is stopping: queued again
    /// at once, for any dispatcher, with the attempt not counted.
    pub released: usize,
    /// Claimed messages that can wait, given back unsent because it is quiet hours in their
    /// recipient's zone (a retry or a backlog that came due inside them): queued again for
    /// the end of the window.
    pub held: usize,
    /// Delivery reports that had arrived before their message's provider id was recorded,
    /// applied in this round.
    pub early_reports: i32,
}

impl Round {
    fn add(&mut self, r: Round) {
        self.claimed += r.claimed;
        self.sent += r.sent;
        self.retried += r.retried;
        self.failed += r.failed;
        self.lost += r.lost;
        self.released += r.released;
        self.held += r.held;
        self.early_reports += r.early_reports;
    }
}

/// Gives back one message's room in the process's claim budget when dropped (sent, failed,
/// lost, or never sent at all).
struct Slot(Arc<RateShare>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release(1);
    }
}

/// Messages claimed by one dispatcher, to be sent with [`Dispatcher::send`]. Dropping it
/// unsent gives back their room in the claim budget; the rows themselves are taken again by
/// any dispatcher once their lease runs out.
pub struct Claim {
    rows: Vec<(Claimed, Slot)>,
}

impl Claim {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The outbox ids claimed.
    pub fn ids(&self) -> Vec<i64> {
        self.rows.iter().map(|(m, _)| m.id.0).collect()
    }
}

impl Dispatcher {
    /// A dispatcher with a limiter of its own at `cfg.rate_per_sec`.
    pub fn new(
        pool: PgPool,
        gateway: Arc<dyn Gateway>,
        clock: Arc<dyn Clock>,
        cfg: DispatchConfig,
    ) -> Dispatcher {
        let rate = RateShare::local(cfg.rate_per_sec);
        Dispatcher::sharing(pool, gateway, clock, cfg, rate)
    }

    /// A dispatcher that waits on `rate`'s limiter, shared with the other dispatchers of
    /// this process (and coordinated with other instances, if `rate` is).
    pub fn sharing(
        pool: PgPool,
        gateway: Arc<dyn Gateway>,
        clock: Arc<dyn Clock>,
        cfg: DispatchConfig,
        rate: Arc<RateShare>,
    ) -> Dispatcher {
        Dispatcher {
            pool,
            gateway,
            clock,
            cfg,
            rate,
            owner: format!("{:016x}", rand::random::<u64>()),
            stop: None,
        }
    }

    /// What this dispatcher writes to `outbox.lease_owner` for the rows it claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims due messages and sends them; returns what happened.
    pub async fn run_once(&self) -> Result<Round, sqlx::Error> {
        let claim = self.claim().await?;
        self.send(claim).await
    }

    /// Claims due messages: at most `cfg.batch`, and never more than the process's share of
    /// the rate sends in half a lease, counting what its other dispatchers hold (waits while
    /// they hold all of it). Each row is marked `sending`, leased until now + `cfg.lease`,
    /// with this dispatcher as `lease_owner` and its attempt number raised by one: the pair
    /// (owner, attempts) is the claim's token. A row whose lease has run out is due again,
    /// for any dispatcher.
    pub async fn claim(&self) -> Result<Claim, sqlx::Error> {
        let want = usize::try_from(self.cfg.batch.max(1)).unwrap_or(1);
        let room = self.rate.reserve_waiting(want, self.cfg.lease).await;
        let slots: Vec<Slot> = (0..room).map(|_| Slot(self.rate.clone())).collect();
        let now = self.clock.now();
        let rows = store::outbox::claim(
            &self.pool,
            &store::outbox::ClaimRequest {
                provider: self.gateway.name(),
                limit: i64::try_from(room).unwrap_or(i64::MAX),
                hold_broadcasts: self.cfg.quiet.is_some_and(|q| q.contains(now)),
                owner: &self.owner,
                now,
                lease_until: now + self.lease(),
            },
        )
        .await?;
        // (the slots not matched by a row are dropped here: their room goes back)
        Ok(Claim {
            rows: rows.into_iter().zip(slots).collect(),
        })
    }

    /// The token of this dispatcher's claim of `msg`.
    fn token<'a>(&'a self, msg: &Claimed) -> Token<'a> {
        Token {
            id: msg.id,
            attempts: msg.attempts,
            owner: &self.owner,
        }
    }

    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.cfg.lease).unwrap_or(chrono::Duration::seconds(60))
    }

    /// Sends what [`Dispatcher::claim`] took; returns what happened.
    pub async fn send(&self, claim: Claim) -> Result<Round, sqlx::Error> {
        let mut round = Round {
            claimed: claim.len(),
            ..Round::default()
        };
        // Several sends in flight at once (the rate limiter still paces them): a provider
        // answers in tens of milliseconds, so one at a time would cap a dispatcher at a few
        // dozen messages a second. Each result is recorded as soon as it is known.
        let outcomes: Vec<Result<Outcome, sqlx::Error>> = futures_util::stream::iter(claim.rows)
            .map(|(msg, slot)| async move {
                let outcome = self.deliver(&msg).await;
                drop(slot);
                outcome
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect()
            .await;
        let mut first_error = None;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Sent) => round.sent += 1,
                Ok(Outcome::Retry) => round.retried += 1,
                Ok(Outcome::Failed) => round.failed += 1,
                Ok(Outcome::Lost) => round.lost += 1,
                Ok(Outcome::Released) => round.released += 1,
                Ok(Outcome::Held) => round.held += 1,
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // Reports that came before the ids they name were recorded: those of this round, or
        // (when idle) of an earlier one whose report was committed after its sweep.
        if round.sent > 0 || round.claimed == 0 {
            round.early_reports = apply_early_reports(&self.pool, self.clock.now()).await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(round),
        }
    }

    /// Sends everything that is due now, round after round (tests and the benchmark).
    pub async fn drain(&self) -> Result<Round, sqlx::Error> {
        let mut total = Round::default();
        loop {
            let r = self.run_once().await?;
            total.add(r);
            if r.claimed == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs until `stop` turns true. Then the message being sent is finished and recorded,
    /// and what else this dispatcher had claimed is given back (queued again, its lease
    /// released), so that another instance sends it now rather than after the lease.
    pub async fn run(mut self, stop: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = stop.clone();
        let shutdown = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(shutdown);
        self.stop = Some(stop);
        loop {
            if self.stopping() {
                return;
            }
            let idle = match self.run_once().await {
                Ok(r) => r.claimed == 0,
                Err(e) => {
                    tracing::error!(error = %e, "dispatcher round failed");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(self.cfg.idle_poll) => {}
                }
            }
        }
    }

    /// Right before a send: whether the row is still ours (same owner, same attempt, still
    /// `sending`), renewing its lease for the send if so — one statement, so no other
    /// dispatcher can take it between the check and the send. Ownership is the token, not
    /// the clock: a row whose lease ran out but that nobody took over is still ours; one
    /// that was taken over is not, and then the other dispatcher sends it.
    async fn still_ours(&self, msg: &Claimed) -> Result<bool, sqlx::Error> {
        let now = self.clock.now();
        store::outbox::renew_lease(&self.pool, self.token(msg), now + self.lease(), now).await
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Resolves when the process starts stopping (never for a dispatcher without `run`).
    async fn stopped(&self) {
        match self.stop.clone() {
            Some(mut s) => {
                let _ = s.wait_for(|stop| *stop).await;
            }
            None => std::future::pending().await,
        }
    }

    /// Gives a claimed, unsent message back: queued again at once, lease and attempt
    /// released, if it is still ours.
    async fn release(&self, msg: &Claimed) -> Result<Outcome, sqlx::Error> {
        store::outbox::release(&self.pool, self.token(msg), self.clock.now()).await?;
        Ok(Outcome::Released)
    }

    /// For a message that can wait and whose recipient's zone is in the quiet hours now:
    /// when they end.
    fn quiet_until(&self, msg: &Claimed) -> Option<DateTime<Utc>> {
        let quiet = self.cfg.quiet?;
        let zone: Tz = msg.timezone.as_deref()?.parse().ok()?;
        let now = self.clock.now();
        quiet
            .contains_in(zone, now)
            .then(|| quiet.next_allowed_in(zone, now))
    }

    async fn deliver(&self, msg: &Claimed) -> Result<Outcome, sqlx::Error> {
        let phone = Phone::from_e164_unchecked(msg.phone.clone());
        if msg.opted_out && msg.kind != Kind::StopConfirmation {
            // The number texted STOP after this was queued.
            self.finish(
                msg,
                OutboxStatus::Suppressed,
                None,
                Some("recipient opted out (STOP)"),
            )
            .await?;
            return Ok(Outcome::Failed);
        }
        if let Some(until) = self.quiet_until(msg) {
            let now = self.clock.now();
            store::outbox::hold(&self.pool, self.token(msg), until, now).await?;
            return Ok(Outcome::Held);
        }
        if self.stopping() {
            return self.release(msg).await;
        }
        let limiter = self.rate.limiter();
        tokio::select! {
            _ = limiter.until_ready() => {}
            _ = self.stopped() => return self.release(msg).await,
        }
        if !self.still_ours(msg).await? {
            tracing::warn!(
                outbox_id = msg.id.0,
                attempts = msg.attempts,
                "sms claim taken over by another dispatcher before its send; not sending it here"
            );
            return Ok(Outcome::Lost);
        }
        let out = OutboundSms {
            id: msg.id.0,
            to: phone.clone(),
            text: msg.body.clone(),
            encoding: stored_encoding(msg.id.0, &msg.encoding, &msg.body),
            segments: u32::try_from(msg.segments).unwrap_or(1),
        };
        match self.gateway.send(&out).await {
            Ok(accepted) => {
                // Recorded at once, not with the rest of the round: the lease renewed before
                // the send covers the send, not a whole round. (A crash between the
                // provider's acceptance and this record resends after the lease: delivery is
                // at least once.)
                let recorded = self
                    .record_sent(msg, accepted.provider_msg_id.as_deref())
                    .await?;
                if recorded {
                    tracing::debug!(outbox_id = msg.id.0, phone = %phone, "sms sent");
                } else {
                    tracing::warn!(
                        outbox_id = msg.id.0,
                        phone = %phone,
                        "sms sent, but its claim was taken over meanwhile (the send outlasted the lease): it may go out twice"
                    );
                }
                Ok(Outcome::Sent)
            }
            Err(e @ (SendError::Retryable(_) | SendError::RetryAfter { .. }))
                if msg.attempts < self.cfg.max_attempts =>
            {
                let mut wait = backoff(&self.cfg, msg.attempts, rand::random::<f64>());
                // The provider said when to come back: not before (it may be longer than
                // our backoff, never shorter).
                let reason = match e {
                    SendError::RetryAfter { reason, after } => {
                        wait = wait.max(after);
                        reason
                    }
                    SendError::Retryable(reason) | SendError::Fatal(reason) => reason,
                };
                let at = self.clock.now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
                store::outbox::retry_at(&self.pool, self.token(msg), at, &reason, self.clock.now())
                    .await?;
                tracing::warn!(outbox_id = msg.id.0, attempts = msg.attempts, error = %reason, "sms send failed; will retry");
                Ok(Outcome::Retry)
            }
            Err(e) => {
                let reason = e.to_string();
                self.finish(msg, OutboxStatus::Failed, None, Some(&reason))
                    .await?;
                tracing::warn!(outbox_id = msg.id.0, attempts = msg.attempts, error = %reason, "sms failed");
                Ok(Outcome::Failed)
            }
        }
    }

    /// Records an accepted send, trying again for up to half a lease when the database
    /// cannot be had (the pool exhausted, a connection lost): the message is out, and a
    /// record given up leaves the row to be taken over and sent a second time once its lease
    /// runs out. Past that, the error is returned (delivery stays at least once).
    async fn record_sent(
        &self,
        msg: &Claimed,
        provider_msg_id: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            match self
                .finish(msg, OutboxStatus::Sent, provider_msg_id, None)
                .await
            {
                Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
                    if started.elapsed() + wait < self.cfg.lease / 2 =>
                {
                    tracing::warn!(outbox_id = msg.id.0, error = %e, "sms sent, its record failed; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                done => return done,
            }
        }
    }

    /// Records the end of an attempt, if the row is still ours (same owner, same attempt,
    /// still sending). Returns whether it was.
    async fn finish(
        &self,
        msg: &Claimed,
        status: OutboxStatus,
        provider_msg_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        store::outbox::finish(
            &self.pool,
            self.token(msg),
            status,
            provider_msg_id,
            error,
            self.clock.now(),
        )
        .await
    }
}

enum Outcome {
    /// Accepted by the provider (and recorded).
    Sent,
    Retry,
    Failed,
    /// Taken over by another dispatcher before this one sent it.
    Lost,
    /// Given back unsent: the process is stopping.
    Released,
    /// Given back unsent until the quiet hours of its recipient's zone end.
    Held,
}

/// Runs `count` dispatchers, all waiting on `rate`, until `stop` turns true: first joins
/// the other sending instances (see [`RateShare::join`]), then renews the heartbeat every
/// [`HEARTBEAT`] while they run, and leaves when they have finished their rounds.
pub async fn run_dispatchers(
    count: u32,
    pool: PgPool,
    gateway: Arc<dyn Gateway>,
    clock: Arc<dyn Clock>,
    cfg: DispatchConfig,
    rate: Arc<RateShare>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if count == 0 {
        return;
    }
    if let Err(e) = rate.join(clock.now()).await {
        tracing::error!(error = %e, "could not register with the other sending instances");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let dispatcher = Dispatcher::sharing(
            pool.clone(),
            gateway.clone(),
            clock.clone(),
            cfg.clone(),
            rate.clone(),
        );
        tasks.spawn(dispatcher.run(stop.clone()));
    }
    tracing::info!(
        dispatchers = count,
        rate = rate.rate().get(),
        "sms dispatchers running"
    );
    loop {
        tokio::select! {
            // (the guard `wait_for` returns must not live across the select: not Send)
            _ = async {
                let _ = stop.wait_for(|stop| *stop).await;
            } => break,
            _ = tokio::time::sleep(HEARTBEAT) => {
                if let Err(e) = rate.heartbeat(clock.now()).await {
                    tracing::warn!(error = %e, "sms rate heartbeat failed; keeping the current share");
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    if let Err(e) = rate.leave().await {
        tracing::warn!(error = %e, "could not leave the sending instances");
    }
}

/// A delivery report as the store takes it.
fn stored_report(report: &DeliveryReport) -> store::outbox::Report<'_> {
    store::outbox::Report {
        provider: report.provider,
        message: match &report.message {
            MessageRef::Ours(id) => ReportRef::Ours(OutboxId(*id)),
            MessageRef::Provider(pid) => ReportRef::Provider(pid),
        },
        state: match report.state {
            DeliveryState::Sent => ReportState::Sent,
            DeliveryState::Delivered => ReportState::Delivered,
            DeliveryState::Failed => ReportState::Failed,
        },
        provider_status: &report.provider_status,
        reason: report.reason.as_deref(),
    }
}

/// Applies a delivery report: finds the message, moves its status forward only (reports can
/// come twice or out of order), keeps the provider's status and reason. Returns whether a
/// message was found.
pub async fn apply_delivery(
    conn: &mut sqlx::PgConnection,
    report: &DeliveryReport,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let found = store::outbox::apply_delivery(conn, &stored_report(report), now).await?;
    Ok(found.is_some())
}

/// Keeps a report that could not be applied yet, to be applied once its message is
/// recorded sent (`apply_early_reports`, after each round and when idle): one naming a
/// provider id no message has yet (Africa's Talking and Twilio name messages by their own
/// id, recorded right after the send), or one naming our id for a message handed to the
/// provider (a fast operator: still `sending` when the report was applied, perhaps `sent`
/// by now, since each statement sees what is committed when it starts). A report naming by our id a message that was never handed to the
/// provider (`queued`), or no message at all, is not kept: it could only cancel a message
/// before it goes out. A kept report that never finds its message is pruned after 7 days.
/// Returns whether it was kept.
pub async fn keep_early_report(
    conn: &mut sqlx::PgConnection,
    inbound_id: i64,
    report: &DeliveryReport,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    store::inbox::keep_early_report(conn, inbound_id, &stored_report(report), now).await
}

/// Applies the waiting early reports whose messages now have their provider ids.
pub async fn apply_early_reports(pool: &PgPool, now: DateTime<Utc>) -> Result<i32, sqlx::Error> {
    store::inbox::apply_early_reports(pool, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = DispatchConfig::default();
        assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(&cfg, 2, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&cfg, 3, 1.0), Duration::from_secs(20));
        assert_eq!(backoff(&cfg, 3, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(&cfg, 30, 1.0), Duration::from_secs(1800));
    }

    #[test]
    fn long_texts_are_cut_to_the_segment_limit_at_a_word() {
        let long = "слово ".repeat(100);
        let cut = fit_segments(long.trim(), 3);
        assert!(TextMeasure::of(&cut).sms_segments() <= 3);
        assert!(cut.ends_with("слово…"), "{cut}");
        assert_eq!(fit_segments("short", 1), "short");
    }

    #[test]
    fn a_stored_encoding_is_read_back_and_an_unknown_one_is_measured() {
        for e in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(stored_encoding(1, encoding_name(e), "hello"), e);
        }
        // not GSM-7 by default: the text says what it needs
        assert_eq!(stored_encoding(1, "UCS2 ", "Салом"), Encoding::Ucs2);
        assert_eq!(stored_encoding(1, "", "hello"), Encoding::Gsm7);
    }
}
