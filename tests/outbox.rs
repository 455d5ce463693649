//! The outbox and its dispatcher against a real PostgreSQL and a provider on a local mock
//! server (Africa's Talking's real client pointed at wiremock).

mod common;

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use chrono::{TimeZone, Utc};
use hashar::{
    channels::{africastalking, Sender},
    clock::{Clock, ManualClock},
    domain::Phone,
    outbox::{self, DispatchConfig, Dispatcher, Kind, NewMessage},
};
use sqlx::PgPool;
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, Request, Respond, ResponseTemplate,
};

fn accepted(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(serde_json::json!({"SMSMessageData": {
        "Message": "Sent to 1/1 Total Cost: KES 0.8000",
        "Recipients": [{"statusCode": 101, "number": "+79161234567", "status": "Success", "cost": "KES 0.8000", "messageId": id}]
    }}))
}

/// Answers each request with a fresh message id, counting them.
struct Counting(std::sync::atomic::AtomicU64);

impl Respond for Counting {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        accepted(&format!("ATXid_{n}"))
    }
}

/// A local Africa's Talking that answers every POST to its messaging path with `answer`.
async fn provider(answer: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/version1/messaging"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

fn at_sender(server: &MockServer) -> Arc<Sender> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    Arc::new(Sender::AfricasTalking(africastalking::Client::new(
        africastalking::Settings {
            username: "sandbox".into(),
            api_key: "key".into(),
            sender: None,
            base_url: server.uri(),
        },
        http,
    )))
}

fn fast() -> DispatchConfig {
    DispatchConfig {
        batch: 20,
        lease: Duration::from_secs(60),
        max_attempts: 3,
        base_backoff: Duration::from_secs(5),
        max_backoff: Duration::from_secs(60),
        rate_per_sec: NonZeroU32::new(100_000).expect("non-zero"),
        idle_poll: Duration::from_millis(10),
        quiet: None,
        concurrency: 8,
    }
}

fn clock() -> ManualClock {
    ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
            .single()
            .expect("time"),
    )
}

async fn queue(pool: &PgPool, clock: &ManualClock, n: usize, body: &str) -> Vec<i64> {
    let phone = Phone::parse("+79161234567").expect("phone");
    let mut ids = Vec::new();
    let mut conn = pool.acquire().await.expect("conn");
    for _ in 0..n {
        let msg = NewMessage {
            to: &phone,
            body,
            kind: Kind::Reply,
            inbound_id: None,
        };
        ids.push(
            outbox::enqueue(&mut conn, &msg, "africastalking", 3, clock.now())
                .await
                .expect("enqueue"),
        );
    }
    ids
}

