//! Signing in to the console, sessions and who is acting (§5 of the console design).
//!
//! - **Passwords** are argon2id hashes in `coordinators.password_hash`, set with `hashar
//!   coordinator set-password` ([`set_password`], at least [`MIN_PASSWORD`] characters). They
//!   are checked in `spawn_blocking` behind a semaphore of two, so sign-ins cannot take every
//!   core. Five wrong passwords in a row lock the account for 15 minutes, in database
//!   columns like the PIN's (restarts and other instances see them); per client address, a
//!   `governor` limit of 10 tries a minute. An unknown phone gets the same answer after the
//!   same work (a dummy hash is checked).
//! - **Sessions** live server-side in `tower_sessions.session` (`tower-sessions` with
//!   [`PgStore`]); the cookie is [`SESSION_COOKIE`] (`Secure`, `HttpOnly`, `SameSite=Strict`,
//!   `Path=/`), over after 30 minutes without a request and 12 hours after sign-in. A session
//!   holds only [`SignedIn`]: staff id, epoch, sign-in time, CSRF token and language; its id
//!   is new at sign-in (`cycle_id`) and the session is deleted at sign-out (`flush`).
//! - **Each request re-reads the person** ([`Staff`], one query by primary key): someone
//!   disabled, or whose epoch went up ("sign out everywhere"), is signed out at once.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::{request::Parts, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tower_sessions::{
    cookie::{time::Duration as CookieDuration, SameSite},
    session::{Id, Record},
    session_store::{self, SessionStore},
    Expiry, Session, SessionManagerLayer,
};

use super::{csrf, timing, Console};
use crate::{
    domain::{Language, Phone},
    service::actor::Actor,
    store::{staff, CoordinatorId},
};

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-hashar";
/// A session is over after this many minutes without a request…
pub const INACTIVITY_MINUTES: i64 = 30;
/// …and this many hours after sign-in, whatever happens.
pub const ABSOLUTE_HOURS: i64 = 12;
/// Wrong passwords in a row that lock an account…
pub const PASSWORD_TRIES: i32 = 5;
/// …for this many minutes.
pub const PASSWORD_LOCK_MINUTES: i64 = 15;
/// The shortest password `set-password` accepts (characters).
pub const MIN_PASSWORD: usize = 10;
/// Password checks running at once.
const VERIFYING_AT_ONCE: usize = 2;
/// The key of [`SignedIn`] in the session.
const SESSION_KEY: &str = "signed_in";

/// What a session holds, and nothing more.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SignedIn {
    pub staff: i64,
    pub epoch: i32,
    /// Unix seconds.
    pub since: i64,
    pub csrf: String,
    pub language: Language,
}

/// Why a password could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("no member of staff has this phone number")]
    NoSuchPerson,
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// An argon2id hash of `password` (argon2's defaults: argon2id, 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    use argon2::{
        password_hash::{rand_core::OsRng, SaltString},
        Argon2, PasswordHasher,
    };
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?
        .to_string())
}

fn password_matches(password: &str, hash: &str) -> bool {
    use argon2::{password_hash::PasswordHash, Argon2, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Sets the console password of the member of staff whose phone is `phone` (no failures,
/// no lock).
pub async fn set_password(
    pool: &PgPool,
    phone: &Phone,
    password: &str,
) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))??;
    if staff::set_password_hash(pool, phone, &hash).await? {
        Ok(())
    } else {
        Err(PasswordError::NoSuchPerson)
    }
}

/// The application's clock as `governor` reads time: the throttle counts the minutes the
/// server's clock counts (the tests' clock only moves when a test moves it, so "ten tries a
/// minute" does not depend on how fast the machine checks ten passwords).
#[derive(Clone)]
pub struct AppClock(pub Arc<dyn crate::clock::Clock>);

impl governor::clock::Clock for AppClock {
    /// Time since the Unix epoch (`Duration` is one of governor's references).
    type Instant = std::time::Duration;

    fn now(&self) -> std::time::Duration {
        self.0
            .now()
            .signed_duration_since(DateTime::<Utc>::UNIX_EPOCH)
            .to_std()
            .unwrap_or_default()
    }
}

type Throttle = RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    AppClock,
    governor::middleware::NoOpMiddleware<std::time::Duration>,
>;

/// The sign-in machinery shared by the console's handlers.
pub struct Auth {
    verifying: Semaphore,
    throttle: Throttle,
}

impl Auth {
    /// Sign-in checks allowing `tries_per_minute` from one address (a burst of that many,
    /// then one every minute / `tries_per_minute`), counted by `clock` (the application's).
    pub fn new(clock: Arc<dyn crate::clock::Clock>, tries_per_minute: u32) -> Auth {
        let per_minute = NonZeroU32::new(tries_per_minute).unwrap_or(NonZeroU32::MIN);
        Auth {
            verifying: Semaphore::new(VERIFYING_AT_ONCE),
            throttle: RateLimiter::new(
                Quota::per_minute(per_minute),
                governor::state::keyed::DefaultKeyedStateStore::default(),
                AppClock(clock),
            ),
        }
    }

    /// Whether `ip` may try to sign in now (counts the try).
    pub fn may_try(&self, ip: IpAddr) -> bool {
        self.throttle.check_key(&ip).is_ok()
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is none (the
    /// same work either way); `false` for a missing hash.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.verifying.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        tokio::task::spawn_blocking(move || {
            let hash = match hash {
                Some(h) => h,
                None => dummy_hash().to_owned(),
            };
            password_matches(&password, &hash) && known
        })
        .await
        .unwrap_or(false)
    }
}

