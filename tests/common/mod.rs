//! Test harness: the real router over a fresh PostgreSQL database (from `#[sqlx::test]`),
//! a clock the test moves, and a few fixtures with known figures.

#![allow(dead_code)]

use std::{path::Path, sync::Arc};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use chrono::{TimeZone, Utc};
use hashar::{
    app::{load_checked_menus, AppState},
    clock::ManualClock,
    config::Config,
    http::router,
};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    pub clock: ManualClock,
    /// The server's hop cache, following the test's database until its pool closes.
    pub cache: hashar::cache::Cache,
    /// The codes the server makes ahead for its USSD pledges.
    pub pledge_codes: hashar::store::pledge_codes::PledgeCodes,
}

/// The same state the test app runs with (its clock, the test config), to call a worker's
/// or the scheduler's work directly.
pub fn state_of(app: &TestApp) -> AppState {
    let config = test_config();
    let menus = load_checked_menus(&config).expect("menus pass the check");
    AppState::with_clock(app.pool.clone(), menus, config, Arc::new(app.clock.clone()))
        .expect("valid settings")
}

/// A form body with these fields, as an aggregator encodes it.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub fn test_config() -> Config {
    let mut config = Config::from_env();
    config.menus_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("menus");
    config.default_language = hashar::domain::Language::Tg;
    config.hotline = Some("1313".into());
    config.max_pledge = 100_000.into();
    config.ussd_session_ttl_secs = 300;
    // Generous, so that no test depends on the machine's speed; a test of the deadline
    // itself sets its own.
    config.db_timeout_ms = 30_000;
    // Tests that are not about the cap on replies to unregistered numbers (SMS pumping)
    // text from such numbers more often than it allows; the cap's tests set their own.
    config.sms_unknown_replies_per_hour = 100;
    config
}

pub async fn app(pool: PgPool) -> TestApp {
    app_with(pool, test_config()).await
}

pub async fn app_with(pool: PgPool, config: Config) -> TestApp {
    let api = pool.clone();
    app_with_pools(pool, api, config).await
}

/// The pools a server builds (`hashar::store::pool::pools`: its sizes, timeouts and session settings)
/// over the test's database, instead of the test's own pool.
pub async fn app_as_served(pool: PgPool, config: Config) -> TestApp {
    let options = (*pool.connect_options()).clone();
    app_served_over(&options, pool, config).await
}

/// [`app_as_served`] with the server's pools connecting with `options` (through a proxy,
/// say) to the test's database; fixtures and checks go through `pool` directly.
pub async fn app_served_over(
    options: &sqlx::postgres::PgConnectOptions,
    pool: PgPool,
    config: Config,
) -> TestApp {
    let pools = hashar::store::pool::pools(options, &config);
    let mut app = app_following(pools.webhooks, pools.api, config, &pool).await;
    // fixtures and checks go through the test's pool, apart from the server's
    app.pool = pool;
    app
}

pub async fn app_with_pools(pool: PgPool, api: PgPool, config: Config) -> TestApp {
    let test_pool = pool.clone();
    app_following(pool, api, config, &test_pool).await
}

/// The server's state; its hop cache follows the database until `test_pool` (the one
/// `#[sqlx::test]` closes before dropping the database) closes, and serves before the
/// first request.
async fn app_following(pool: PgPool, api: PgPool, config: Config, test_pool: &PgPool) -> TestApp {
    let menus = load_checked_menus(&config).expect("menus pass the check");
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
            .single()
            .expect("valid time"),
    );
    let state = AppState::with_clock(pool.clone(), menus, config, Arc::new(clock.clone()))
        .expect("valid settings")
        .with_api_pool(api);
    // Serving before the first request, unless the database cannot be reached (a test of
    // pages that read nothing, over a pool that never connects): then every hop reads the
    // database, as without a cache. `tests/ussd_cache.rs` checks that its apps serve.
    let closed = test_pool.close_event();
    if state.follow_database(closed).is_some() {
        state.cache.ready(std::time::Duration::from_secs(30)).await;
    }
    TestApp {
        cache: state.cache.clone(),
        pledge_codes: state.pledge_codes.clone(),
        router: router(state),
        pool,
        clock,
    }
}

impl TestApp {
    /// One Africa's Talking USSD callback; returns the status and the body.
    pub async fn hop(&self, session: &str, phone: &str, text: &str) -> (StatusCode, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sessionId", session)
            .append_pair("serviceCode", "*384*4274#")
            .append_pair("phoneNumber", phone)
            .append_pair("networkCode", "43604")
            .append_pair("text", text)
            .finish();
        self.post_form("/webhooks/africastalking/ussd", body).await
    }

    /// An Africa's Talking inbound SMS.
    pub async fn text(&self, id: &str, from: &str, text: &str) -> StatusCode {
        let body = form(&[
            ("id", id),
            ("from", from),
            ("to", "4274"),
            ("text", text),
            ("date", "2026-11-28T09:00:00Z"),
        ]);
        self.post_form("/webhooks/africastalking/sms", body).await.0
    }

