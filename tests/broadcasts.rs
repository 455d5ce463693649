//! A meeting notice to a few hundred households in mixed languages: preview, outbox rows,
//! sending, delivery reports, RSVPs, cancelling; schedules and quiet hours with a clock the
//! test moves.

mod common;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::*;
use hashar::{
    channels::{africastalking, Sender},
    clock::Clock,
    outbox::{DispatchConfig, Dispatcher},
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use wiremock::{
    matchers::method, Mock, MockServer, Request as MockRequest, Respond, ResponseTemplate,
};

/// 300 households: 150 Tajik, 100 Russian, 50 English; every tenth also has a +7 number;
/// three numbers opted out.
async fn village(pool: &PgPool, community: i64) {
    sqlx::query(
        "with h as (
             insert into households (community_id, name, language)
             select $1, 'Household ' || g, case when g <= 150 then 'tg' when g <= 250 then 'ru' else 'en' end
             from generate_series(1, 300) g returning id
         )
         insert into phones (phone, household_id) select '+99295' || lpad(id::text, 7, '0'), id from h",
    )
    .bind(community)
    .execute(pool)
    .await
    .expect("households");
    sqlx::query(
        "insert into phones (phone, household_id)
         select '+7916' || lpad(h.id::text, 7, '0'), h.id from households h
         where h.community_id = $1 and h.name like 'Household %' and h.id % 10 = 0",
    )
    .bind(community)
    .execute(pool)
    .await
    .expect("migrants");
    sqlx::query(
        "insert into sms_optouts (phone, opted_out_at)
         select p.phone, now() from phones p join households h on h.id = p.household_id
         where h.community_id = $1 and h.name in ('Household 1', 'Household 200', 'Household 300') and p.phone like '+992%'",
    )
    .bind(community)
    .execute(pool)
    .await
    .expect("opt-outs");
}

struct Accept(std::sync::atomic::AtomicU64);

impl Respond for Accept {
    fn respond(&self, _: &MockRequest) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ResponseTemplate::new(201).set_body_json(json!({"SMSMessageData": {"Message": "Sent", "Recipients": [
            {"statusCode": 101, "number": "+992", "status": "Success", "cost": "0", "messageId": format!("ATXid_{n}")}]}}))
    }
}

