//! The programme console: server-rendered pages under `/console` for the people who run
//! the programme, in Tajik, Russian and English, usable on a 360 px phone
//! (`/work/shared/docs/console.md` is the design; issue 10).
//!
//! What exists (step 2 of the order of work):
//! - [`auth`]: passwords, sign-in with its throttle and lock, server-side sessions, and
//!   [`auth::Staff`], the signed-in person re-read for each request as a `service::Actor`;
//! - [`assets`]: the static files, embedded and served under content-hashed names;
//! - [`headers`]: the Content-Security-Policy and the other security headers;
//! - [`csrf`]: the synchronizer token and the cross-origin check on every non-GET request;
//! - [`i18n`]: texts, plurals, numbers, money and dates, and the completeness check;
//! - [`pages`]: the layout, the sign-in page, sign-out (here or everywhere);
//! - [`households`]: `/console/households`, search, register, edit, and a household's page
//!   with its numbers: link one (with the code the API sends), unlink, STOP / START;
//! - [`overview`]: `GET /console`, the programme at a glance for the signed-in person's
//!   scope (or 303 to the sign-in page), with its charts drawn by [`svg`];
//! - [`flash`]: one-time messages after a change, kept in the session;
//! - [`money`]: the Money page (find a pledge by code, phone or household; receipts with
//!   and without a pledge, cancellations, disbursements, reversals), calling
//!   `service::money` as the admin API does;
//! - [`exports`]: `GET /console/exports`, the CSV files with their filters, and their
//!   downloads (the admin API's writer, `service::exports`);
//! - [`people`]: People & access (admins): staff, roles and communities, passwords and
//!   one-time set-password links, locks, sessions, API tokens, the audit log;
//! - [`broadcasts`]: the Broadcasts pages (list, compose with the live preview, confirm,
//!   a broadcast's progress and RSVPs, undo), calling `service::broadcasts` as the admin
//!   API does;
//! - [`meetings`]: a meeting's attendance sheet (who came, by household), calling
//!   `service::meetings` as the admin API does;
//! - [`projects`]: the Projects pages (list, a project's page, create, edit, open and
//!   close), calling `service::projects` as the admin API does;
//! - [`outreach`]: households informed towards the programme's goal, per community and
//!   topic against the targets (admins set them), calling `service::outreach`;
//! - [`callbacks`]: the counsellors' callback queue (take, record a call's outcome),
//!   calling `service::callbacks` as the admin API does;
//! - [`timing`]: `Server-Timing` (database, the rest, total) on every response;
//! - [`phone`]: the phone simulator, `/console/phone`: a feature phone that dials the USSD
//!   code and texts the service through the real webhook routes, in-process (only with the
//!   console SMS provider).
//!
//! Every response is compressed (gzip or brotli, as the browser accepts) and carries the
//! security headers. The console reads the database through the admin API's pool.

pub mod assets;
pub mod auth;
pub mod broadcasts;
pub mod callbacks;
pub mod csrf;
pub mod exports;
pub mod flash;
pub mod headers;
pub mod holidays;
pub mod households;
pub mod i18n;
pub mod meetings;
pub mod money;
pub mod outreach;
pub mod overview;
pub mod pages;
pub mod people;
pub mod phone;
pub mod projects;
pub mod svg;
pub mod timing;

use std::sync::Arc;

use axum::{
    extract::FromRef,
    middleware,
    routing::{get, post},
    Router,
};
use tower_http::compression::CompressionLayer;

use crate::app::AppState;

/// What every console handler and middleware sees.
#[derive(Clone)]
pub struct Console {
    pub app: AppState,
    pub assets: Arc<assets::Assets>,
    pub origin: Arc<headers::PublicOrigin>,
    pub auth: Arc<auth::Auth>,
    /// The phone simulator's way to the webhooks; none unless the SMS provider is the
    /// console (`HASHAR_SMS_PROVIDER=console`).
    pub simulator: Option<Arc<phone::Simulator>>,
}

impl FromRef<Console> for Arc<assets::Assets> {
    fn from_ref(console: &Console) -> Self {
        console.assets.clone()
    }
}