    pub async fn post_form(&self, path: &str, body: String) -> (StatusCode, String) {
        let req = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        self.send(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        // What the test changed in the database before this request is in the hop cache (as
        // it is within milliseconds in a server); a failure to sync leaves it as it is.
        let _ = self
            .cache
            .sync(&self.pool, std::time::Duration::from_secs(30))
            .await;
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        // The sessions this request's effects left to this process to announce are
        // announced (as they are within milliseconds in a server) before the test goes on.
        let _ = self
            .cache
            .announced(std::time::Duration::from_secs(30))
            .await;
        (
            status,
            String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        )
    }

    /// An admin API call: a JSON body (or none) and a bearer token (or none); the status
    /// and the answer as JSON (`Null` when it is not JSON).
    ///
    /// A POST carries a fresh `Idempotency-Key` (as a client library would send), so routes
    /// that require one are called as a client would call them; [`TestApp::api_keyed`]
    /// sends a chosen key, or none.
    pub async fn api(
        &self,
        method: &str,
        uri: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let key = (method == "POST").then(|| {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            format!(
                "test-{}",
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        });
        let (status, _, body) = self
            .api_keyed(method, uri, body, token, key.as_deref())
            .await;
        (status, body)
    }

    /// An admin API call with a chosen `Idempotency-Key` (or none); the status, whether the
    /// answer was replayed, and the answer as JSON.
    pub async fn api_keyed(
        &self,
        method: &str,
        uri: &str,
        body: Option<&serde_json::Value>,
        token: Option<&str>,
        key: Option<&str>,
    ) -> (StatusCode, bool, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("answer");
        let status = resp.status();
        let replayed = resp.headers().contains_key("idempotent-replayed");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            replayed,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Walks a session input by input (as the aggregator would send it) and returns the
    /// last screen.
    pub async fn session(&self, session: &str, phone: &str, inputs: &[&str]) -> String {
        let (status, mut body) = self.hop(session, phone, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for i in 1..=inputs.len() {
            let (status, b) = self.hop(session, phone, &inputs[..i].join("*")).await;
            assert_eq!(status, StatusCode::OK, "{b}");
            body = b;
        }
        body
    }
}

/// Ids of the fixture rows.
pub struct Seed {
    pub community: i64,
    pub other_community: i64,
    /// 1:1 match, no cap, target 10 000 TJS.
    pub bridge: i64,
    /// 2:1 match, cap 3 000, target 20 000 TJS.
    pub roof: i64,
    /// Closed project in the same community.
    pub closed: i64,
    pub household: i64,
}

pub const PHONE_TG: &str = "+992901112233";
pub const PHONE_RU: &str = "+992911112233";
pub const PHONE_EN: &str = "+992921112233";
pub const PHONE_NO_LANGUAGE: &str = "+992931112233";

pub async fn seed(pool: &PgPool) -> Seed {
    let community: i64 = sqlx::query_scalar(
        "insert into communities (code, district, name_tg, name_ru, name_en)
         values ('anzob', 'Ayni', 'Анзоб', 'Анзоб', 'Anzob') returning id",
    )
    .fetch_one(pool)
    .await
    .expect("community");
    let other_community: i64 = sqlx::query_scalar(
        "insert into communities (code, district, name_tg, name_ru, name_en)
         values ('sarazm', 'Panjakent', 'Саразм', 'Саразм', 'Sarazm') returning id",
    )
    .fetch_one(pool)
    .await
    .expect("community");
    let project = |code: &'static str,
                   tg: &'static str,
                   ru: &'static str,
                   en: &'static str,
                   target: &'static str,
                   ratio: &'static str,
                   cap: Option<&'static str>,
                   status: &'static str,
                   community: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, match_cap, status, closed_at)
                 values ($1, $2, 'infrastructure', $3, $4, $5, $6::numeric, $7::numeric, $8::numeric, $9,
                         case when $9 = 'closed' then timestamptz '2026-01-01 00:00Z' end) returning id",
            )
            .bind(community)
            .bind(code)
            .bind(tg)
            .bind(ru)
            .bind(en)
            .bind(target)
            .bind(ratio)
            .bind(cap)
            .bind(status)
            .fetch_one(&pool)
            .await
            .expect("project")
        }
    };
    let bridge = project(
        "BRIDGE", "Пул", "Мост", "Bridge", "10000", "1", None, "open", community,
    )
    .await;
    let roof = project(
        "ROOF",
        "Боми мактаб",
        "Крыша школы",
        "School roof",
        "20000",
        "2",
        Some("3000"),
        "open",
        community,
    )
    .await;
    let closed = project(
        "OLD",
        "Кӯҳна",
        "Старый",
        "Old",
        "5000",
        "1",
        None,
        "closed",
        community,
    )
    .await;
    project(
        "WATER",
        "Об",
        "Вода",
        "Water",
        "8000",
        "1",
        None,
        "open",
        other_community,
    )
    .await;
    let household = add_household(pool, community, Some("tg"), PHONE_TG).await;
    add_household(pool, community, Some("ru"), PHONE_RU).await;
    add_household(pool, community, Some("en"), PHONE_EN).await;
    add_household(pool, community, None, PHONE_NO_LANGUAGE).await;
    Seed {
        community,
        other_community,
        bridge,
        roof,
        closed,
        household,
    }
}

