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
    // asked for 23:30 local, quiet in Dushanbe and in Moscow (21:30): moved to 07:00 the
    // next morning in Dushanbe, when its first recipients may get it (the +7 numbers get
    // it at 07:00 Moscow time, two hours later: `quiet_hours_are_read_in_each_recipients_zone`)
    let (status, s) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({"at": "2026-11-28T23:30:00+05:00"}),
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
    // the first notice's messages to Tajik numbers are held (22:00 in Dushanbe); those to
    // +7 numbers go (20:00 in Moscow), and so does the HELP reply
    let abroad = count(&pool, &format!("select count(*) from broadcast_recipients where broadcast_id = {id} and skipped is null and phone like '+7%'")).await;
    assert!(abroad > 0);
    assert_eq!(round.sent as i64, 1 + abroad, "{round:?}");
    assert_eq!(round.held as i64, 110 - abroad, "{round:?}");
    assert_eq!(count(&pool, &format!("select count(*) from outbox where broadcast_id = {id} and status = 'queued' and next_attempt_at = '2026-11-30T02:00:00Z' and phone like '+992%'")).await, 110 - abroad, "held until 07:00 in Dushanbe");
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
        hashar::outbox::Held::past_quiet_hours(
            &app_quiet(),
            chrono_tz::Asia::Dushanbe,
            app.clock.now(),
        ),
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