fn notice() -> Value {
    json!({
        "texts": {
            "tg": "Ҷаласаи деҳа: {date}, соати {time}, {place}. Барои {project}. Меоед? 1 Ҳа, 2 Не",
            "ru": "Собрание села: {date} в {time}, {place}. По проекту {project}. Придёте? 1 Да, 2 Нет",
            "en": "Village meeting: {date} at {time}, {place}. About {project}. Coming? 1 Yes, 2 No"
        },
        "vars": {"date": "1.12.2026", "time": "10:00", "place": "the school", "project": "Bridge"}
    })
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_notice_to_a_village_in_three_languages(pool: PgPool) {
    let seed = seed(&pool).await;
    village(&pool, seed.community).await;
    let mut config = test_config();
    config.sms_provider = hashar::config::SmsProvider::AfricasTalking;
    config.sms_price_per_segment = "0.02".parse().expect("price");
    let app = app_with(pool.clone(), config).await;
    let (_, _, token) =
        hashar::api::auth::add_coordinator(&pool, "C", "+992900000401", &["anzob".into()], false)
            .await
            .expect("coordinator");
    let mut body = notice();
    body["communities"] = json!([seed.community]);
    let (status, created) = call(&app, "POST", "/api/v1/broadcasts", body, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let p = &created["preview"];
    // 300 households + the 4 seeded ones; 30 migrant numbers; 3 opted out
    assert_eq!(
        p["languages"]["tg"]["recipients"],
        150 + 15 - 1 + 1 + 1,
        "{p}"
    ); // + the seed's tg households
    assert_eq!(p["languages"]["ru"]["recipients"], 100 + 10 - 1 + 1);
    assert_eq!(p["languages"]["en"]["recipients"], 50 + 5 - 1 + 1);
    assert_eq!(p["skipped_opted_out"], 3);
    assert_eq!(p["languages"]["tg"]["encoding"], "ucs2");
    assert_eq!(p["languages"]["en"]["encoding"], "gsm7");
    let segs = |l: &str| p["languages"][l]["segments_each"].as_u64().unwrap_or(0);
    assert_eq!((segs("tg"), segs("ru"), segs("en")), (2, 2, 1));
    let total = p["segments_total"].as_u64().unwrap_or(0);
    assert_eq!(total, 166 * 2 + 110 * 2 + 55);
    assert_eq!(p["estimated_cost"], format!("{:.2}", total as f64 * 0.02));
    assert!(p["languages"]["ru"]["text"]
        .as_str()
        .unwrap_or("")
        .starts_with("Собрание села: 1.12.2026 в 10:00, the school."));
    let id = created["broadcast"]["id"].as_i64().expect("id");

    // send now (14:00 in Dushanbe: not quiet)
    let (status, sent) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["queued"], 331);
    let by_lang: Vec<(String, i64)> = sqlx::query_as(
        "select r.language, count(*) from broadcast_recipients r join outbox o on o.id = r.outbox_id
         where r.broadcast_id = $1 and o.kind = 'broadcast' and o.body like case r.language when 'tg' then 'Ҷаласа%' when 'ru' then 'Собрание%' else 'Village%' end
         group by 1 order by 1",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        by_lang,
        vec![
            ("en".to_owned(), 55),
            ("ru".to_owned(), 110),
            ("tg".to_owned(), 166)
        ]
    );

    // the dispatcher sends them; some are delivered
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Accept(Default::default()))
        .mount(&server)
        .await;
    let sender = Arc::new(Sender::AfricasTalking(africastalking::Client::new(
        africastalking::Settings {
            username: "sandbox".into(),
            api_key: "k".into(),
            sender: None,
            base_url: server.uri(),
        },
        reqwest::Client::new(),
    )));
    let cfg = DispatchConfig {
        rate_per_sec: NonZeroU32::new(100_000).expect("rate"),
        idle_poll: Duration::from_millis(10),
        quiet: Some(app_quiet()),
        ..DispatchConfig::default()
    };
    let d = Dispatcher::new(pool.clone(), sender, Arc::new(app.clock.clone()), cfg);
    assert_eq!(d.drain().await.expect("drain").sent, 331);
    for n in 0..40 {
        let form = format!("id=ATXid_{n}&status=Success&phoneNumber=%2B992950000001&retryCount=0");
        assert_eq!(
            app.post_form("/webhooks/africastalking/delivery", form)
                .await
                .0,
            StatusCode::OK
        );
    }

    // answers: yes and no in three languages; a text that is not an answer goes on as usual
    let phones: Vec<String> = sqlx::query_scalar(
        "select phone from broadcast_recipients where broadcast_id = $1 and skipped is null order by phone limit 6",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("phones");
    for (i, (phone, text)) in phones
        .iter()
        .zip(["1", "ДА", "ҳа", "2", "НЕТ", "TOTAL"])
        .enumerate()
    {
        let form = format!(
            "id=r{i}&from={}&to=4274&text={}",
            phone.replace('+', "%2B"),
            urlencode(text)
        );
        assert_eq!(
            app.post_form("/webhooks/africastalking/sms", form).await.0,
            StatusCode::OK
        );
    }
    let (_, view) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{id}"),
        Value::Null,
        &token,
    )
    .await;
    let progress = &view["progress"];
    assert_eq!(progress["messages"]["delivered"], 40, "{progress}");
    assert_eq!(progress["messages"]["sent"], 291);
    assert_eq!(progress["skipped_opted_out"], 3);
    assert_eq!(
        progress["rsvps"][seed.community.to_string()],
        json!({"yes": 3, "no": 2}),
        "{progress}"
    );
    let (_, list) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{id}/rsvps"),
        Value::Null,
        &token,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(5));
    let total_reply: String = sqlx::query_scalar(
        "select body from outbox where phone = $1 and kind = 'reply' order by id desc limit 1",
    )
    .bind(&phones[5])
    .fetch_one(&pool)
    .await
    .expect("reply to TOTAL");
    assert!(
        !total_reply.contains("noted"),
        "TOTAL is not an RSVP: {total_reply}"
    );
    // the export: one row with the same counts
    let req = Request::get(format!(
        "/api/v1/exports/broadcasts.csv?community={}",
        seed.community
    ))
    .header("authorization", format!("Bearer {token}"))
    .body(Body::empty())
    .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let csv = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "broadcast_id,created_at,created_by,communities,status,send_at,queued_at,recipients,skipped_opted_out,queued,sent,delivered,failed,suppressed,cancelled,rsvp_yes,rsvp_no");
    assert!(
        lines[1].ends_with(
            ",anzob,queued,2026-11-28T09:00:00Z,2026-11-28T09:00:00Z,334,3,0,291,40,0,0,0,3,2"
        ),
        "{}",
        lines[1]
    );
    // sent already: cannot be sent again
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("/api/v1/broadcasts/{id}/send"),
            json!({}),
            &token
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn app_quiet() -> hashar::domain::QuietHours {
    test_config().settings().expect("settings").quiet_hours
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn schedules_respect_quiet_hours_and_a_queued_broadcast_can_be_cancelled(pool: PgPool) {
    let seed = seed(&pool).await;
    village(&pool, seed.community).await;
    let app = app(pool.clone()).await; // clock: 09:00 UTC = 14:00 in Dushanbe
    let (_, _, token) =
        hashar::api::auth::add_coordinator(&pool, "C", "+992900000402", &["anzob".into()], false)
            .await
            .expect("coordinator");
    let mut body = notice();
    body["communities"] = json!([seed.community]);
    body["only_language"] = json!("ru");
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body.clone(), &token).await;
    assert_eq!(
        created["preview"]["recipients"], 110,
        "only Russian-speaking households"
    );
    let id = created["broadcast"]["id"].as_i64().expect("id");
    // asked for 22:30 local: moved to 07:00 the next morning
    let (status, s) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({"at": "2026-11-28T22:30:00+05:00"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["send_at_local"], "2026-11-29T07:00:00+05:00");
    assert_eq!(s["queued"], 0);
    let quiet = app_quiet();
    let run = |at: chrono::DateTime<chrono::Utc>| {
        let pool = pool.clone();
        async move {
            hashar::broadcasts::run_due(
                &pool,
                at,
                &quiet,
                hashar::domain::Language::Tg,
                "console",
                3,
            )
            .await
            .expect("run")
        }
    };
    app.clock.advance(chrono::Duration::hours(12)); // 21:00 UTC = 02:00 local
    assert_eq!(run(app.clock.now()).await, 0, "not yet, and quiet");
    app.clock.advance(chrono::Duration::hours(5)); // 02:00 UTC = 07:00 local
    assert_eq!(run(app.clock.now()).await, 1);
    // 110 messages, and the one Russian-speaking number that opted out recorded as skipped
    assert_eq!(count(&pool, &format!("select count(*) from broadcast_recipients where broadcast_id = {id} and outbox_id is not null")).await, 110);
    assert_eq!(count(&pool, &format!("select count(*) from broadcast_recipients where broadcast_id = {id} and skipped = 'opted_out'")).await, 1);
    // a second notice, queued then cancelled before any message left
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body, &token).await;
    let second = created["broadcast"]["id"].as_i64().expect("id");
    let (_, s) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{second}/send"),
        json!({}),
        &token,
    )
    .await;
    assert_eq!(s["queued"], 110, "{s}");
    let (status, c) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{second}/cancel"),
        Value::Null,
        &token,
    )
    .await;
    assert_eq!((status, c["stopped"].as_i64()), (StatusCode::OK, Some(110)));
    let (_, v) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{second}"),
        Value::Null,
        &token,
    )
    .await;
    assert_eq!(v["progress"]["messages"]["cancelled"], 110);
    // during quiet hours the dispatcher holds broadcast messages but sends replies
    let sender = Arc::new(Sender::Console(hashar::channels::console::Client::new()));
    let cfg = DispatchConfig {
        quiet: Some(quiet),
        idle_poll: Duration::from_millis(10),
        ..DispatchConfig::default()
    };
    app.clock.advance(chrono::Duration::hours(15)); // 17:00 UTC = 22:00 local
    let d = Dispatcher::new(pool.clone(), sender, Arc::new(app.clock.clone()), cfg);
    app.post_form(
        "/webhooks/africastalking/sms",
        "id=q1&from=%2B992901112233&to=4274&text=HELP".into(),
    )
    .await;
    let round = d.drain().await.expect("drain");
    assert_eq!(round.sent, 1, "only the HELP reply: {round:?}");
    // bad requests name their field
    let (status, e) = call(
        &app,
        "POST",
        "/api/v1/broadcasts",
        json!({"communities": [seed.community], "texts": {"tg": "{venue}", "ru": "x", "en": "x"}}),
        &token,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("texts.tg"))
    );
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/broadcasts",
        json!({"communities": [seed.other_community], "texts": {"tg": "x", "ru": "x", "en": "x"}}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// How many outbox rows each recipient number of broadcast `id` has (broadcast messages to
/// the numbers recorded as its recipients), and how many rows there are in all.
async fn rows_per_recipient(pool: &PgPool, id: i64) -> (Vec<i64>, i64) {
    let per: Vec<i64> = sqlx::query_scalar(
        "select count(o.id) from broadcast_recipients r
           left join outbox o on o.phone = r.phone and o.kind = 'broadcast'
          where r.broadcast_id = $1 and r.skipped is null
          group by r.phone",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("rows");
    let all = count(pool, "select count(*) from outbox where kind = 'broadcast'").await;
    (per, all)
}

/// Issue 8, point 6: two "send" calls at once (a double click) queued every message twice.
/// Now one of them queues, the other gets 409, and each recipient has one message.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn two_sends_at_once_queue_each_message_once(pool: PgPool) {
    let seed = seed(&pool).await;
    village(&pool, seed.community).await;
    let app = app(pool.clone()).await;
    let (_, _, token) =
        hashar::api::auth::add_coordinator(&pool, "C", "+992900000403", &["anzob".into()], false)
            .await
            .expect("coordinator");
    let mut body = notice();
    body["communities"] = json!([seed.community]);
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body, &token).await;
    let id = created["broadcast"]["id"].as_i64().expect("id");
    let send = format!("/api/v1/broadcasts/{id}/send");
    let (first, second) = tokio::join!(
        call(&app, "POST", &send, json!({}), &token),
        call(&app, "POST", &send, json!({}), &token)
    );
    let mut answers = [first.0, second.0];
    answers.sort();
    assert_eq!(
        answers,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{first:?} {second:?}"
    );
    let queued = [first, second]
        .iter()
        .find(|(s, _)| *s == StatusCode::OK)
        .and_then(|(_, v)| v["queued"].as_i64());
    assert_eq!(queued, Some(331));
    let (per, all) = rows_per_recipient(&pool, id).await;
    assert_eq!(per.len(), 331);
    assert!(
        per.iter().all(|n| *n == 1),
        "a recipient with more than one message"
    );
    assert_eq!(all, 331);
    // and the database refuses a second message for a recipient of the same broadcast
    let phone: String = sqlx::query_scalar(
        "select phone from broadcast_recipients where broadcast_id = $1 and skipped is null limit 1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("phone");
    let phone = hashar::domain::Phone::parse(&phone).expect("phone");
    let mut conn = pool.acquire().await.expect("conn");
    let again = hashar::outbox::enqueue_broadcast(
        &mut conn,
        &hashar::outbox::NewMessage {
            to: &phone,
            body: "again",
            kind: hashar::outbox::Kind::Broadcast,
            inbound_id: None,
        },
        id,
        "console",
        3,
        app.clock.now(),
    )
    .await;
    assert!(
        matches!(&again, Err(sqlx::Error::Database(e)) if e.is_unique_violation()),
        "{again:?}"
    );
}

/// Issue 8, point 6: the scheduler (`broadcasts::run_due`) and an API "send now" racing for
/// a broadcast whose time has come: exactly one of them queues it, once.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_scheduler_racing_the_api_queues_each_message_once(pool: PgPool) {
    let seed = seed(&pool).await;
    village(&pool, seed.community).await;
    let app = app(pool.clone()).await; // 09:00 UTC = 14:00 in Dushanbe
    let (_, _, token) =
        hashar::api::auth::add_coordinator(&pool, "C", "+992900000404", &["anzob".into()], false)
            .await
            .expect("coordinator");
    let mut body = notice();
    body["communities"] = json!([seed.community]);
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body, &token).await;
    let id = created["broadcast"]["id"].as_i64().expect("id");
    let send = format!("/api/v1/broadcasts/{id}/send");
    let (status, s) = call(
        &app,
        "POST",
        &send,
        json!({"at": "2026-11-28T15:00:00+05:00"}),
        &token,
    )
    .await;
    assert_eq!(
        (status, s["queued"].as_i64()),
        (StatusCode::OK, Some(0)),
        "{s}"
    );
    app.clock.advance(chrono::Duration::hours(1)); // its time has come
    let quiet = app_quiet();
    let now = app.clock.now();
    let (api, scheduler) = tokio::join!(
        call(&app, "POST", &send, json!({}), &token),
        hashar::broadcasts::run_due(
            &pool,
            now,
            &quiet,
            hashar::domain::Language::Tg,
            "console",
            3
        )
    );
    let scheduler = scheduler.expect("scheduler");
    match api.0 {
        StatusCode::OK => assert_eq!((api.1["queued"].as_i64(), scheduler), (Some(331), 0)),
        StatusCode::CONFLICT => assert_eq!(scheduler, 1),
        other => panic!("{other}: {}", api.1),
    }
    let (per, all) = rows_per_recipient(&pool, id).await;
    assert_eq!(per.len(), 331);
    assert!(
        per.iter().all(|n| *n == 1),
        "a recipient with more than one message"
    );
    assert_eq!(all, 331);
    // nothing left for a later run
    assert_eq!(
        hashar::broadcasts::run_due(
            &pool,
            app.clock.now(),
            &quiet,
            hashar::domain::Language::Tg,
            "console",
            3
        )
        .await
        .expect("run"),
        0
    );
}
