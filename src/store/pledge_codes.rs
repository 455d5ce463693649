//! Pledge codes made by this process ahead of the pledges that take them (issue 12).
//!
//! A pledge's code is FF1 (AES-256) of `1,000,000 + n`, `n` from `pledge_code_seq`, under
//! the database's 256-bit secret (`code_secret`, migration `20261130000300_fpe_codes`),
//! walked again while below 1,000,000: 7 digits, unique by construction, unpredictable
//! without the secret. In PL/pgSQL (`new_pledge_code`) that costs about a tenth of a USSD
//! pledge's database time (ten AES calls through pgcrypto and the rounds' arithmetic). The
//! USSD pledge statement now hands the trigger a code made here instead
//! (`hashar.pledge_code`, migration `20261202000200`): numbers are reserved from the same
//! sequence in batches, off the hop's path, and encrypted with the RustCrypto `fpe` and `aes`
//! crates, which `tests/codes.rs` checks the SQL function against. The trigger takes the code
//! only if no pledge has it (codes issued before the FF1 scheme) and otherwise makes one
//! itself, as it does for every other insert path.
//!
//! Nothing waits for this: a pledge that finds no code ready leaves it to the trigger, and
//! the next batch is reserved in the background. Reserved numbers that are never used (the
//! process stops, the pledge asks first) are gaps in the sequence, as a rolled-back insert
//! leaves; the codes stay unique.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use aes::Aes256;
use fpe::ff1::{FlexibleNumeralString, FF1};
use sqlx::PgPool;

/// Codes reserved a batch at a time (one round trip, off any hop's path).
const BATCH: i64 = 64;

/// A new batch is reserved when fewer than this are left.
const LOW: usize = 16;

/// After a failed batch, how long pledges leave their codes to the trigger before another
/// batch is tried (one warning per try, not one per pledge).
const RETRY: Duration = Duration::from_secs(10);

/// The codes' domain: 7 digits, never a leading zero.
const LOW_CODE: u64 = 1_000_000;
const DIGITS: usize = 7;

/// Why codes could not be made (the trigger then makes them, as before).
#[derive(Debug, thiserror::Error)]
pub enum CodesError {
    #[error("reading the code secret or reserving numbers: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the code secret is not a 256-bit key")]
    Secret,
    #[error("FF1 failed: {0}")]
    Ff1(String),
    #[error("the pledge code sequence is past the 7-digit codes")]
    Exhausted,
}

/// The codes ready for this process's pledges; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct PledgeCodes {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    /// A batch is being reserved.
    refilling: bool,
    /// No batch is tried before this (set after a failed one).
    not_before: Option<Instant>,
}

impl std::fmt::Debug for PledgeCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the codes themselves
        f.debug_struct("PledgeCodes")
            .field("ready", &self.state().ready.len())
            .finish()
    }
}

impl PledgeCodes {
    fn state(&self) -> MutexGuard<'_, State> {
        // a panic elsewhere while holding it leaves a queue of valid codes: keep using it
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A code for the next pledge, if one is ready; starts reserving the next batch from
    /// `pool` in the background when few are left. `None` leaves the code to the trigger.
    pub fn take(&self, pool: &PgPool) -> Option<String> {
        let (code, start) = {
            let mut state = self.state();
            let code = state.ready.pop_front();
            let start = state.ready.len() < LOW
                && !state.refilling
                && state.not_before.is_none_or(|t| Instant::now() >= t);
            state.refilling |= start;
            (code, start)
        };
        if start {
            let codes = self.clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let failed = codes.refill(&pool).await.err();
                if let Some(e) = &failed {
                    tracing::warn!(error = %e, retry_secs = RETRY.as_secs(), "could not make pledge codes ahead; the database makes them");
                }
                let mut state = codes.state();
                state.refilling = false;
                state.not_before = failed.map(|_| Instant::now() + RETRY);
            });
        }
        code
    }

    /// Reserves a batch of sequence numbers and encrypts them (what [`PledgeCodes::take`]
    /// starts in the background; public for tests). One round trip: the secret and the
    /// numbers together.
    pub async fn refill(&self, pool: &PgPool) -> Result<(), CodesError> {
        let batch = sqlx::query!(
            r#"select key, array(select nextval('pledge_code_seq') from generate_series(1, $1::bigint))
                   as "numbers!: Vec<i64>"
               from code_secret"#,
            BATCH
        )
        .fetch_one(pool)
        .await?;
        let ff1 = cipher(&batch.key)?;
        let codes = batch
            .numbers
            .into_iter()
            .map(|n| code_of(&ff1, n))
            .collect::<Result<Vec<_>, _>>()?;
        self.state().ready.extend(codes);
        Ok(())
    }
}

/// The code `new_pledge_code` makes for sequence number `n`: FF1-AES-256 of
/// `1,000,000 + n` (7 digits, empty tweak) under `key`, walked again while below 1,000,000.
pub fn pledge_code(key: &[u8], n: i64) -> Result<String, CodesError> {
    code_of(&cipher(key)?, n)
}

fn cipher(key: &[u8]) -> Result<FF1<Aes256>, CodesError> {
    FF1::<Aes256>::new(key, 10).map_err(|_| CodesError::Secret)
}

fn code_of(ff1: &FF1<Aes256>, n: i64) -> Result<String, CodesError> {
    let mut v = u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(LOW_CODE))
        .filter(|v| *v < 10 * LOW_CODE)
        .ok_or(CodesError::Exhausted)?;
    loop {
        let digits: Vec<u16> = format!("{v:0DIGITS$}")
            .bytes()
            .map(|b| u16::from(b - b'0'))
            .collect();
        let out = ff1
            .encrypt(&[], &FlexibleNumeralString::from(digits))
            .map_err(|e| CodesError::Ff1(format!("{e:?}")))?;
        v = Vec::<u16>::from(out)
            .iter()
            .fold(0, |acc, d| acc * 10 + u64::from(*d));
        if v >= LOW_CODE {
            return Ok(v.to_string());
        }
    }
}
