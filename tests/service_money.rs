//! The service layer's money functions with a real database: each role against each
//! function (allowed, forbidden, or not found out of scope), one audit row per change and
//! none for a refusal, the change and its audit row committing or rolling back together,
//! console form keys, and the roles through the admin API.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::NaiveDate;
use common::*;
use futures_util::future::BoxFuture;
use hashar::{
    app::{load_checked_menus, AppState},
    service::{
        self,
        money::{NewDisbursement, PledgeReceipt, ProjectReceipt},
        Actor, KeepAnswer, Once, Role, ServiceError, ServiceResult,
    },
    store::{PledgeId, ProjectId},
};
use rust_decimal::Decimal;
use serde_json::{json, value::RawValue};
use sqlx::PgPool;

fn state(pool: &PgPool) -> AppState {
    let config = test_config();
    let menus = load_checked_menus(&config).expect("menus pass the check");
    let clock = hashar::clock::ManualClock::new(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 28, 9, 0, 0)
            .single()
            .expect("valid time"),
    );
    AppState::with_clock(pool.clone(), menus, config, Arc::new(clock)).expect("valid settings")
}

fn actor(id: i64, role: Role, communities: &[i64]) -> Actor {
    Actor {
        coordinator_id: id,
        role,
        communities: communities.to_vec(),
        request_id: None,
    }
}

async fn pledge(pool: &PgPool, seed: &Seed, amount: &str, key: &str) -> PledgeId {
    let id: i64 = sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, $4::numeric, 'TJS', 'ussd', $5) returning id",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .bind(amount)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("pledge");
    PledgeId(id)
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 27).expect("a date")
}

fn part(amount: i64) -> PledgeReceipt<'static> {
    PledgeReceipt {
        amount: Some(Decimal::from(amount)),
        received_on: day(),
        method: "cash",
        receipt_no: None,
    }
}

fn loose(seed: &Seed, amount: i64) -> ProjectReceipt<'static> {
    ProjectReceipt {
        project: ProjectId(seed.bridge),
        household: None,
        amount: Decimal::from(amount),
        received_on: day(),
        method: "cash",
        receipt_no: None,
    }
}

fn disbursement(amount: i64) -> NewDisbursement<'static> {
    NewDisbursement {
        amount: Decimal::from(amount),
        disbursed_on: day(),
        partner: "UNDP",
        reference: None,
    }
}