async fn statuses(pool: &PgPool) -> Vec<(String, i32)> {
    sqlx::query_as("select status, attempts from outbox order by id")
        .fetch_all(pool)
        .await
        .expect("rows")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn two_dispatchers_on_one_database_never_send_a_message_twice(pool: PgPool) {
    let server = provider(Counting(Default::default())).await;
    let clock = clock();
    queue(&pool, &clock, 300, "Hello from Hashar").await;
    let sender = at_sender(&server);
    let a = Dispatcher::new(
        pool.clone(),
        sender.clone(),
        Arc::new(clock.clone()),
        fast(),
    );
    let b = Dispatcher::new(pool.clone(), sender, Arc::new(clock.clone()), fast());
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(ra.sent + rb.sent, 300);
    assert!(ra.sent > 0 && rb.sent > 0, "both took part: {ra:?} {rb:?}");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 300, "each message sent exactly once");
    let distinct: i64 = common::count(
        &pool,
        "select count(distinct provider_msg_id) from outbox where status = 'sent'",
    )
    .await;
    assert_eq!(distinct, 300);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn temporary_failures_are_retried_with_backoff_and_refusals_are_not(pool: PgPool) {
    let server = MockServer::start().await;
    // first answer 503, then accepted
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(accepted("ATXid_ok"))
        .mount(&server)
        .await;
    let clock = clock();
    queue(&pool, &clock, 1, "retry me").await;
    let d = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        fast(),
    );
    let r = d.run_once().await.expect("round");
    assert_eq!(r.retried, 1);
    let (next, error): (chrono::DateTime<Utc>, Option<String>) =
        sqlx::query_as("select next_attempt_at, last_error from outbox")
            .fetch_one(&pool)
            .await
            .expect("row");
    let wait = next - clock.now();
    assert!(
        wait >= chrono::Duration::milliseconds(2500) && wait <= chrono::Duration::seconds(5),
        "backoff {wait}"
    );
    assert!(error.unwrap_or_default().contains("503"));
    // not due yet: nothing happens
    assert_eq!(d.run_once().await.expect("round").claimed, 0);
    clock.advance(chrono::Duration::seconds(6));
    assert_eq!(d.run_once().await.expect("round").sent, 1);
    assert_eq!(statuses(&pool).await, vec![("sent".to_owned(), 2)]);

    // a refusal (bad number) fails at once, reason kept
    let server2 = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"SMSMessageData": {
            "Message": "Sent to 0/1", "Recipients": [{"statusCode": 403, "number": "+79161234567", "status": "InvalidPhoneNumber", "cost": "0", "messageId": "None"}]}})))
        .mount(&server2)
        .await;
    queue(&pool, &clock, 1, "bad number").await;
    let d2 = Dispatcher::new(
        pool.clone(),
        at_sender(&server2),
        Arc::new(clock.clone()),
        fast(),
    );
    assert_eq!(d2.run_once().await.expect("round").failed, 1);
    let (status, error): (String, Option<String>) =
        sqlx::query_as("select status, last_error from outbox order by id desc limit 1")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("InvalidPhoneNumber"));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_message_that_keeps_failing_is_failed_after_the_last_attempt(pool: PgPool) {
    let server = provider(ResponseTemplate::new(429)).await;
    let clock = clock();
    queue(&pool, &clock, 1, "throttled").await;
    let d = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        fast(),
    );
    for _ in 0..3 {
        d.run_once().await.expect("round");
        clock.advance(chrono::Duration::minutes(5));
    }
    assert_eq!(statuses(&pool).await, vec![("failed".to_owned(), 3)]);
    assert_eq!(server.received_requests().await.expect("recorded").len(), 3);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_message_interrupted_mid_send_is_retried_after_its_lease(pool: PgPool) {
    let server = provider(accepted("ATXid_1")).await;
    let clock = clock();
    let ids = queue(&pool, &clock, 1, "lost in flight").await;
    // a dispatcher claimed it and died: status sending, lease until a minute from now
    sqlx::query(
        "update outbox set status = 'sending', attempts = 1, lease_until = $2 where id = $1",
    )
    .bind(ids[0])
    .bind(clock.now() + chrono::Duration::seconds(60))
    .execute(&pool)
    .await
    .expect("claim");
    let d = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        fast(),
    );
    assert_eq!(
        d.run_once().await.expect("round").claimed,
        0,
        "the lease still holds"
    );
    clock.advance(chrono::Duration::seconds(61));
    assert_eq!(d.run_once().await.expect("round").sent, 1);
    assert_eq!(statuses(&pool).await, vec![("sent".to_owned(), 2)]);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn encoding_and_segments_are_stored_and_long_texts_cut(pool: PgPool) {
    let clock = clock();
    queue(&pool, &clock, 1, "Hello {friend} €5").await;
    queue(&pool, &clock, 1, &"Салом ".repeat(20)).await;
    queue(&pool, &clock, 1, &"Салом ".repeat(100)).await;
    let rows: Vec<(String, i32, i32)> =
        sqlx::query_as("select encoding, segments, char_length(body) from outbox order by id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("gsm7", 1));
    assert_eq!((rows[1].0.as_str(), rows[1].1), ("ucs2", 2));
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1),
        ("ucs2", 3),
        "cut to the 3-segment maximum"
    );
    assert!(rows[2].2 <= 201);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_number_that_opts_out_after_queueing_gets_nothing(pool: PgPool) {
    let server = provider(accepted("ATXid_1")).await;
    let clock = clock();
    queue(&pool, &clock, 1, "meeting on Friday").await;
    sqlx::query("insert into sms_optouts (phone, opted_out_at) values ('+79161234567', $1)")
        .bind(clock.now())
        .execute(&pool)
        .await
        .expect("optout");
    let d = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        fast(),
    );
    d.drain().await.expect("drain");
    assert_eq!(statuses(&pool).await, vec![("suppressed".to_owned(), 1)]);
    assert!(server
        .received_requests()
        .await
        .expect("recorded")
        .is_empty());
}