/// Issue 11, point 9: quiet hours in the recipient's time. One household at home (+992) and
/// one member in Moscow (+7), one in Novosibirsk whose record names Asia/Novosibirsk, one in
/// Istanbul (+90); the clock starts at 09:00 UTC (14:00 in Dushanbe).
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn quiet_hours_are_read_in_each_recipients_zone(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, _, token) =
        hashar::api::auth::add_coordinator(&pool, "C", "+992900000405", &["anzob".into()], false)
            .await
            .expect("coordinator");
    // the seed's households are all at home; the Russian-speaking one has three members abroad
    let ru: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("household");
    const MOSCOW: &str = "+79161234567";
    const NOVOSIBIRSK: &str = "+79131234567";
    const ISTANBUL: &str = "+905321234567";
    for phone in [MOSCOW, NOVOSIBIRSK, ISTANBUL] {
        sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
            .bind(phone)
            .bind(ru)
            .execute(&pool)
            .await
            .expect("phone");
    }
    // the zone of the Novosibirsk number, from the API (audited); a name that is no zone is refused
    let path = format!("/api/v1/phones/{}/timezone", urlencode(NOVOSIBIRSK));
    let (status, z) = call(
        &app,
        "PUT",
        &path,
        json!({"timezone": "Asia/Novosibirsk"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{z}");
    assert_eq!(
        (
            z["timezone"].as_str(),
            z["zone"].as_str(),
            z["household_id"].as_i64()
        ),
        (Some("Asia/Novosibirsk"), Some("Asia/Novosibirsk"), Some(ru))
    );
    let (status, e) = call(
        &app,
        "PUT",
        &path,
        json!({"timezone": "Novosibirsk"}),
        &token,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("timezone")),
        "{e}"
    );
    let moscow = format!("/api/v1/phones/{}/timezone", urlencode(MOSCOW));
    let (_, z) = call(&app, "PUT", &moscow, json!({"timezone": null}), &token).await;
    assert_eq!(
        (z["timezone"].as_str(), z["zone"].as_str()),
        (None, Some("Europe/Moscow")),
        "{z}"
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'household.timezone'"
        )
        .await,
        2
    );
    // another community's number: not found
    let (_, _, other) =
        hashar::api::auth::add_coordinator(&pool, "D", "+992900000406", &["sarazm".into()], false)
            .await
            .expect("coordinator");
    assert_eq!(
        call(&app, "PUT", &path, json!({"timezone": null}), &other)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    let mut body = notice();
    body["communities"] = json!([seed.community]);
    body["only_language"] = json!("ru");
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body.clone(), &token).await;
    // the preview of a draft: if sent now (14:00 in Dushanbe), everyone gets it at once
    let zones = &created["preview"]["zones"];
    assert_eq!(zones.as_array().map(Vec::len), Some(4), "{zones}");
    assert!(
        zones
            .as_array()
            .into_iter()
            .flatten()
            .all(|z| z["held"] == false),
        "{zones}"
    );
    let id = created["broadcast"]["id"].as_i64().expect("id");

    // asked for 22:30 in Dushanbe (17:30 UTC): the night has begun at home, not in Moscow
    // (20:30) or Istanbul (20:30); in Novosibirsk it is 00:30
    let (status, s) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({"at": "2026-11-28T22:30:00+05:00"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        s["send_at_local"], "2026-11-28T22:30:00+05:00",
        "its first recipients' time"
    );
    let (_, view) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{id}"),
        Value::Null,
        &token,
    )
    .await;
    let groups: Vec<(String, i64, String, String)> = view["preview"]["zones"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|z| {
            (
                z["zone"].as_str().unwrap_or("").to_owned(),
                z["recipients"].as_i64().unwrap_or(0),
                z["receive_at_local"].as_str().unwrap_or("").to_owned(),
                z["receive_at_home"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            (
                "Europe/Istanbul".to_owned(),
                1,
                "2026-11-28T20:30:00+03:00".to_owned(),
                "2026-11-28T22:30:00+05:00".to_owned()
            ),
            (
                "Europe/Moscow".to_owned(),
                1,
                "2026-11-28T20:30:00+03:00".to_owned(),
                "2026-11-28T22:30:00+05:00".to_owned()
            ),
            (
                "Asia/Novosibirsk".to_owned(),
                1,
                "2026-11-29T07:00:00+07:00".to_owned(),
                "2026-11-29T05:00:00+05:00".to_owned()
            ),
            (
                "Asia/Dushanbe".to_owned(),
                1,
                "2026-11-29T07:00:00+05:00".to_owned(),
                "2026-11-29T07:00:00+05:00".to_owned()
            ),
        ],
        "{}",
        view["preview"]["zones"]
    );
    // 22:30 comes: the scheduler queues it; each message is due when its recipient may get it
    let quiet = app_quiet();
    app.clock.advance(chrono::Duration::minutes(8 * 60 + 30)); // 17:30 UTC
    let queued = hashar::broadcasts::run_due(
        &pool,
        app.clock.now(),
        &quiet,
        hashar::domain::Language::Tg,
        "console",
        3,
    )
    .await
    .expect("run");
    assert_eq!(queued, 1);
    let due: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select phone, timezone, next_attempt_at from outbox where broadcast_id = $1 order by next_attempt_at, phone",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .expect("rows");
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
    assert_eq!(
        due,
        vec![
            (
                MOSCOW.to_owned(),
                "Europe/Moscow".to_owned(),
                at("2026-11-28T17:30:00Z")
            ),
            (
                ISTANBUL.to_owned(),
                "Europe/Istanbul".to_owned(),
                at("2026-11-28T17:30:00Z")
            ),
            (
                NOVOSIBIRSK.to_owned(),
                "Asia/Novosibirsk".to_owned(),
                at("2026-11-29T00:00:00Z")
            ),
            (
                PHONE_RU.to_owned(),
                "Asia/Dushanbe".to_owned(),
                at("2026-11-29T02:00:00Z")
            ),
        ]
    );
    let sender = Arc::new(Sender::Console(hashar::channels::console::Client::new()));
    let cfg = DispatchConfig {
        quiet: Some(quiet),
        idle_poll: Duration::from_millis(10),
        ..DispatchConfig::default()
    };
    let d = Dispatcher::new(pool.clone(), sender, Arc::new(app.clock.clone()), cfg);
    let sent = |pool: PgPool| async move {
        let phones: Vec<String> = sqlx::query_scalar(
            "select phone from outbox where broadcast_id = $1 and status = 'sent' order by phone",
        )
        .bind(id)
        .fetch_all(&pool)
        .await
        .expect("sent");
        phones
    };
    assert_eq!(d.drain().await.expect("drain").sent, 2);
    assert_eq!(
        sent(pool.clone()).await,
        vec![MOSCOW.to_owned(), ISTANBUL.to_owned()]
    );
    app.clock.advance(chrono::Duration::minutes(6 * 60 + 30)); // 00:00 UTC: 07:00 in Novosibirsk
    assert_eq!(d.drain().await.expect("drain").sent, 1);
    app.clock.advance(chrono::Duration::hours(2)); // 02:00 UTC: 07:00 in Dushanbe
    assert_eq!(d.drain().await.expect("drain").sent, 1);
    assert_eq!(sent(pool.clone()).await.len(), 4);

    // a second notice asked for 23:30 in Dushanbe the next evening (18:30 UTC): quiet in
    // Moscow too (21:30), so the +7 number gets it at 07:00 Moscow time, two hours after the
    // family at home gets it at 07:00 in Dushanbe
    let (_, created) = call(&app, "POST", "/api/v1/broadcasts", body, &token).await;
    let second = created["broadcast"]["id"].as_i64().expect("id");
    let (_, s) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{second}/send"),
        json!({"at": "2026-11-29T23:30:00+05:00"}),
        &token,
    )
    .await;
    // Novosibirsk's 07:00 (00:00 UTC) comes first
    assert_eq!(s["send_at_local"], "2026-11-30T05:00:00+05:00", "{s}");
    app.clock.advance(chrono::Duration::hours(22)); // 00:00 UTC on the 30th
    hashar::broadcasts::run_due(
        &pool,
        app.clock.now(),
        &quiet,
        hashar::domain::Language::Tg,
        "console",
        3,
    )
    .await
    .expect("run");
    let due: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "select phone, next_attempt_at from outbox where broadcast_id = $1 order by phone",
    )
    .bind(second)
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        due,
        vec![
            (NOVOSIBIRSK.to_owned(), at("2026-11-30T00:00:00Z")), // 07:00 Novosibirsk
            (MOSCOW.to_owned(), at("2026-11-30T04:00:00Z")),      // 07:00 Moscow
            (ISTANBUL.to_owned(), at("2026-11-30T04:00:00Z")),    // 07:00 Istanbul
            (PHONE_RU.to_owned(), at("2026-11-30T02:00:00Z")),    // 07:00 Dushanbe
        ]
    );
    // a retry that comes due inside its recipient's quiet hours is put back until they end
    sqlx::query("update outbox set next_attempt_at = $2 where broadcast_id = $1 and phone = $3")
        .bind(second)
        .bind(app.clock.now())
        .bind(MOSCOW)
        .execute(&pool)
        .await
        .expect("retry now");
    let round = d.drain().await.expect("drain");
    assert_eq!(
        (round.sent, round.held),
        (1, 1),
        "Novosibirsk sent, Moscow held: {round:?}"
    );
    assert_eq!(
        count(&pool, &format!("select count(*) from outbox where broadcast_id = {second} and phone = '{MOSCOW}' and status = 'queued' and next_attempt_at = '2026-11-30T04:00:00Z' and attempts = 0")).await,
        1
    );
    // replies are never held: a HELP from Moscow at 03:00 there is answered at once
    app.post_form(
        "/webhooks/africastalking/sms",
        format!("id=q9&from={}&to=4274&text=HELP", urlencode(MOSCOW)),
    )
    .await;
    let round = d.drain().await.expect("drain");
    assert_eq!((round.sent, round.held), (1, 0), "{round:?}");
}
