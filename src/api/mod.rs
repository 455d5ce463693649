//! The admin HTTP API under `/api/v1`: JSON, bearer tokens, roles. Every route is
//! registered through [`OpenApiRouter`] with a `#[utoipa::path]`, so the OpenAPI document
//! served at `/api/v1/openapi.json` lists every route — and the authorisation test walks
//! that document, so a new route cannot be added without being covered.

pub mod auth;
pub mod broadcasts;
pub mod callbacks;
pub mod communities;
pub mod error;
pub mod exports;
pub mod households;
pub mod idempotency;
pub mod meetings;
pub mod money;
pub mod outreach;
pub mod pledges;
pub mod projects;
pub mod rates;
pub mod tips;

use std::sync::Arc;

use axum::{routing::get, Json, Router};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hashar admin API", description = "Coordinators: communities, projects, households, money, broadcasts."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and their OpenAPI document.
pub fn router(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(communities::list, communities::create))
        .routes(routes!(communities::get_one, communities::update))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get_one, projects::update))
        .routes(routes!(pledges::list))
        .routes(routes!(money::get_pledge))
        .routes(routes!(money::receive_for_pledge))
        .routes(routes!(money::cancel))
        .routes(routes!(money::receive_without_pledge))
        .routes(routes!(money::disburse))
        .routes(routes!(broadcasts::create))
        .routes(routes!(broadcasts::get_one))
        .routes(routes!(broadcasts::send))
        .routes(routes!(broadcasts::cancel))
        .routes(routes!(broadcasts::rsvps))
        .routes(routes!(meetings::get_attendance, meetings::put_attendance))
        .routes(routes!(broadcasts::post_update))
        .routes(routes!(households::list, households::create))
        .routes(routes!(households::get_one, households::update))
        .routes(routes!(households::add_phone))
        .routes(routes!(households::confirm_phone))
        .routes(routes!(households::remove_phone))
        .routes(routes!(households::set_opt_out))
        .routes(routes!(households::set_timezone))
        .routes(routes!(tips::list, tips::create))
        .routes(routes!(tips::update))
        .routes(routes!(rates::list, rates::create))
        .routes(routes!(exports::pledges))
        .routes(routes!(exports::project_totals))
        .routes(routes!(exports::households))
        .routes(routes!(exports::broadcasts))
        .routes(routes!(exports::outreach))
        .routes(routes!(outreach::figures))
        .routes(routes!(outreach::set_target))
        .routes(routes!(money::reverse_receipt))
        .routes(routes!(money::reverse_disbursement))
        .routes(routes!(callbacks::list))
        .routes(routes!(callbacks::take))
        .routes(routes!(callbacks::release))
        .routes(routes!(callbacks::holidays, callbacks::add_holiday))
        .routes(routes!(callbacks::remove_holiday))
        .routes(routes!(callbacks::outcome))
        .with_state(state.clone())
        .split_for_parts();
    // Every POST may carry an Idempotency-Key (see `idempotency`); no body is larger than
    // 64 KiB (a bigger one is refused before it is read whole).
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            state,
            idempotency::layer,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(idempotency::MAX_BODY));
    // axum clones the whole router for every connection it accepts, so a route must not
    // own anything big: the document lives behind an `Arc` and is serialised per request
    // (the benchmark found ~1 MiB per open connection when the handler owned it).
    let api = Arc::new(api);
    router.route(
        "/api/v1/openapi.json",
        get(move || {
            let api = Arc::clone(&api);
            async move { Json(api) }
        }),
    )
}

pub use crate::domain::money::{opt_two_dp, two_dp};