/// A provider whose delivery report reaches Hashar's webhook while the send is still in
/// flight, before the dispatcher has recorded the provider's message id (Twilio's "sent"
/// callback can come that fast): the report waits and is applied when the id is recorded.
struct ReportsBeforeAnswering {
    app: common::TestApp,
}

impl outbox::Gateway for ReportsBeforeAnswering {
    fn name(&self) -> &'static str {
        "africastalking"
    }

    fn send<'a>(
        &'a self,
        msg: &'a hashar::channels::OutboundSms,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<hashar::channels::Accepted, hashar::channels::SendError>,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let pid = format!("ATXid_{}", msg.id);
            let dlr = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("id", pid.as_str()),
                    ("status", "Success"),
                    ("phoneNumber", msg.to.as_str()),
                    ("retryCount", "0"),
                ])
                .finish();
            let (status, body) = self
                .app
                .post_form("/webhooks/africastalking/delivery", dlr)
                .await;
            assert_eq!(status, axum::http::StatusCode::OK, "{body}");
            Ok(hashar::channels::Accepted {
                provider_msg_id: Some(pid),
            })
        })
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_delivery_report_that_comes_before_the_provider_id_is_recorded_is_applied(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let clock = app.clock.clone();
    let ids = queue(&pool, &clock, 3, "Hello from Hashar").await;
    let gateway = Arc::new(ReportsBeforeAnswering { app });
    let dispatcher = Dispatcher::new(pool.clone(), gateway, Arc::new(clock.clone()), fast());
    let round = dispatcher.drain().await.expect("drain");
    assert_eq!((round.sent, round.early_reports), (3, 3), "{round:?}");
    let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "select status, provider_status, delivered_at is not null from outbox order by id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![("delivered".to_owned(), Some("Success".to_owned()), true); 3]
    );
    // each report stored once and marked applied to its message
    let applied: Vec<(i64, bool)> = sqlx::query_as(
        "select outbox_id, applied_at is not null from early_delivery_reports order by outbox_id",
    )
    .fetch_all(&pool)
    .await
    .expect("early");
    assert_eq!(
        applied,
        ids.iter().map(|&id| (id, true)).collect::<Vec<_>>()
    );

    // A report that names no message of ours waits, harmlessly; one whose id is recorded
    // later (by another instance's dispatcher, say) is applied by an idle round.
    let app = common::app(pool.clone()).await;
    for pid in ["ATXid_unknown", "ATXid_later"] {
        let dlr = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("id", pid),
                ("status", "Failed"),
                ("failureReason", "UserInBlackList"),
            ])
            .finish();
        let (status, _) = app
            .post_form("/webhooks/africastalking/delivery", dlr)
            .await;
        assert_eq!(status, axum::http::StatusCode::OK);
    }
    let later = queue(&pool, &clock, 1, "Later").await[0];
    sqlx::query(
        "update outbox set status = 'sent', provider_msg_id = 'ATXid_later', sent_at = $2, updated_at = $2
          where id = $1",
    )
    .bind(later)
    .bind(clock.now())
    .execute(&pool)
    .await
    .expect("sent elsewhere");
    let idle = dispatcher.run_once().await.expect("idle round");
    assert_eq!((idle.claimed, idle.early_reports), (0, 1));
    let (status, error): (String, Option<String>) =
        sqlx::query_as("select status, last_error from outbox where id = $1")
            .bind(later)
            .fetch_one(&pool)
            .await
            .expect("later");
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("UserInBlackList"))
    );
    assert_eq!(
        common::count(
            &pool,
            "select count(*) from early_delivery_reports where applied_at is null"
        )
        .await,
        1
    );
}

