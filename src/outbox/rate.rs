//! One provider rate limit for the whole deployment, however many instances send.
//!
//! `HASHAR_SMS_RATE` is what the provider allows. Within a process, all dispatcher tasks
//! share one limiter. Across processes, each instance that sends registers itself in
//! `dispatcher_instances` and renews a heartbeat every [`HEARTBEAT`]; its share of the rate
//! is the rate divided by the instances of the same provider whose heartbeat is younger
//! than [`STALE_AFTER`]. An instance that joins waits one heartbeat period (plus a margin)
//! before sending, so the others have lowered their shares first: the total stays within the
//! limit while instances come and go. One that stops leaves the table; one that dies ages
//! out, and the others raise their shares at their next heartbeat (a few seconds of sending
//! less than allowed, never more). A share can be less than one message a second (more
//! instances than the rate): it is then one message every `instances / rate` seconds, so
//! the shares never add up to more than the rate.
//!
//! The share also bounds what the dispatchers claim: a process never holds more messages
//! claimed than its share sends in half a lease ([`RateShare::claim_budget`]), so a claimed
//! message does not wait in the limiter until its lease runs out.
//!
//! Why not one limiter in the database: a row every dispatcher locks per message would be
//! the outbox's bottleneck (thousands of messages a second); a share per instance costs one
//! statement every two seconds. Its limit: the instances' clocks must agree within a few
//! seconds (NTP), as heartbeats are compared with `STALE_AFTER`.

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;

use crate::store;

/// How often a sending instance renews its heartbeat and recomputes its share.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A heartbeat older than this no longer counts: that instance is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// The part of a lease that the messages claimed may take at the current share: claims are
/// sized so that every claimed message is sent within half its lease (see
/// [`RateShare::reserve`]).
pub const CLAIM_FRACTION_OF_LEASE: f64 = 0.5;

