//! CSV exports: exact output (header, Cyrillic, two-decimal amounts, ISO 8601 dates, RFC 4180
//! quoting), formula injection neutralised, scope, a large export that arrives as a stream
//! of many body chunks, and exports that cannot starve the webhooks.

mod common;

use axum::{
    body::Body,
    http::{header, HeaderMap, Request, StatusCode},
};
use common::*;
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    /// Data frames the body arrived in.
    frames: usize,
    largest_frame: usize,
}

async fn get(app: &TestApp, uri: &str, token: &str) -> Answer {
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    let mut frames = 0;
    let mut largest_frame = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            frames += 1;
            largest_frame = largest_frame.max(data.len());
            bytes.extend_from_slice(data);
        }
    }
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes).expect("utf-8 body"),
        frames,
        largest_frame,
    }
}

async fn project_id(pool: &PgPool, code: &str) -> i64 {
    sqlx::query_scalar("select id from projects where code = $1")
        .bind(code)
        .fetch_one(pool)
        .await
        .expect("project")
}

fn csv(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

fn assert_forbidden(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.body);
    let json: serde_json::Value = serde_json::from_str(&a.body).expect("json error");
    assert_eq!(json["error"]["code"], "forbidden", "{what}");
}

const PLEDGE_HEADER: &str = "id,created_at,community,project,household_id,phone,amount,currency,said_amount,said_currency,rate,channel,status,received,last_received_on,cancelled_at,cancel_reason,code";

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledges_export_is_exact_and_scoped(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let water = project_id(&pool, "WATER").await;
    let sarazm_phone = "+992941112233";
    let sarazm_household =
        add_household(&pool, seed.other_community, Some("ru"), sarazm_phone).await;
    let h = seed.household;
    let pledge = |project: i64,
                  household: i64,
                  phone: &'static str,
                  amount: &'static str,
                  channel: &'static str,
                  key: &'static str,
                  created: &'static str,
                  said: Option<(&'static str, &'static str, &'static str)>| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at,
                                      said_amount, said_currency, rate)
                 values ($1, $2, $3, $4::numeric, 'TJS', $5, $6, $7::timestamptz, $8::numeric, $9, $10::numeric) returning id",
            )
            .bind(project)
            .bind(household)
            .bind(phone)
            .bind(amount)
            .bind(channel)
            .bind(key)
            .bind(created)
            .bind(said.map(|s| s.0))
            .bind(said.map(|s| s.1))
            .bind(said.map(|s| s.2))
            .fetch_one(&pool)
            .await
            .expect("pledge")
        }
    };
    let p1 = pledge(
        seed.bridge,
        h,
        PHONE_TG,
        "1500.50",
        "ussd",
        "x1",
        "2026-11-20 08:30:00+00",
        Some(("140.00", "USD", "10.71785714")),
    )
    .await;
    let p2 = pledge(
        seed.roof,
        h,
        PHONE_TG,
        "200",
        "sms",
        "x2",
        "2026-11-21 23:59:59+00",
        None,
    )
    .await;
    let p3 = pledge(
        water,
        sarazm_household,
        sarazm_phone,
        "300",
        "api",
        "x3",
        "2026-11-22 00:00:00+00",
        None,
    )
    .await;
    for (amount, day) in [("500.25", "2026-11-21"), ("1000.25", "2026-11-22")] {
        sqlx::query(
            "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
             values ($1, $2, $3::numeric, 'TJS', $4::date, 'cash', 'test')",
        )
        .bind(seed.bridge)
        .bind(p1)
        .bind(amount)
        .bind(day)
        .execute(&pool)
        .await
        .expect("receipt");
    }
    sqlx::query(
        "insert into pledge_cancellations (pledge_id, reason, cancelled_by, cancelled_at)
         values ($1, $2, 'test', '2026-11-23 10:00:00+00')",
    )
    .bind(p2)
    .bind("Ба Душанбе кӯчид, \"ҳама\" рафтанд")
    .execute(&pool)
    .await
    .expect("cancel");

    let code = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("select code from pledges where id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("code")
        }
    };
    let (c1, c2, c3) = (code(p1).await, code(p2).await, code(p3).await);
    let row1 = format!("{p1},2026-11-20T08:30:00Z,anzob,BRIDGE,{h},'+992901112233,1500.50,TJS,140.00,USD,10.71785714,ussd,received,1500.50,2026-11-22,,,{c1}");
    let row2 = format!("{p2},2026-11-21T23:59:59Z,anzob,ROOF,{h},'+992901112233,200.00,TJS,,,,sms,cancelled,0.00,,2026-11-23T10:00:00Z,\"Ба Душанбе кӯчид, \"\"ҳама\"\" рафтанд\",{c2}");
    let row3 = format!("{p3},2026-11-22T00:00:00Z,sarazm,WATER,{sarazm_household},'+992941112233,300.00,TJS,,,,api,pledged,0.00,,,,{c3}");
    let header = PLEDGE_HEADER.to_owned();

    let a = get(&app, "/api/v1/exports/pledges.csv", &t.admin).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        a.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"pledges-20261128.csv\""
    );
    assert_eq!(a.body, csv(&[&header, &row1, &row2, &row3]));
    // for Excel on Windows: the same file after a UTF-8 byte-order mark, on every export
    let a = get(&app, "/api/v1/exports/pledges.csv?bom=true", &t.admin).await;
    assert_eq!(
        a.body,
        format!("\u{feff}{}", csv(&[&header, &row1, &row2, &row3]))
    );
    for export in ["project-totals", "households", "broadcasts"] {
        let a = get(
            &app,
            &format!("/api/v1/exports/{export}.csv?bom=true"),
            &t.admin,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{export}");
        assert!(a.body.starts_with('\u{feff}'), "{export}");
        assert!(!a.body[3..].contains('\u{feff}'), "{export}");
    }
    let a = get(&app, "/api/v1/exports/pledges.csv?bom=yes", &t.admin).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);

    // a coordinator sees their own community only, with or without the filter
    let a = get(&app, "/api/v1/exports/pledges.csv", &t.own).await;
    assert_eq!(a.body, csv(&[&header, &row1, &row2]));
    let a = get(
        &app,
        &format!("/api/v1/exports/pledges.csv?community={}", seed.community),
        &t.own,
    )
    .await;
    assert_eq!(a.body, csv(&[&header, &row1, &row2]));
    let a = get(&app, "/api/v1/exports/pledges.csv", &t.other).await;
    assert_eq!(a.body, csv(&[&header, &row3]));
    let a = get(
        &app,
        &format!(
            "/api/v1/exports/pledges.csv?community={}",
            seed.other_community
        ),
        &t.own,
    )
    .await;
    assert_forbidden(&a, "another community's pledges");
    // another community's project: nothing but the header
    let a = get(
        &app,
        &format!("/api/v1/exports/pledges.csv?project={water}"),
        &t.own,
    )
    .await;
    assert_eq!(a.body, csv(&[&header]));
    let a = get(
        &app,
        &format!("/api/v1/exports/pledges.csv?project={}", seed.roof),
        &t.admin,
    )
    .await;
    assert_eq!(a.body, csv(&[&header, &row2]));

    // days are UTC days, both ends inclusive
    let a = get(
        &app,
        "/api/v1/exports/pledges.csv?from=2026-11-21&to=2026-11-21",
        &t.admin,
    )
    .await;
    assert_eq!(a.body, csv(&[&header, &row2]));
    let a = get(
        &app,
        "/api/v1/exports/pledges.csv?from=2026-11-22",
        &t.admin,
    )
    .await;
    assert_eq!(a.body, csv(&[&header, &row3]));
    let a = get(&app, "/api/v1/exports/pledges.csv?to=2026-11-20", &t.admin).await;
    assert_eq!(a.body, csv(&[&header, &row1]));
    let a = get(
        &app,
        "/api/v1/exports/pledges.csv?from=2026-11-22&to=2026-11-21",
        &t.admin,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);

    // a standard CSV reader gets the cells back, quotes and commas included
    let a = get(&app, "/api/v1/exports/pledges.csv", &t.own).await;
    let mut reader = csv::Reader::from_reader(a.body.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[1][16], "Ба Душанбе кӯчид, \"ҳама\" рафтанд");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn project_totals_export_is_exact_and_scoped(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let water = project_id(&pool, "WATER").await;
    receive(&pool, seed.bridge, "1500.50").await;
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 2000, 'TJS', 'ussd', 'totals-1')",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .execute(&pool)
    .await
    .expect("pledge");
    sqlx::query(
        "insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, recorded_by)
         values ($1, 500, 'TJS', '2026-11-25', 'Aga Khan Foundation', 'test')",
    )
    .bind(seed.bridge)
    .execute(&pool)
    .await
    .expect("disbursement");

    let header = "project_id,community,code,name_tg,name_ru,name_en,status,currency,target,match_ratio,match_cap,pledged,outstanding,received,matched,matched_total,percent,disbursed,match_due".to_owned();
    let bridge = format!("{},anzob,BRIDGE,Пул,Мост,Bridge,open,TJS,10000.00,1,,2000.00,2000.00,1500.50,1500.50,3001.00,30.0,500.00,1000.50", seed.bridge);
    let old = format!("{},anzob,OLD,Кӯҳна,Старый,Old,closed,TJS,5000.00,1,,0.00,0.00,0.00,0.00,0.00,0.0,0.00,0.00", seed.closed);
    let roof = format!("{},anzob,ROOF,Боми мактаб,Крыша школы,School roof,open,TJS,20000.00,2,3000.00,0.00,0.00,0.00,0.00,0.00,0.0,0.00,0.00", seed.roof);
    let water = format!("{water},sarazm,WATER,Об,Вода,Water,open,TJS,8000.00,1,,0.00,0.00,0.00,0.00,0.00,0.0,0.00,0.00");

    let a = get(&app, "/api/v1/exports/project-totals.csv", &t.own).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        a.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"project-totals-20261128.csv\""
    );
    assert_eq!(a.body, csv(&[&header, &bridge, &old, &roof]));
    let a = get(&app, "/api/v1/exports/project-totals.csv", &t.admin).await;
    assert_eq!(a.body, csv(&[&header, &bridge, &old, &roof, &water]));
    let a = get(
        &app,
        &format!(
            "/api/v1/exports/project-totals.csv?community={}",
            seed.other_community
        ),
        &t.admin,
    )
    .await;
    assert_eq!(a.body, csv(&[&header, &water]));
    let a = get(&app, "/api/v1/exports/project-totals.csv", &t.other).await;
    assert_eq!(a.body, csv(&[&header, &water]));
    let a = get(
        &app,
        &format!(
            "/api/v1/exports/project-totals.csv?community={}",
            seed.community
        ),
        &t.other,
    )
    .await;
    assert_forbidden(&a, "another community's totals");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn households_export_neutralises_formulas(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let sarazm = seed.other_community;
    let household = |name: &'static str,
                     language: Option<&'static str>,
                     join_code: &'static str,
                     phones: &'static [&'static str]| {
        let pool = pool.clone();
        async move {
            let id: i64 = sqlx::query_scalar(
                "insert into households (community_id, name, language, join_code) values ($1, $2, $3, $4) returning id",
            )
            .bind(sarazm)
            .bind(name)
            .bind(language)
            .bind(join_code)
            .fetch_one(&pool)
            .await
            .expect("household");
            for phone in phones {
                sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
                    .bind(phone)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .expect("phone");
            }
            id
        }
    };
    let evil = household(
        "=HYPERLINK(\"http://evil\")",
        Some("tg"),
        "111111",
        &["+992941000002", "+992941000001"],
    )
    .await;
    let sum = household("@SUM(A1)", None, "222222", &[]).await;
    let plus = household(
        "+7 (912) 000-00-00",
        Some("ru"),
        "333333",
        &["+79120000000"],
    )
    .await;
    let minus = household("-2+3", Some("en"), "444444", &[]).await;
    let tab = household("\t=1+1", Some("en"), "555555", &[]).await;
    let plain = household(
        "Хонаводаи Раҳимов, Саразм",
        Some("tg"),
        "666666",
        &["+992941000003"],
    )
    .await;
    sqlx::query("insert into sms_optouts (phone, opted_out_at) values ('+992941000002', now()), ('+992941000003', now())")
        .execute(&pool)
        .await
        .expect("opt-outs");

    let header =
        "household_id,community,name,language,join_code,phones,opted_out_phones".to_owned();
    let rows = [
        header.clone(),
        format!("{evil},sarazm,\"'=HYPERLINK(\"\"http://evil\"\")\",tg,111111,'+992941000001 +992941000002,'+992941000002"),
        format!("{sum},sarazm,'@SUM(A1),,222222,,"),
        format!("{plus},sarazm,'+7 (912) 000-00-00,ru,333333,'+79120000000,"),
        format!("{minus},sarazm,'-2+3,en,444444,,"),
        format!("{tab},sarazm,'\t=1+1,en,555555,,"),
        format!("{plain},sarazm,\"Хонаводаи Раҳимов, Саразм\",tg,666666,'+992941000003,'+992941000003"),
    ];
    let a = get(
        &app,
        &format!("/api/v1/exports/households.csv?community={sarazm}"),
        &t.admin,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        a.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"households-20261128.csv\""
    );
    assert_eq!(a.body, csv(&rows.each_ref().map(String::as_str)));
    let a = get(&app, "/api/v1/exports/households.csv", &t.other).await;
    assert_eq!(a.body, csv(&rows.each_ref().map(String::as_str)));
    // no cell a spreadsheet would evaluate
    let mut reader = csv::Reader::from_reader(a.body.as_bytes());
    for record in reader.records() {
        let record = record.expect("record");
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
    }

    // the other community's coordinator: their four seeded households, none of these
    let a = get(&app, "/api/v1/exports/households.csv", &t.own).await;
    assert_eq!(a.status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(a.body.as_bytes());
    let communities: Vec<String> = reader
        .records()
        .map(|r| r.expect("record")[1].to_owned())
        .collect();
    assert_eq!(communities, vec!["anzob"; 4]);
    let a = get(
        &app,
        &format!("/api/v1/exports/households.csv?community={sarazm}"),
        &t.own,
    )
    .await;
    assert_forbidden(&a, "another community's households");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_query_that_fails_at_once_is_a_json_500(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    sqlx::query("alter table sms_optouts rename to sms_optouts_gone")
        .execute(&pool)
        .await
        .expect("rename");
    let a = get(&app, "/api/v1/exports/households.csv", &t.admin).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.body);
    let json: serde_json::Value = serde_json::from_str(&a.body).expect("json error");
    assert_eq!(json["error"]["code"], "internal");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_large_export_streams_in_many_chunks(pool: PgPool) {
    const N: i64 = 100_000;
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    // One statement for all the pledges. The running-sums trigger is switched off for it and
    // the project's sums are added once afterwards: row by row it would update the same few
    // `project_pledge_sums` rows 100,000 times in one transaction, and each update walks its
    // row's growing chain of versions (minutes in total instead of a second). The same
    // holds for the overview's hourly and weekly sums (`pledges_hour_sums`), which this
    // test does not read: switched off too, and not rebuilt.
    let mut tx = pool.begin().await.expect("transaction");
    for trigger in ["pledges_sums", "pledges_hour_sums"] {
        sqlx::query(&format!("alter table pledges disable trigger {trigger}"))
            .execute(&mut *tx)
            .await
            .expect("trigger off");
    }
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
         select $1, $2, $3, (g % 1000) + 1.50, 'TJS', 'ussd', 'bulk-' || g,
                timestamptz '2026-11-01 00:00:00+00' + g * interval '1 second'
         from generate_series(1, $4::bigint) g",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .bind(N)
    .execute(&mut *tx)
    .await
    .expect("bulk pledges");
    for trigger in ["pledges_sums", "pledges_hour_sums"] {
        sqlx::query(&format!("alter table pledges enable trigger {trigger}"))
            .execute(&mut *tx)
            .await
            .expect("trigger on");
    }
    sqlx::query(
        "update project_pledge_sums s set pledged = pledged + b.total, outstanding = outstanding + b.total
         from (select pledge_stripe(id) as stripe, sum(amount) as total from pledges where project_id = $1 group by 1) b
         where s.project_id = $1 and s.stripe = b.stripe",
    )
    .bind(seed.bridge)
    .execute(&mut *tx)
    .await
    .expect("sums");
    tx.commit().await.expect("commit");

    let a = get(&app, "/api/v1/exports/pledges.csv", &t.admin).await;
    assert_eq!(a.status, StatusCode::OK);
    let totals = get(&app, "/api/v1/exports/project-totals.csv", &t.admin).await;
    let bridge = format!("{},anzob,BRIDGE,", seed.bridge);
    let cents: i64 = (1..=N).map(|g| (g % 1000) * 100 + 150).sum();
    let pledged = format!("{}.{:02}", cents / 100, cents % 100);
    assert!(
        totals
            .body
            .lines()
            .any(|l| l.starts_with(&bridge) && l.contains(&format!(",{pledged},{pledged},"))),
        "sums kept: {}",
        totals.body
    );
    let lines: Vec<&str> = a.body.split_terminator("\r\n").collect();
    assert_eq!(lines.len() as i64, N + 1, "header and one line per pledge");
    assert_eq!(lines[0], PLEDGE_HEADER);
    assert!(
        lines[N as usize].contains(",2026-11-02T03:46:40Z,anzob,BRIDGE,"),
        "{}",
        lines[N as usize]
    );
    assert!(
        lines[N as usize].contains(",1.50,TJS,"),
        "{}",
        lines[N as usize]
    );
    // ~90 bytes a line in chunks of about 32 KiB: hundreds of frames, never one big body
    assert!(
        a.frames > 100,
        "{} frames for {} bytes",
        a.frames,
        a.body.len()
    );
    assert!(
        a.largest_frame < 64 * 1024,
        "largest frame {} bytes",
        a.largest_frame
    );

    // Issue 8, point 7: the file is read whole before it is sent, so once the answer has
    // started no connection runs the export (the old design held one until the client had
    // read the last byte), and the file that arrives is complete.
    let req = Request::get("/api/v1/exports/pledges.csv")
        .header("authorization", format!("Bearer {}", t.admin))
        .body(Body::empty())
        .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first frame").expect("data");
    assert!(first.data_ref().is_some());
    let running: i64 = count(
        &pool,
        "select count(*) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()
           and state <> 'idle' and query like '%left join pledge_cancellations%'",
    )
    .await;
    assert_eq!(running, 0, "no connection held by the export being sent");
    let mut received = first.data_ref().map_or(0, |d| d.len());
    while let Some(frame) = body.frame().await {
        received += frame.expect("data").data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(received, a.body.len(), "the whole file");
}

fn export_request(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

/// Eight exports whose clients never read (issue 8, point 7): their bodies are held,
/// unpolled, while USSD hops, SMS webhooks, `/readyz` and the API go on answering.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn stalled_exports_starve_nothing(pool: PgPool) {
    let s = seed(&pool).await;
    let t = tokens(&pool).await;
    sqlx::query(
        "insert into households (community_id, language) select $1, 'tg' from generate_series(1, 10000)",
    )
    .bind(s.community)
    .execute(&pool)
    .await
    .expect("households");
    let mut config = test_config();
    // the server's defaults: 8 webhook connections, 4 for the API, 2 exports at a time
    config.db_pool_size = 8;
    config.db_timeout_ms = 3_000;
    let app = app_as_served(pool.clone(), config).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let resp = app
            .router
            .clone()
            .oneshot(export_request("/api/v1/exports/households.csv", &t.admin))
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::OK);
        stalled.push(resp);
    }
    // a hop answers its menu, not "busy"
    let (status, body) = app.hop("stalled-1", PHONE_TG, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("CON "), "{body}");
    let (status, body) = app.hop("stalled-1", PHONE_TG, "1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("CON "), "{body}");
    let text = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id", "st-1"),
            ("from", PHONE_TG),
            ("to", "4274"),
            ("text", "TOTAL"),
        ])
        .finish();
    let (status, body) = app.post_form("/webhooks/africastalking/sms", text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(
        &app,
        "GET",
        "/api/v1/communities",
        serde_json::Value::Null,
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // a ninth export still gets its file, and the stalled ones are whole when read at last
    let ninth = get(&app, "/api/v1/exports/households.csv", &t.admin).await;
    assert_eq!(ninth.status, StatusCode::OK);
    for resp in stalled {
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(bytes, ninth.body.as_bytes());
    }
    assert_eq!(ninth.body.lines().count(), 1 + 4 + 10_000);
}

/// At most `HASHAR_EXPORTS_MAX_CONCURRENT` exports read at a time (the next is 503 at
/// once), an export's query has its own statement timeout, and every pooled connection
/// carries the statement and idle-in-transaction timeouts.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn exports_are_bounded_and_time_out(pool: PgPool) {
    seed(&pool).await;
    let t = tokens(&pool).await;
    let mut config = test_config();
    config.exports_max_concurrent = 2;
    config.export_statement_timeout_ms = 60_000;
    let app = app_as_served(pool.clone(), config.clone()).await;
    // the exports wait on a lock another transaction holds: a slow query, as far as they know
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query("lock table pledge_cancellations in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let waiting = || async {
        count(
            &pool,
            "select count(*) from pg_stat_activity where datname = current_database()
             and wait_event_type = 'Lock' and query like '%pledge_cancellations%'",
        )
        .await
    };
    let mut running = Vec::new();
    for _ in 0..2 {
        let router = app.router.clone();
        let token = t.admin.clone();
        running.push(tokio::spawn(async move {
            router
                .oneshot(export_request("/api/v1/exports/pledges.csv", &token))
                .await
                .expect("answer")
                .status()
        }));
    }
    let mut polls = 0;
    while waiting().await < 2 {
        polls += 1;
        assert!(polls < 600, "the two exports never reached the lock");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let third = get(&app, "/api/v1/exports/project-totals.csv", &t.admin).await;
    assert_eq!(
        third.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        third.body
    );
    assert!(third.body.contains("\"busy\""), "{}", third.body);
    assert!(third.headers.contains_key(header::RETRY_AFTER));
    locker.rollback().await.expect("unlock");
    for r in running {
        assert_eq!(r.await.expect("export task"), StatusCode::OK);
    }
    assert_eq!(
        get(&app, "/api/v1/exports/project-totals.csv", &t.admin)
            .await
            .status,
        StatusCode::OK
    );

    // an export's statement timeout: a query stuck longer is cancelled, the export fails
    // cleanly and its connection and slot come back
    config.export_statement_timeout_ms = 200;
    let app = app_as_served(pool.clone(), config.clone()).await;
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query("lock table pledge_cancellations in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let stuck = get(&app, "/api/v1/exports/pledges.csv", &t.admin).await;
    assert_eq!(
        stuck.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        stuck.body
    );
    assert_eq!(waiting().await, 0);
    locker.rollback().await.expect("unlock");
    assert_eq!(
        get(&app, "/api/v1/exports/pledges.csv", &t.admin)
            .await
            .status,
        StatusCode::OK
    );

    // the session settings of both pools
    let pools = hashar::store::pool::pools(&pool.connect_options(), &config);
    for p in [&pools.webhooks, &pools.api] {
        let (statement, idle): (String, String) = sqlx::query_as(
            "select current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')",
        )
        .fetch_one(p)
        .await
        .expect("settings");
        assert_eq!((statement.as_str(), idle.as_str()), ("5s", "10s"));
    }
}