/// HASHAR_SMS_RATE is the provider's limit for the whole deployment: instances sending
/// through the same provider on one database split it by their heartbeats; one that stops
/// or dies gives its share back.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn instances_sending_through_one_provider_share_its_rate(pool: PgPool) {
    use hashar::outbox::{RateShare, STALE_AFTER};
    let clock = clock();
    let rate = NonZeroU32::new(100).expect("non-zero");
    let a = RateShare::coordinated(pool.clone(), "africastalking", rate);
    let b = RateShare::coordinated(pool.clone(), "africastalking", rate);
    let c = RateShare::coordinated(pool.clone(), "africastalking", rate);
    let elsewhere = RateShare::coordinated(pool.clone(), "twilio", rate);
    let beat = |share: &Arc<RateShare>| {
        let (share, now) = (share.clone(), clock.now());
        async move { share.heartbeat(now).await.expect("heartbeat") }
    };

    assert_eq!((beat(&a).await, a.rate().get()), (1, 100));
    assert_eq!((beat(&elsewhere).await, elsewhere.rate().get()), (1, 100));
    assert_eq!((beat(&b).await, b.rate().get()), (2, 50));
    assert_eq!((beat(&a).await, a.rate().get()), (2, 50));
    assert_eq!((beat(&c).await, c.rate().get()), (3, 33));
    assert_eq!((beat(&a).await, a.rate().get()), (3, 33));
    // the limiter all dispatchers of one instance wait on changes with the share
    let before = a.limiter();
    c.leave().await.expect("leave");
    assert_eq!((beat(&a).await, a.rate().get()), (2, 50));
    assert!(!Arc::ptr_eq(&before, &a.limiter()));
    // b dies without leaving: once its heartbeat is stale, a has the whole rate again
    let stale = chrono::Duration::from_std(STALE_AFTER).expect("duration");
    clock.advance(stale - chrono::Duration::seconds(1));
    assert_eq!((beat(&a).await, a.rate().get()), (2, 50));
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!((beat(&a).await, a.rate().get()), (1, 100));
    assert_eq!(elsewhere.rate().get(), 100);
    // without coordination (tests, benchmarks): always the whole rate
    let alone = RateShare::local(rate);
    assert_eq!((beat(&alone).await, alone.rate().get()), (1, 100));
}

/// What `hashar serve` runs: dispatchers sharing one coordinated rate, registered while
/// they send and gone from `dispatcher_instances` once stopped.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn serve_s_dispatchers_register_send_and_leave(pool: PgPool) {
    use hashar::outbox::{run_dispatchers, RateShare};
    let server = provider(Counting(Default::default())).await;
    let clock = clock();
    queue(&pool, &clock, 5, "Hello from Hashar").await;
    let sender = at_sender(&server);
    let rate = RateShare::coordinated(
        pool.clone(),
        "africastalking",
        NonZeroU32::new(1000).expect("non-zero"),
    );
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(run_dispatchers(
        2,
        pool.clone(),
        sender,
        Arc::new(clock.clone()),
        fast(),
        rate,
        stop_rx,
    ));
    // wait (bounded) for the five to be sent
    let sent = "select count(*) from outbox where status = 'sent'";
    for _ in 0..500 {
        if common::count(&pool, sent).await == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(common::count(&pool, sent).await, 5);
    assert_eq!(
        common::count(&pool, "select count(*) from dispatcher_instances").await,
        1
    );
    stop.send(true).expect("stop");
    running.await.expect("dispatchers end");
    assert_eq!(
        common::count(&pool, "select count(*) from dispatcher_instances").await,
        0
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 5);
}