/// The limiter's quota for one instance's share: `total` messages a second split between
/// `instances`. The share may be less than one message a second (more instances than the
/// rate): the quota is then one message every `instances / total` seconds. The interval is
/// rounded up to the nanosecond, so the instances together never exceed `total`.
///
/// The burst is 1/50 of the share (at least 1). The margin to the 5 % a provider tolerates
/// is for what the provider sees: sends granted over slightly more than a second can arrive
/// within one (with 1/20 the benchmark measured 105.2 % once, against 104.96 % granted).
pub(crate) fn quota(total: NonZeroU32, instances: u32) -> Quota {
    let instances = u64::from(instances.max(1));
    let total = u64::from(total.get());
    let nanos = (instances * 1_000_000_000).div_ceil(total).max(1);
    let burst = u32::try_from(total / instances / 50).unwrap_or(u32::MAX);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(Duration::from_nanos(nanos))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// This instance's share of the provider's rate, the limiter all its dispatchers use, and
/// the messages they have claimed and not yet finished.
pub struct RateShare {
    total: NonZeroU32,
    coordination: Option<Coordination>,
    current: RwLock<Current>,
    /// Messages claimed by this process's dispatchers and not yet finished.
    outstanding: Mutex<usize>,
    /// Woken when claimed messages finish (room for more claims).
    freed: tokio::sync::Notify,
}

#[derive(Clone)]
struct Current {
    instances: u32,
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl Current {
    fn new(total: NonZeroU32, instances: u32) -> Current {
        Current {
            instances,
            limiter: Arc::new(RateLimiter::direct(quota(total, instances))),
        }
    }
}

struct Coordination {
    pool: PgPool,
    instance: String,
    provider: &'static str,
}

impl RateShare {
    fn with(total: NonZeroU32, coordination: Option<Coordination>) -> Arc<RateShare> {
        Arc::new(RateShare {
            total,
            coordination,
            current: RwLock::new(Current::new(total, 1)),
            outstanding: Mutex::new(0),
            freed: tokio::sync::Notify::new(),
        })
    }

    /// The whole rate for this process alone (tests, benchmarks, a single instance that
    /// does not coordinate).
    pub fn local(rate: NonZeroU32) -> Arc<RateShare> {
        RateShare::with(rate, None)
    }

    /// A share coordinated with the other instances sending through `provider` on this
    /// database. It starts at the whole rate; call [`RateShare::join`] before sending.
    pub fn coordinated(pool: PgPool, provider: &'static str, rate: NonZeroU32) -> Arc<RateShare> {
        let instance = format!("pid{}-{:016x}", std::process::id(), rand::random::<u64>());
        RateShare::with(
            rate,
            Some(Coordination {
                pool,
                instance,
                provider,
            }),
        )
    }

    fn current(&self) -> Current {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The limiter to wait on before each send.
    pub fn limiter(&self) -> Arc<DefaultDirectRateLimiter> {
        self.current().limiter
    }

    /// Messages a second this instance may send now, exactly (less than 1 when there are
    /// more sending instances than the rate).
    pub fn per_second(&self) -> f64 {
        f64::from(self.total.get()) / f64::from(self.current().instances.max(1))
    }

    /// Whole messages a second this instance may send now, rounded down (at least 1: for
    /// logs; the limiter and [`RateShare::per_second`] have the exact share).
    pub fn rate(&self) -> NonZeroU32 {
        let share = self.total.get() / self.current().instances.max(1);
        NonZeroU32::new(share).unwrap_or(NonZeroU32::MIN)
    }

    /// How many messages this process's dispatchers may hold claimed at once: what the
    /// current share sends in [`CLAIM_FRACTION_OF_LEASE`] of `lease` (at least one).
    pub fn claim_budget(&self, lease: Duration) -> usize {
        let n = self.per_second() * lease.as_secs_f64() * CLAIM_FRACTION_OF_LEASE;
        // (f64 → usize saturates; NaN gives 0)
        (n.floor() as usize).max(1)
    }

    /// Reserves room for up to `want` claimed messages within [`RateShare::claim_budget`];
    /// returns how many (0 when the process holds its whole budget already). Each one
    /// reserved is given back with [`RateShare::release`].
    pub fn reserve(&self, want: usize, lease: Duration) -> usize {
        let budget = self.claim_budget(lease);
        let mut held = match self.outstanding.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = want.min(budget.saturating_sub(*held));
        *held += n;
        n
    }

    /// Gives back `n` reserved messages (finished, or not claimed after all).
    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        {
            let mut held = match self.outstanding.lock() {
                Ok(h) => h,
                Err(poisoned) => poisoned.into_inner(),
            };
            *held = held.saturating_sub(n);
        }
        self.freed.notify_waiters();
    }

    /// Reserves at least one and up to `want` claimed messages, waiting while the process
    /// holds its whole budget.
    pub async fn reserve_waiting(&self, want: usize, lease: Duration) -> usize {
        if want == 0 {
            return 0;
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let n = self.reserve(want, lease);
            if n > 0 {
                return n;
            }
            freed.await;
        }
    }

    /// Registers this instance (or renews its heartbeat) and recomputes its share from the
    /// live instances. Returns how many instances share the rate (1 without coordination).
    pub async fn heartbeat(&self, now: DateTime<Utc>) -> Result<u32, sqlx::Error> {
        let Some(c) = &self.coordination else {
            return Ok(1);
        };
        let stale =
            chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::seconds(10));
        let live =
            store::outbox::heartbeat(&c.pool, &c.instance, c.provider, now, now - stale).await?;
        let instances = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
        let changed = {
            let mut current = match self.current.write() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if current.instances == instances {
                false
            } else {
                *current = Current::new(self.total, instances);
                true
            }
        };
        if changed {
            tracing::info!(
                provider = c.provider,
                instances,
                per_sec = self.per_second(),
                of = self.total.get(),
                "this instance's share of the SMS rate changed"
            );
        }
        Ok(instances)
    }

    /// Before the first send: registers, and if other instances are sending, waits until
    /// they have seen this one and lowered their shares.
    pub async fn join(&self, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        if self.heartbeat(now).await? > 1 {
            tokio::time::sleep(HEARTBEAT + Duration::from_secs(1)).await;
        }
        Ok(())
    }

    /// Leaves the table (at shutdown), so the others may raise their shares at once.
    pub async fn leave(&self) -> Result<(), sqlx::Error> {
        if let Some(c) = &self.coordination {
            store::outbox::leave(&c.pool, &c.instance).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// The messages a second `instances` instances with `quota(total, instances)` send
    /// together, sustained.
    fn together(total: u32, instances: u32) -> f64 {
        let q = quota(NonZeroU32::new(total).expect("non-zero"), instances);
        f64::from(instances) / q.replenish_interval().as_secs_f64()
    }

    #[test]
    fn the_shares_never_add_up_to_more_than_the_rate() {
        for total in [1, 2, 3, 7, 20, 33, 100, 997, 2500] {
            for instances in 1..=120 {
                let sum = together(total, instances);
                assert!(
                    sum <= f64::from(total) * (1.0 + 1e-12),
                    "{instances} instances at {total}/s send {sum}/s"
                );
                // and nothing is given away for nothing (within rounding to the nanosecond)
                assert!(sum > f64::from(total) * 0.999, "{total} {instances}: {sum}");
            }
        }
        // five instances on 2 a second: one message every 2.5 s each (each had 1/s before)
        let q = quota(NonZeroU32::new(2).expect("non-zero"), 5);
        assert_eq!(q.replenish_interval(), Duration::from_millis(2500));
        assert_eq!(q.burst_size().get(), 1);
    }

    #[test]
    fn a_share_below_one_a_second_waits_its_interval() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(
            quota(NonZeroU32::new(2).expect("non-zero"), 5),
            clock.clone(),
        );
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        clock.advance(Duration::from_millis(2499));
        assert!(limiter.check().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
    }

    #[test]
    fn claims_fit_in_half_a_lease_at_the_share() {
        let share = RateShare::local(NonZeroU32::new(20).expect("non-zero"));
        let lease = Duration::from_secs(60);
        assert_eq!(share.claim_budget(lease), 600);
        assert_eq!(share.claim_budget(Duration::from_millis(100)), 1);
        // reservations of all dispatchers of the process count against one budget
        assert_eq!(share.reserve(500, lease), 500);
        assert_eq!(share.reserve(500, lease), 100);
        assert_eq!(share.reserve(1, lease), 0);
        share.release(150);
        assert_eq!(share.reserve(500, lease), 150);
    }
}