/// The console's routes, with their full paths under `/console`, ready to be merged into
/// the server's router. `state` should be the admin API's ([`AppState::for_api`]).
pub fn router(state: AppState) -> Router {
    let origin = Arc::new(headers::PublicOrigin::from_config(&state.config));
    let simulator = phone::Simulator::new(&state).map(Arc::new);
    let console = Console {
        simulator,
        auth: Arc::new(auth::Auth::new(
            state.clock.clone(),
            state.config.console_tries_per_minute,
        )),
        app: state,
        assets: Arc::new(assets::Assets::embedded()),
        origin: origin.clone(),
    };
    let sessions = auth::session_layer(console.app.pool.clone());
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/households",
            get(households::list).post(households::create),
        )
        .route("/console/households/new", get(households::new))
        .route(
            "/console/households/{id}",
            get(households::page).post(households::update),
        )
        .route("/console/households/{id}/edit", get(households::edit))
        .route(
            "/console/households/{id}/phones",
            post(households::phone_add),
        )
        .route(
            "/console/households/{id}/phones/confirm",
            get(households::phone_code).post(households::phone_confirm),
        )
        .route(
            "/console/households/{id}/phones/unlink",
            get(households::unlink_confirm).post(households::unlink),
        )
        .route(
            "/console/households/{id}/phones/opt-out",
            get(households::opt_out_confirm).post(households::opt_out),
        )
        .route(
            "/console/households/{id}/timezone",
            post(households::timezone_post),
        )
        .route("/console/exports", get(exports::page))
        .route("/console/exports/{file}", get(exports::download))
        .route("/console/login", get(pages::login).post(pages::login_post))
        .route("/console/logout", post(pages::logout))
        .route("/console/logout/everywhere", post(pages::logout_everywhere))
        .route("/console/static/{file}", get(assets::serve))
        .route("/console/money", get(money::find))
        .route("/console/money/pledges/{id}", get(money::pledge))
        .route(
            "/console/money/pledges/{id}/receipt",
            get(money::receipt_confirm).post(money::receipt_record),
        )
        .route(
            "/console/money/pledges/{id}/cancel",
            get(money::cancel_confirm).post(money::cancel_record),
        )
        .route("/console/money/projects/{id}", get(money::project))
        .route(
            "/console/money/projects/{id}/disburse",
            get(money::disburse_confirm).post(money::disburse_record),
        )
        .route(
            "/console/money/projects/{id}/receipt",
            get(money::unpledged_confirm).post(money::unpledged_record),
        )
        .route(
            "/console/money/receipts/{id}/reverse",
            get(money::reverse_receipt_confirm).post(money::reverse_receipt_record),
        )
        .route(
            "/console/money/disbursements/{id}/reverse",
            get(money::reverse_disbursement_confirm).post(money::reverse_disbursement_record),
        )
        .route("/console/people", get(people::list))
        .route("/console/people/audit", get(people::audit))
        .route(
            "/console/people/new",
            get(people::new_form).post(people::new_post),
        )
        .route("/console/people/{id}", get(people::person))
        .route(
            "/console/people/{id}/access",
            get(people::access_confirm).post(people::access_post),
        )
        .route("/console/people/{id}/password", post(people::password_post))
        .route("/console/people/{id}/unlock", post(people::unlock))
        .route("/console/people/{id}/sign-out", post(people::sign_out))
        .route(
            "/console/people/{id}/disable",
            get(people::disable_confirm).post(people::disable),
        )
        .route("/console/people/{id}/tokens", post(people::token_issue))
        .route(
            "/console/people/{id}/tokens/{token}/revoke",
            post(people::token_revoke),
        )
        .route(
            "/console/welcome/{token}",
            get(people::welcome).post(people::welcome_post),
        )
        .route("/console/phone", get(phone::page))
        .route("/console/phone/ussd", post(phone::ussd))
        .route("/console/phone/sms", post(phone::sms))
        .route("/console/projects", get(projects::list))
        .route(
            "/console/projects/new",
            get(projects::new_form).post(projects::new_save),
        )
        .route("/console/projects/{id}", get(projects::page))
        .route(
            "/console/projects/{id}/edit",
            get(projects::edit_form).post(projects::edit_save),
        )
        .route(
            "/console/projects/{id}/edit/confirm",
            get(projects::edit_confirm),
        )
        .route(
            "/console/projects/{id}/status",
            get(projects::status_confirm).post(projects::status_save),
        )
        .route("/console/broadcasts", get(broadcasts::list))
        .route(
            "/console/broadcasts/new",
            get(broadcasts::new_form).post(broadcasts::new_post),
        )
        .route("/console/broadcasts/{id}", get(broadcasts::page))
        .route(
            "/console/broadcasts/{id}/send",
            get(broadcasts::send_confirm).post(broadcasts::send_post),
        )
        .route(
            "/console/broadcasts/{id}/cancel",
            post(broadcasts::cancel_post),
        )
        .route(
            "/console/broadcasts/{id}/attendance",
            get(meetings::page).post(meetings::save),
        )
        .route("/console/callbacks", get(callbacks::page))
        .route("/console/callbacks/coverage", get(callbacks::coverage))
        .route(
            "/console/callbacks/{id}/take",
            get(callbacks::take_confirm).post(callbacks::take),
        )
        .route("/console/callbacks/{id}/outcome", post(callbacks::outcome))
        .route("/console/callbacks/{id}/release", post(callbacks::release))
        .route("/console/holidays", get(holidays::page).post(holidays::add))
        .route("/console/holidays/{id}/remove", post(holidays::remove))
        .route("/console/outreach", get(outreach::page))
        .route("/console/outreach/targets", post(outreach::set_target))
        // Outermost first: the session is loaded, its CSRF token handed to the check.
        .layer(middleware::from_fn_with_state(
            console.clone(),
            csrf::protect,
        ))
        .layer(middleware::from_fn(auth::load_session))
        .layer(sessions)
        .layer(middleware::from_fn(timing::measure))
        .layer(middleware::from_fn_with_state(origin, headers::secure))
        .layer(CompressionLayer::new())
        .with_state(console)
}