/// A provider reached at the pace the rate limiter allows: each send moves the test's clock
/// on by one interval of the rate (1/rate), as the limiter would in production, so leases
/// run out exactly as they would there — with no sleep.
struct Paced {
    inner: Arc<Sender>,
    clock: ManualClock,
    step: chrono::Duration,
}

impl outbox::Gateway for Paced {
    fn name(&self) -> &'static str {
        "africastalking"
    }

    fn send<'a>(
        &'a self,
        msg: &'a hashar::channels::OutboundSms,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<hashar::channels::Accepted, hashar::channels::SendError>,
                > + Send
                + 'a,
        >,
    > {
        self.clock.advance(self.step);
        outbox::Gateway::send(&*self.inner, msg)
    }
}

/// How many times each message's text reached the provider.
async fn sends_per_text(server: &MockServer) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for r in server.received_requests().await.expect("recorded") {
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        *seen
            .entry(form.get("message").cloned().unwrap_or_default())
            .or_insert(0) += 1;
    }
    seen
}

async fn queue_numbered(pool: &PgPool, clock: &ManualClock, n: usize) {
    let phone = Phone::parse("+79161234567").expect("phone");
    let mut conn = pool.acquire().await.expect("conn");
    for i in 0..n {
        let body = format!("Message {i}");
        let msg = NewMessage {
            to: &phone,
            body: &body,
            kind: Kind::Reply,
            inbound_id: None,
        };
        outbox::enqueue(&mut conn, &msg, "africastalking", 3, clock.now())
            .await
            .expect("enqueue");
    }
}

/// Issue 8, point 5: claimed rows used to wait in the rate limiter longer than their lease,
/// another dispatcher took them over, and both sent them. A backlog of ten times what the
/// rate sends in a lease, two dispatchers of one process sharing the rate, a short lease and
/// the old default batch (larger than what a lease covers): every message reaches the
/// provider exactly once, and none is ever taken over.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_backlog_of_ten_leases_is_sent_exactly_once_by_two_dispatchers(pool: PgPool) {
    use hashar::outbox::RateShare;
    let server = provider(Counting(Default::default())).await;
    let clock = clock();
    let rate = 200u32;
    let lease = Duration::from_millis(100);
    let per_lease = (f64::from(rate) * lease.as_secs_f64()) as usize; // 20
    let backlog = 10 * per_lease;
    queue_numbered(&pool, &clock, backlog).await;
    let gateway = Arc::new(Paced {
        inner: at_sender(&server),
        clock: clock.clone(),
        step: chrono::Duration::milliseconds(1000 / i64::from(rate)),
    });
    let cfg = DispatchConfig {
        batch: 50,
        lease,
        rate_per_sec: NonZeroU32::new(rate).expect("non-zero"),
        ..fast()
    };
    let share = RateShare::local(cfg.rate_per_sec);
    let dispatcher = |concurrency| {
        Dispatcher::sharing(
            pool.clone(),
            gateway.clone(),
            Arc::new(clock.clone()),
            DispatchConfig {
                concurrency,
                ..cfg.clone()
            },
            share.clone(),
        )
    };
    // b has one send in flight at a time, a eight: a finishes its rounds first and finds
    // b's claims waiting
    let (a, b) = (dispatcher(8), dispatcher(1));
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(ra.sent + rb.sent, backlog, "{ra:?} {rb:?}");

    let seen = sends_per_text(&server).await;
    assert_eq!(seen.len(), backlog);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    let sent = common::count(&pool, "select count(*) from outbox where status = 'sent'").await;
    assert_eq!(usize::try_from(sent).ok(), Some(backlog));
}