/// A hash of a random password, checked for unknown phones so that they take as long.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        let text: String = random.iter().map(|b| format!("{b:02x}")).collect();
        hash_password(&text).unwrap_or_default()
    })
}

/// The sessions in `tower_sessions.session` (the table and the work of
/// `tower-sessions-sqlx-store`'s `PostgresStore`, written here because that crate turns on
/// sqlx's `time` feature, which makes every `query!` in the crate want
/// `time::OffsetDateTime` for `timestamptz` instead of chrono's type). A record is stored as
/// JSON; its id is the cookie's value.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn new(pool: PgPool) -> PgStore {
        PgStore { pool }
    }
}

fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn expiry(record: &Record) -> DateTime<Utc> {
    DateTime::from_timestamp(record.expiry_date.unix_timestamp(), 0).unwrap_or(DateTime::UNIX_EPOCH)
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

#[async_trait::async_trait]
impl SessionStore for PgStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new id until one is free (a clash of 128 random bits is not expected).
        loop {
            let data = encode(record)?;
            let id = record.id.to_string();
            if timing::db(staff::session_insert(
                &self.pool,
                &id,
                &data,
                expiry(record),
            ))
            .await
            .map_err(backend)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = encode(record)?;
        timing::db(staff::session_save(
            &self.pool,
            &record.id.to_string(),
            &data,
            expiry(record),
        ))
        .await
        .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let data = timing::db(staff::session_load(&self.pool, &id.to_string()))
            .await
            .map_err(backend)?;
        data.map(|d| {
            serde_json::from_slice(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        timing::db(staff::session_delete(&self.pool, &id.to_string()))
            .await
            .map_err(backend)
    }
}

/// The session layer of the console's router.
pub fn session_layer(pool: PgPool) -> SessionManagerLayer<PgStore> {
    SessionManagerLayer::new(PgStore::new(pool))
        .with_name(SESSION_COOKIE)
        .with_secure(true)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(CookieDuration::minutes(
            INACTIVITY_MINUTES,
        )))
}

/// Deletes the expired sessions (the scheduler runs it now and then).
pub async fn delete_expired_sessions(pool: &PgPool) -> Result<(), sqlx::Error> {
    staff::delete_expired_sessions(pool).await
}

/// The middleware between the session layer and the CSRF check: puts a signed-in session's
/// [`SignedIn`] and its CSRF token ([`csrf::SessionToken`]) in the request's extensions.
pub async fn load_session(session: Session, mut req: Request, next: Next) -> Response {
    match session.get::<SignedIn>(SESSION_KEY).await {
        Ok(Some(signed)) => {
            if let Some(token) = csrf::Token::parse(&signed.csrf) {
                req.extensions_mut().insert(csrf::SessionToken(token));
            }
            req.extensions_mut().insert(signed);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "console: reading the session failed"),
    }
    next.run(req).await
}

/// Starts a signed-in session for `staff`: a new session id, a new CSRF token.
pub async fn start_session(
    session: &Session,
    staff: CoordinatorId,
    epoch: i32,
    now: DateTime<Utc>,
    language: Language,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    let signed = SignedIn {
        staff: staff.0,
        epoch,
        since: now.timestamp(),
        csrf: csrf::Token::generate().as_str().to_owned(),
        language,
    };
    session.insert(SESSION_KEY, signed).await
}

/// Replaces the session's language (the `?lang=` of a signed-in page).
pub async fn set_session_language(session: &Session, signed: &SignedIn, language: Language) {
    let mut signed = signed.clone();
    signed.language = language;
    if let Err(e) = session.insert(SESSION_KEY, signed).await {
        tracing::warn!(error = %e, "console: saving the language failed");
    }
}

/// The client's address (from the connection; `0.0.0.0` when the server gave none).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// A signed-in member of staff, re-read for this request; without one, a handler taking it
/// answers 303 to the sign-in page.
pub struct Staff {
    pub actor: Actor,
    pub name: String,
    pub signed: SignedIn,
    pub session: Session,
}

impl FromRequestParts<Console> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(session) = parts.extensions.get::<Session>().cloned() else {
            return Err(to_login());
        };
        let Some(signed) = parts.extensions.get::<SignedIn>().cloned() else {
            return Err(to_login());
        };
        let end = |why: &'static str| {
            let session = session.clone();
            async move {
                tracing::info!(why, "console: session over");
                if let Err(e) = session.flush().await {
                    tracing::warn!(error = %e, "console: ending a session failed");
                }
                to_login()
            }
        };
        let now = console.app.clock.now().timestamp();
        if now - signed.since > ABSOLUTE_HOURS * 3600 || now < signed.since - 300 {
            return Err(end("twelve hours after sign-in").await);
        }
        let person = match timing::db(staff::session_person(
            &console.app.pool,
            CoordinatorId(signed.staff),
        ))
        .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "console: reading the signed-in person failed");
                return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        };
        let Some(person) = person else {
            return Err(end("person gone").await);
        };
        if person.disabled {
            return Err(end("person disabled").await);
        }
        if person.session_epoch != signed.epoch {
            return Err(end("signed out everywhere").await);
        }
        let actor = Actor::new(staff::TokenHolder {
            coordinator: person.id,
            role: person.role,
            communities: person.communities,
        });
        Ok(Staff {
            actor,
            name: person.name,
            signed,
            session,
        })
    }
}

/// Whether `until` is still ahead of `now`.
pub fn locked(until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    until.filter(|u| *u > now)
}