async fn audit_rows(pool: &PgPool) -> i64 {
    // staff.* rows are the fixtures' own (adding a person with a token is audited)
    count(
        pool,
        "select count(*) from audit_log where action not like 'staff.%'",
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ok,
    Forbidden,
    NotFound,
}

fn outcome<T>(r: &ServiceResult<T>) -> Want {
    match r {
        Ok(_) => Want::Ok,
        Err(ServiceError::Forbidden) => Want::Forbidden,
        Err(ServiceError::NotFound(_)) => Want::NotFound,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn each_role_against_each_money_function(pool: PgPool) {
    let seed = seed(&pool).await;
    let state = state(&pool);
    let admin = actor(1, Role::Admin, &[]);
    // enough received on the bridge that every disbursement below is within what is due
    service::money::receive_without_pledge(&state, &admin, loose(&seed, 5000), Once::Always)
        .await
        .expect("money to match");
    use Want::*;
    let table = [
        // who, receive for a pledge, without, cancel, disburse, reverse receipt, reverse disbursement, history
        ("admin", admin.clone(), [Ok, Ok, Ok, Ok, Ok, Ok, Ok]),
        (
            "coordinator of the community",
            actor(2, Role::Coordinator, &[seed.community]),
            [Ok, Ok, Ok, Ok, Forbidden, Forbidden, Ok],
        ),
        (
            "coordinator of another community",
            actor(3, Role::Coordinator, &[seed.other_community]),
            [
                NotFound, Forbidden, NotFound, NotFound, Forbidden, Forbidden, NotFound,
            ],
        ),
        (
            "counsellor",
            actor(4, Role::Counsellor, &[]),
            [
                Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Ok,
            ],
        ),
        (
            "officer of the community",
            actor(5, Role::Officer, &[seed.community]),
            [
                Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Ok,
            ],
        ),
        (
            "officer of another community",
            actor(6, Role::Officer, &[seed.other_community]),
            [
                Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, NotFound,
            ],
        ),
    ];
    for (n, (who, a, want)) in table.into_iter().enumerate() {
        let to_receive = pledge(&pool, &seed, "1000", &format!("r{n}")).await;
        let to_cancel = pledge(&pool, &seed, "50", &format!("c{n}")).await;
        // what a reversal reverses, recorded by the admin
        let receipt =
            service::money::receive_without_pledge(&state, &admin, loose(&seed, 7), Once::Always)
                .await
                .expect("a receipt to reverse");
        let paid = service::money::disburse(
            &state,
            &admin,
            ProjectId(seed.bridge),
            disbursement(3),
            Once::Always,
        )
        .await
        .expect("a disbursement to reverse");
        let mut got = Vec::new();
        // each change writes one audit row when allowed and none when refused
        let mut check = |what: &str, w: Want, before: i64, after: i64, reads: bool| {
            let written = after - before;
            let expected = i64::from(w == Ok && !reads);
            assert_eq!(
                written, expected,
                "{who}: {what} wrote {written} audit rows"
            );
            got.push(w);
        };
        let b = audit_rows(&pool).await;
        let r = service::money::receive_for_pledge(&state, &a, to_receive, part(100), Once::Always)
            .await;
        check("receive", outcome(&r), b, audit_rows(&pool).await, false);
        let b = audit_rows(&pool).await;
        let r =
            service::money::receive_without_pledge(&state, &a, loose(&seed, 5), Once::Always).await;
        check(
            "receive without",
            outcome(&r),
            b,
            audit_rows(&pool).await,
            false,
        );
        let b = audit_rows(&pool).await;
        let r = service::money::cancel(&state, &a, to_cancel, "asked to", Once::Always).await;
        check("cancel", outcome(&r), b, audit_rows(&pool).await, false);
        let b = audit_rows(&pool).await;
        let r = service::money::disburse(
            &state,
            &a,
            ProjectId(seed.bridge),
            disbursement(1),
            Once::Always,
        )
        .await;
        check("disburse", outcome(&r), b, audit_rows(&pool).await, false);
        let b = audit_rows(&pool).await;
        let r = service::money::reverse_receipt(&state, &a, receipt.id, "typo", Once::Always).await;
        check(
            "reverse receipt",
            outcome(&r),
            b,
            audit_rows(&pool).await,
            false,
        );
        let b = audit_rows(&pool).await;
        let r =
            service::money::reverse_disbursement(&state, &a, paid.id, "typo", Once::Always).await;
        check(
            "reverse disbursement",
            outcome(&r),
            b,
            audit_rows(&pool).await,
            false,
        );
        let b = audit_rows(&pool).await;
        let r = service::money::history(&state, &a, to_receive).await;
        check("history", outcome(&r), b, audit_rows(&pool).await, true);
        assert_eq!(got, want, "{who}");
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledges_history_shows_its_audit_rows(pool: PgPool) {
    let seed = seed(&pool).await;
    let state = state(&pool);
    let coordinator = actor(2, Role::Coordinator, &[seed.community]);
    let p = pledge(&pool, &seed, "300", "h1").await;
    let receipt =
        service::money::receive_for_pledge(&state, &coordinator, p, part(100), Once::Always)
            .await
            .expect("a receipt");
    let admin = actor(1, Role::Admin, &[]);
    service::money::reverse_receipt(&state, &admin, receipt.id, "wrong pledge", Once::Always)
        .await
        .expect("reversed");
    let h = service::money::history(&state, &coordinator, p)
        .await
        .expect("history");
    assert_eq!(h.outstanding, Decimal::from(300));
    let rows: Vec<_> = h
        .audit
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("receipt.reverse", "coordinator:1"),
            ("receipt.record", "coordinator:2")
        ]
    );
    let first = &h.audit[1];
    assert_eq!(first.subject_kind, "pledge");
    assert_eq!(first.subject_id, p.0);
    assert_eq!(first.community_id.map(|c| c.0), Some(seed.community));
    assert_eq!(
        first.detail,
        json!({
            "before": {"outstanding": "300.00", "status": "pledged"},
            "after": {"outstanding": "200.00", "receipt": receipt.id, "amount": "100.00"}
        })
    );
}

/// An edge whose answer cannot be kept: the transaction fails at its very end.
struct FailingKeeper;

impl KeepAnswer for FailingKeeper {
    fn keep<'c>(
        &'c self,
        _: &'c mut sqlx::PgConnection,
        _: &'c RawValue,
    ) -> BoxFuture<'c, ServiceResult<()>> {
        Box::pin(async { Err(ServiceError::Db(sqlx::Error::PoolTimedOut)) })
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_change_and_its_audit_row_commit_or_roll_back_together(pool: PgPool) {
    let seed = seed(&pool).await;
    let state = state(&pool);
    let coordinator = actor(2, Role::Coordinator, &[seed.community]);
    let p = pledge(&pool, &seed, "300", "x1").await;
    let receipts_of = |p: PledgeId| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from receipts where pledge_id = $1")
                .bind(p.0)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    // failing after the receipt, its SMS and its audit row were written: nothing stays
    let r = service::money::receive_for_pledge(
        &state,
        &coordinator,
        p,
        part(100),
        Once::Answer(&FailingKeeper),
    )
    .await;
    assert!(matches!(r, Err(ServiceError::Db(_))), "{r:?}");
    assert_eq!(receipts_of(p).await, 0);
    assert_eq!(audit_rows(&pool).await, 0);
    assert_eq!(count(&pool, "select count(*) from outbox").await, 0);
    // the audit row refused: the receipt is not recorded either
    sqlx::query(
        "create function refuse_audit() returns trigger language plpgsql as $$
         begin raise exception 'the audit log is full'; end $$",
    )
    .execute(&pool)
    .await
    .expect("function");
    sqlx::query("create trigger refuse_audit before insert on audit_log for each row execute function refuse_audit()")
        .execute(&pool)
        .await
        .expect("trigger");
    let r =
        service::money::receive_for_pledge(&state, &coordinator, p, part(100), Once::Always).await;
    assert!(matches!(r, Err(ServiceError::Db(_))), "{r:?}");
    assert_eq!(receipts_of(p).await, 0);
    let r = service::money::cancel(&state, &coordinator, p, "asked to", Once::Always).await;
    assert!(matches!(r, Err(ServiceError::Db(_))), "{r:?}");
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        0
    );
    sqlx::query("drop trigger refuse_audit on audit_log")
        .execute(&pool)
        .await
        .expect("drop");
    // and both when all is well
    service::money::receive_for_pledge(&state, &coordinator, p, part(100), Once::Always)
        .await
        .expect("received");
    assert_eq!(receipts_of(p).await, 1);
    assert_eq!(audit_rows(&pool).await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_repeated_form_key_returns_the_first_result(pool: PgPool) {
    let seed = seed(&pool).await;
    let state = state(&pool);
    let coordinator = actor(2, Role::Coordinator, &[seed.community]);
    let p = pledge(&pool, &seed, "300", "f1").await;
    let first = service::money::receive_for_pledge(
        &state,
        &coordinator,
        p,
        part(100),
        Once::Form("form-1"),
    )
    .await
    .expect("first");
    // a double tap: the same receipt, nothing recorded twice
    let again = service::money::receive_for_pledge(
        &state,
        &coordinator,
        p,
        part(100),
        Once::Form("form-1"),
    )
    .await
    .expect("again");
    assert_eq!(again.id, first.id);
    assert_eq!(again.amount, first.amount);
    assert_eq!(again.recorded_at, first.recorded_at);
    assert_eq!(
        count(
            &pool,
            "select count(*) from receipts where pledge_id is not null"
        )
        .await,
        1
    );
    assert_eq!(audit_rows(&pool).await, 1);
    // the key for something else, or by someone else: refused, nothing done
    let other = service::money::cancel(&state, &coordinator, p, "x", Once::Form("form-1")).await;
    assert!(
        matches!(
            other,
            Err(ServiceError::Invalid {
                field: "form_key",
                key: "form.key_reused",
                ..
            })
        ),
        "{other:?}"
    );
    let someone = actor(9, Role::Coordinator, &[seed.community]);
    let r =
        service::money::receive_for_pledge(&state, &someone, p, part(100), Once::Form("form-1"))
            .await;
    assert!(matches!(r, Err(ServiceError::Invalid { .. })), "{r:?}");
    assert_eq!(audit_rows(&pool).await, 1);
    // a refused first try keeps no key: the form can be sent again
    let too_much = service::money::receive_for_pledge(
        &state,
        &coordinator,
        p,
        part(1000),
        Once::Form("form-2"),
    )
    .await;
    assert!(
        matches!(
            too_much,
            Err(ServiceError::Conflict {
                rule: "money.more_than_outstanding",
                ..
            })
        ),
        "{too_much:?}"
    );
    service::money::receive_for_pledge(&state, &coordinator, p, part(200), Once::Form("form-2"))
        .await
        .expect("the same form, corrected");
    assert_eq!(audit_rows(&pool).await, 2);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn counsellors_and_officers_through_the_api(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let p = pledge(&pool, &seed, "300", "a1").await;
    let add = |phone: &'static str, communities: &'static [&'static str], role: Role| {
        let pool = pool.clone();
        async move {
            let communities: Vec<String> = communities.iter().map(|c| (*c).to_owned()).collect();
            hashar::api::auth::add_staff(&pool, "Staff", phone, &communities, Some(role))
                .await
                .expect("staff")
                .2
        }
    };
    let counsellor = add("+992900000501", &[], Role::Counsellor).await;
    let officer = add("+992900000502", &["anzob"], Role::Officer).await;
    assert!(matches!(
        hashar::api::auth::add_staff(&pool, "O", "+992900000503", &[], Some(Role::Officer)).await,
        Err(hashar::api::auth::CoordinatorError::OfficerScope)
    ));
    let receipt = json!({"amount": "10", "received_on": "2026-11-27", "method": "cash"});
    for (who, token) in [("counsellor", &counsellor), ("officer", &officer)] {
        let (status, _, body) = app
            .api_keyed(
                "POST",
                &format!("/api/v1/pledges/{p}/receipts", p = p.0),
                Some(&receipt),
                Some(token),
                Some(&format!("{who}-1")),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}: {body}");
        let (status, body) = call(
            &app,
            "GET",
            &format!("/api/v1/pledges/{}", p.0),
            json!(null),
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        assert_eq!(body["audit"], json!([]), "{who}: nothing was done");
    }
    // a counsellor sees every community; an officer only theirs, and changes nothing
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&pool)
        .await
        .expect("water");
    let (status, _) = call(
        &app,
        "GET",
        &format!("/api/v1/projects/{water}"),
        json!(null),
        &counsellor,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        "GET",
        &format!("/api/v1/projects/{water}"),
        json!(null),
        &officer,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "phones": ["+992901119999"]}),
        &officer,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(audit_rows(&pool).await, 0);
    // the API's pledge history carries the audit rows
    let (_, _, admin) = hashar::api::auth::add_coordinator(&pool, "A", "+992900000505", &[], true)
        .await
        .expect("admin");
    let (status, _, _) = app
        .api_keyed(
            "POST",
            &format!("/api/v1/pledges/{}/receipts", p.0),
            Some(&receipt),
            Some(&admin),
            Some("admin-1"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = call(
        &app,
        "GET",
        &format!("/api/v1/pledges/{}", p.0),
        json!(null),
        &counsellor,
    )
    .await;
    let audit = body["audit"].as_array().expect("audit rows");
    assert_eq!(audit.len(), 1, "{body}");
    assert_eq!(audit[0]["action"], "receipt.record");
    assert_eq!(audit[0]["detail"]["after"]["outstanding"], "290.00");
    // re-adding an admin never makes them less
    let (id, _, _) = hashar::api::auth::add_coordinator(&pool, "Admin", "+992900000504", &[], true)
        .await
        .expect("admin");
    hashar::api::auth::add_staff(
        &pool,
        "Admin",
        "+992900000504",
        &["anzob".into()],
        Some(Role::Officer),
    )
    .await
    .expect("again");
    let (role, is_admin): (String, bool) =
        sqlx::query_as("select role, is_admin from coordinators where id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("role");
    assert_eq!((role.as_str(), is_admin), ("admin", true));
}

/// The phone menu's cash and notices find their coordinator through
/// `staff::coordinator_by_phone`: counsellors and officers are not found there, so they
/// record no cash by phone either.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_phone_menu_handles_money_only_for_admins_and_coordinators(pool: PgPool) {
    seed(&pool).await;
    for (phone, role, found) in [
        ("+992900000601", Role::Admin, true),
        ("+992900000602", Role::Coordinator, true),
        ("+992900000603", Role::Counsellor, false),
        ("+992900000604", Role::Officer, false),
    ] {
        hashar::api::auth::add_staff(&pool, "Staff", phone, &["anzob".into()], Some(role))
            .await
            .expect("staff");
        let mut conn = pool.acquire().await.expect("conn");
        let phone = hashar::domain::Phone::parse(phone).expect("phone");
        let c = hashar::store::staff::coordinator_by_phone(&mut conn, &phone)
            .await
            .expect("read");
        assert_eq!(c.is_some(), found, "{role}");
        assert_eq!(c.is_some_and(|c| c.admin), role == Role::Admin, "{role}");
    }
}

/// Cash recorded by phone writes its audit row in the hop's transaction, once; an officer
/// who dials the coordinator menu records nothing.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn cash_by_phone_is_audited_once_and_refused_to_officers(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let code: String = sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 1000, 'TJS', 'ussd', 'p1') returning code",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .fetch_one(&pool)
    .await
    .expect("pledge");
    for (phone, role) in [
        ("+992900000701", Role::Officer),
        ("+992900000702", Role::Coordinator),
    ] {
        hashar::api::auth::add_staff(&pool, "Staff", phone, &["anzob".into()], Some(role))
            .await
            .expect("staff");
        hashar::actions::set_pin(
            &pool,
            &hashar::domain::Phone::parse(phone).expect("phone"),
            "246813",
        )
        .await
        .expect("pin");
    }
    let refused = app
        .session("o1", "+992900000701", &["246813", "2", &code])
        .await;
    assert!(
        refused.contains("ваъдаи кушода бо ин рамз нест"),
        "{refused}"
    );
    assert_eq!(count(&pool, "select count(*) from receipts").await, 0);
    assert_eq!(audit_rows(&pool).await, 0);
    let inputs = ["246813", "2", code.as_str(), "300", "1"];
    let done = app.session("c1", "+992900000702", &inputs).await;
    assert!(done.starts_with("END "), "{done}");
    let (_, again) = app.hop("c1", "+992900000702", &inputs.join("*")).await;
    assert_eq!(again, done);
    let rows: Vec<(String, String, i64, serde_json::Value)> =
        sqlx::query_as(
            "select action, subject_kind, subject_id, detail from audit_log where action not like 'staff.%'",
        )
            .fetch_all(&pool)
            .await
            .expect("audit");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (action, kind, _, detail) = &rows[0];
    assert_eq!(
        (action.as_str(), kind.as_str()),
        ("receipt.record", "pledge")
    );
    assert_eq!(detail["after"]["outstanding"], "700.00");
    assert_eq!(detail["after"]["by"], "phone");
}