/// The check right before each send: a dispatcher whose claimed rows outlived their lease
/// (stuck in the limiter, say) and were taken over by another sends none of them; rows whose
/// lease ran out but that nobody took over are still its own to send.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_claim_taken_over_after_its_lease_is_not_sent_by_its_first_owner(pool: PgPool) {
    let server = provider(Counting(Default::default())).await;
    let clock = clock();
    queue_numbered(&pool, &clock, 5).await;
    let sender = at_sender(&server);
    let dispatcher = || {
        Dispatcher::new(
            pool.clone(),
            sender.clone(),
            Arc::new(clock.clone()),
            fast(),
        )
    };
    let (a, b) = (dispatcher(), dispatcher());
    assert_ne!(a.owner(), b.owner());
    let claim = a.claim().await.expect("claim");
    assert_eq!(claim.len(), 5);
    // a's rows wait past their lease; b takes them over and sends them
    clock.advance(chrono::Duration::seconds(61));
    let rb = b.drain().await.expect("b");
    assert_eq!((rb.claimed, rb.sent), (5, 5), "{rb:?}");
    let ra = a.send(claim).await.expect("a");
    assert_eq!((ra.claimed, ra.sent, ra.lost), (5, 0, 5), "{ra:?}");
    assert_eq!(statuses(&pool).await, vec![("sent".to_owned(), 2); 5]);
    let seen = sends_per_text(&server).await;
    assert_eq!((seen.len(), seen.values().max().copied()), (5, Some(1)));

    // a lease that ran out without anyone taking the rows over: still a's to send, once
    queue_numbered(&pool, &clock, 3).await;
    let claim = a.claim().await.expect("claim");
    assert_eq!(claim.len(), 3);
    clock.advance(chrono::Duration::seconds(61));
    let ra = a.send(claim).await.expect("a");
    assert_eq!((ra.sent, ra.lost), (3, 0), "{ra:?}");
    assert_eq!(b.drain().await.expect("b").claimed, 0);
    assert_eq!(server.received_requests().await.expect("recorded").len(), 8);
}

/// On shutdown a dispatcher finishes the message it is sending and gives the rest of its
/// claim back at once (queued, lease and attempt released), instead of leaving them leased
/// until the lease runs out.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_stopping_dispatcher_gives_its_unsent_claim_back(pool: PgPool) {
    let clock = clock();
    let server = provider(Counting(std::sync::atomic::AtomicU64::new(0))).await;
    queue(&pool, &clock, 10, "hello").await;
    // One message a second: the first goes at once, the others wait on the limiter.
    let cfg = DispatchConfig {
        rate_per_sec: NonZeroU32::new(1).expect("non-zero"),
        ..fast()
    };
    let dispatcher = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        cfg,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(dispatcher.run(stop_rx));
    // Wait (bounded) for the first send to reach the provider.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.received_requests().await.map_or(0, |r| r.len()) == 0 {
        assert!(std::time::Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the dispatcher stops without waiting for its lease")
        .expect("dispatcher task");

    let sent = server.received_requests().await.map_or(0, |r| r.len());
    let rows: Vec<(String, i32, Option<String>, bool)> = sqlx::query_as(
        "select status, attempts, lease_owner, lease_until is null from outbox order by id",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        rows.iter().filter(|r| r.0 == "sent").count(),
        sent,
        "{rows:?}"
    );
    assert!(sent < 10, "the stop came before the limiter let all ten go");
    for (status, attempts, owner, no_lease) in rows.iter().filter(|r| r.0 != "sent") {
        assert_eq!(status, "queued", "{rows:?}");
        assert_eq!(
            *attempts, 0,
            "an unsent message's attempt is not counted: {rows:?}"
        );
        assert!(owner.is_none() && *no_lease, "{rows:?}");
    }

    // Another dispatcher sends the rest at once, without waiting for a lease to expire.
    let other = Dispatcher::new(
        pool.clone(),
        at_sender(&server),
        Arc::new(clock.clone()),
        fast(),
    );
    let round = other.drain().await.expect("drain");
    assert_eq!(round.sent, 10 - sent);
    assert_eq!(
        server.received_requests().await.map_or(0, |r| r.len()),
        10,
        "each message reached the provider exactly once"
    );
}
