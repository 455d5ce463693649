//! A number's own language (issue 11): a migrant's `LANG RU` by SMS changes that number's
//! language, not the family's screens at home; a number that never chose one speaks the
//! household's.

mod common;

use axum::http::StatusCode;
use common::*;
use sqlx::PgPool;

const MIGRANT: &str = "+79161234567";

async fn last_reply(pool: &PgPool, phone: &str) -> String {
    sqlx::query_scalar("select body from outbox where phone = $1 order by id desc limit 1")
        .bind(phone)
        .fetch_optional(pool)
        .await
        .expect("outbox")
        .unwrap_or_default()
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_migrants_lang_changes_that_number_only(pool: PgPool) {
    seed(&pool).await;
    sqlx::query("insert into phones (phone, household_id) select $2, household_id from phones where phone = $1")
        .bind(PHONE_TG)
        .bind(MIGRANT)
        .execute(&pool)
        .await
        .expect("migrant phone");
    let app = app(pool.clone()).await;

    // Before: the migrant's number speaks the household's language (Tajik).
    let (_, screen) = app.hop("m-1", MIGRANT, "").await;
    assert!(screen.starts_with("CON Ҳашар"), "{screen}");

    assert_eq!(app.text("lang-1", MIGRANT, "LANG RU").await, StatusCode::OK);
    assert_eq!(last_reply(&pool, MIGRANT).await, "Язык: русский.");

    // The migrant's number is Russian now, on USSD too…
    let (_, screen) = app.hop("m-2", MIGRANT, "").await;
    assert!(screen.starts_with("CON Хашар"), "{screen}");
    // …and the family's number at home is still Tajik, as is the household.
    let (_, screen) = app.hop("home-1", PHONE_TG, "").await;
    assert!(screen.starts_with("CON Ҳашар"), "{screen}");
    let household: Option<String> = sqlx::query_scalar(
        "select h.language from phones p join households h on h.id = p.household_id where p.phone = $1",
    )
    .bind(PHONE_TG)
    .fetch_one(&pool)
    .await
    .expect("household");
    assert_eq!(household.as_deref(), Some("tg"));

    // A message to the household goes to each number in that number's language.
    let help = app.text("help-1", MIGRANT, "HELP").await;
    assert_eq!(help, StatusCode::OK);
    let reply = last_reply(&pool, MIGRANT).await;
    assert!(
        reply.chars().any(|c| ('а'..='я').contains(&c)) && !reply.contains('ҳ'),
        "Russian, not Tajik: {reply}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn broadcast_recipients_get_each_numbers_language(pool: PgPool) {
    let seed = seed(&pool).await;
    sqlx::query("insert into phones (phone, household_id, language) select $2, household_id, 'ru' from phones where phone = $1")
        .bind(PHONE_TG)
        .bind(MIGRANT)
        .execute(&pool)
        .await
        .expect("migrant phone");
    let mut conn = pool.acquire().await.expect("connection");
    let b = hashar::store::broadcasts::Broadcast {
        id: hashar::store::BroadcastId(1),
        communities: vec![hashar::store::CommunityId(seed.community)],
        only_migrants: false,
        only_project: None,
        only_language: None,
        texts: Default::default(),
        vars: Default::default(),
        status: hashar::store::broadcasts::BroadcastStatus::Draft,
        send_at: None,
        rsvp_hours: 0,
        created_by: "test".into(),
        created_at: chrono::Utc::now(),
        meeting: None,
    };
    let people = hashar::store::broadcasts::recipients(&mut conn, &b, hashar::domain::Language::En)
        .await
        .expect("recipients");
    let lang_of = |phone: &str| {
        people
            .iter()
            .find(|r| r.phone == phone)
            .map(|r| r.language)
            .expect("a recipient")
    };
    assert_eq!(lang_of(PHONE_TG), hashar::domain::Language::Tg);
    assert_eq!(lang_of(MIGRANT), hashar::domain::Language::Ru);
}
