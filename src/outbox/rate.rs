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
//! less than allowed, never more).
//!
//! Why not one limiter in the database: a row every dispatcher locks per message would be
//! the outbox's bottleneck (thousands of messages a second); a share per instance costs one
//! statement every two seconds. Its limit: the instances' clocks must agree within a few
//! seconds (NTP), as heartbeats are compared with `STALE_AFTER`.

use std::{
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;

/// How often a sending instance renews its heartbeat and recomputes its share.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A heartbeat older than this no longer counts: that instance is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// A limiter for `rate` messages a second, with a burst of 1/50 of it. The margin to the
/// 5 % a provider tolerates is for what the provider sees: sends granted over slightly more
/// than a second can arrive within one (with 1/20 the benchmark measured 105.2 % once,
/// against 104.96 % granted).
fn limiter(rate: NonZeroU32) -> DefaultDirectRateLimiter {
    let burst = NonZeroU32::new((rate.get() / 50).max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// This instance's share of the provider's rate, and the limiter all its dispatchers use.
pub struct RateShare {
    total: NonZeroU32,
    coordination: Option<Coordination>,
    current: RwLock<(NonZeroU32, Arc<DefaultDirectRateLimiter>)>,
}

struct Coordination {
    pool: PgPool,
    instance: String,
    provider: &'static str,
}

impl RateShare {
    /// The whole rate for this process alone (tests, benchmarks, a single instance that
    /// does not coordinate).
    pub fn local(rate: NonZeroU32) -> Arc<RateShare> {
        Arc::new(RateShare {
            total: rate,
            coordination: None,
            current: RwLock::new((rate, Arc::new(limiter(rate)))),
        })
    }

    /// A share coordinated with the other instances sending through `provider` on this
    /// database. It starts at the whole rate; call [`RateShare::join`] before sending.
    pub fn coordinated(pool: PgPool, provider: &'static str, rate: NonZeroU32) -> Arc<RateShare> {
        let instance = format!("pid{}-{:016x}", std::process::id(), rand::random::<u64>());
        Arc::new(RateShare {
            total: rate,
            coordination: Some(Coordination {
                pool,
                instance,
                provider,
            }),
            current: RwLock::new((rate, Arc::new(limiter(rate)))),
        })
    }

    /// The limiter to wait on before each send.
    pub fn limiter(&self) -> Arc<DefaultDirectRateLimiter> {
        match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Messages a second this instance may send now.
    pub fn rate(&self) -> NonZeroU32 {
        match self.current.read() {
            Ok(c) => c.0,
            Err(poisoned) => poisoned.into_inner().0,
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
        let live: i64 = sqlx::query_scalar(
            "with me as (
                 insert into dispatcher_instances (instance_id, provider, started_at, heartbeat_at)
                 values ($1, $2, $3, $3)
                 on conflict (instance_id) do update set heartbeat_at = excluded.heartbeat_at
             )
             select 1 + count(*) from dispatcher_instances
              where provider = $2 and instance_id <> $1 and heartbeat_at > $4",
        )
        .bind(&c.instance)
        .bind(c.provider)
        .bind(now)
        .bind(now - stale)
        .fetch_one(&c.pool)
        .await?;
        let instances = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
        let share = NonZeroU32::new(self.total.get() / instances).unwrap_or(NonZeroU32::MIN);
        let changed = {
            let mut current = match self.current.write() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            if current.0 == share {
                false
            } else {
                *current = (share, Arc::new(limiter(share)));
                true
            }
        };
        if changed {
            tracing::info!(
                provider = c.provider,
                instances,
                rate = share.get(),
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
            sqlx::query("delete from dispatcher_instances where instance_id = $1")
                .bind(&c.instance)
                .execute(&c.pool)
                .await?;
        }
        Ok(())
    }
}