pub async fn add_household(
    pool: &PgPool,
    community: i64,
    language: Option<&str>,
    phone: &str,
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "insert into households (community_id, language) values ($1, $2) returning id",
    )
    .bind(community)
    .bind(language)
    .fetch_one(pool)
    .await
    .expect("household");
    sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
        .bind(phone)
        .bind(id)
        .execute(pool)
        .await
        .expect("phone");
    id
}

pub async fn receive(pool: &PgPool, project: i64, amount: &str) {
    sqlx::query(
        "insert into receipts (project_id, amount, currency, received_on, method, recorded_by)
         values ($1, $2::numeric, 'TJS', '2026-11-01', 'cash', 'test')",
    )
    .bind(project)
    .bind(amount)
    .execute(pool)
    .await
    .expect("receipt");
}

/// API tokens of four coordinators of the seeded communities.
pub struct Tokens {
    pub admin: String,
    /// Anzob (the seed's `community`) only.
    pub own: String,
    /// Sarazm (the seed's `other_community`) only.
    pub other: String,
    /// Anzob and Sarazm.
    pub both: String,
}

pub async fn tokens(pool: &PgPool) -> Tokens {
    let add = |name: &'static str,
               phone: &'static str,
               communities: &'static [&'static str],
               admin: bool| {
        let pool = pool.clone();
        async move {
            let communities: Vec<String> = communities.iter().map(|c| (*c).to_owned()).collect();
            hashar::api::auth::add_coordinator(&pool, name, phone, &communities, admin)
                .await
                .expect("coordinator")
                .2
        }
    };
    Tokens {
        admin: add("Admin", "+992900000301", &[], true).await,
        own: add("Anzob", "+992900000302", &["anzob"], false).await,
        other: add("Sarazm", "+992900000303", &["sarazm"], false).await,
        both: add("District", "+992900000304", &["anzob", "sarazm"], false).await,
    }
}

/// An admin API call with a token; a `Null` body sends none.
pub async fn call(
    app: &TestApp,
    method: &str,
    uri: &str,
    body: serde_json::Value,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    app.api(method, uri, (!body.is_null()).then_some(&body), Some(token))
        .await
}

/// Closes a project at `at` (as a coordinator would, mid-session for a caller).
pub async fn close_project(pool: &PgPool, project: i64, at: chrono::DateTime<Utc>) {
    sqlx::query("update projects set status = 'closed', closed_at = $2 where id = $1")
        .bind(project)
        .bind(at)
        .execute(pool)
        .await
        .expect("close");
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count query")
}

/// The app over each database of [`dead_database_ports`], with what it is: its pool gives
/// up a connection attempt after 300 ms, and each request after `db_timeout_ms`. The
/// silent database lives as long as the returned task.
pub async fn apps_on_dead_databases(
    db_timeout_ms: u64,
) -> (Vec<(TestApp, &'static str)>, tokio::task::JoinHandle<()>) {
    let (ports, holder) = dead_database_ports().await;
    let mut apps = Vec::new();
    for (port, what) in ports {
        let mut config = test_config();
        config.db_timeout_ms = db_timeout_ms;
        // nothing to follow: every hop goes to the (dead) database
        config.ussd_cache = false;
        let dead = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_millis(300))
            .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/nothing"))
            .expect("lazy pool");
        apps.push((app_with(dead, config).await, what));
    }
    (apps, holder)
}

/// Runs `request` while another transaction holds the lock `lock_sql` takes (a stalled
/// database, as far as the request can tell), checks it was answered within 2 s, and
/// releases the lock.
pub async fn while_locked<T>(
    pool: &PgPool,
    lock_sql: &str,
    request: impl std::future::Future<Output = T>,
) -> T {
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query(lock_sql)
        .execute(&mut *locker)
        .await
        .expect("lock");
    let started = std::time::Instant::now();
    let answer = request.await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "{lock_sql}: took {took:?}"
    );
    locker.rollback().await.expect("unlock");
    answer
}

/// Two databases that are down: a port that accepts connections and never answers, and
/// one that refuses them; `(port, "silent" | "refused")`. The silent one lives as long as
/// the returned task.
pub async fn dead_database_ports() -> ([(u16, &'static str); 2], tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    ([(silent_port, "silent"), (refused_port, "refused")], holder)
}
