//! HTTP routes: health, readiness and the aggregator webhooks.
//!
//! Every provider's webhooks are mounted from its own declaration
//! ([`crate::channels::Provider::webhooks`]) on three generic handlers, one per kind of
//! message, each behind the [`Verified`] extractor: a request its provider's check refuses
//! gets 403 and reaches no handler.

use std::marker::PhantomData;

use axum::{
    body::Bytes,
    extract::{rejection::FormRejection, DefaultBodyLimit, Form, FromRequest, OriginalUri, State},
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post, MethodRouter},
    Router,
};
use tower_http::trace::TraceLayer;

use crate::{
    app::AppState,
    channels::{
        self, ussd::Screen, webhook_path, Answer, Carrier, DeliveryReport, EachProvider,
        InboundError, InboundSms, Parsed, Provider, ReceivesSms, ReportsDelivery, Ussd,
        WebhookRequest, Webhooks, FORM_BODY_LIMIT, JSON_BODY_LIMIT,
    },
    inbox::{self, Delivered},
    metrics, sms, ussd,
};

pub fn router(state: AppState) -> Router {
    let mut webhooks = Mounted(Router::new());
    channels::for_each_provider(&mut webhooks);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(webhooks.0)
        .with_state(state.clone())
        // the admin API gets its own pool: no API call or export can take a webhook's connection
        .merge(crate::api::router(state.for_api()))
        // the console: its own middleware (security headers, CSRF, compression), API pool
        .merge(crate::console::router(state.for_api()))
        // The span names the route pattern, never the URI: query strings and paths carry
        // phone numbers (and, for Kannel, the shared secret).
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".to_owned());
                tracing::debug_span!("request", method = %req.method(), route = %route)
            },
        ))
        // Turn every handler into a ready route once, here; `serve` then shares this router
        // between connections through `into_make_service` instead of copying it per
        // connection (what serving a plain `Router` does).
        .with_state(())
}

/// Every provider's webhooks alone, over `state`: the routes an aggregator calls, each
/// behind its provider's check. The console's phone simulator hands its requests to these
/// in-process (`console::phone`), as an aggregator's requests arrive.
pub fn webhooks(state: AppState) -> Router {
    let mut webhooks = Mounted(Router::new());
    channels::for_each_provider(&mut webhooks);
    webhooks.0.with_state(state)
}

/// Every provider's webhooks, mounted as it declares them.
struct Mounted(Router<AppState>);

impl EachProvider for Mounted {
    fn provider<P: Provider>(&mut self) {
        let mount = P::webhooks(Mount::<P>(Router::new(), PhantomData));
        self.0 = std::mem::take(&mut self.0).merge(mount.0);
    }
}

/// One provider's webhooks. Every body is bounded (a larger one is answered 413 before it
/// is read whole): forms by [`FORM_BODY_LIMIT`], JSON by [`JSON_BODY_LIMIT`]; a `GET`
/// webhook's body is never read.
struct Mount<P>(Router<AppState>, PhantomData<P>);

impl<P: Provider> Mount<P> {
    fn route(self, path: &str, handler: MethodRouter<AppState>) -> Self {
        Mount(
            self.0.route(&webhook_path(P::NAME, path), handler),
            PhantomData,
        )
    }
}

/// The handler for a webhook of this carrier: `bytes` reads the body, `query` does not.
fn carried(
    carrier: Carrier,
    bytes: MethodRouter<AppState>,
    query: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    match carrier {
        Carrier::Form => bytes.layer(DefaultBodyLimit::max(FORM_BODY_LIMIT)),
        Carrier::Json => bytes.layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)),
        Carrier::Query => query,
    }
}

impl<P: Provider> Webhooks<P> for Mount<P> {
    fn ussd(self, path: &'static str) -> Self
    where
        P: Ussd,
    {
        self.route(
            path,
            post(ussd_hop::<P>).layer(DefaultBodyLimit::max(FORM_BODY_LIMIT)),
        )
    }

    fn sms(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReceivesSms,
    {
        let handler = carried(
            carrier,
            post(inbound_sms::<P, Bytes>),
            get(inbound_sms::<P, NoBody>),
        );
        self.route(path, handler)
    }

    fn delivery(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReportsDelivery,
    {
        let handler = carried(
            carrier,
            post(delivery_reports::<P, Bytes>),
            get(delivery_reports::<P, NoBody>),
        );
        self.route(path, handler)
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".into())
}

async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = std::time::Duration::from_millis(state.config.db_timeout_ms);
    match tokio::time::timeout(timeout, crate::provision::migrations_applied(&state.pool)).await {
        Ok(Ok(true)) => plain(StatusCode::OK, "ready\n".into()),
        Ok(Ok(false)) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "migrations not applied\n".into(),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable\n".into(),
            )
        }
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "database timeout\n".into()),
    }
}

// ---------------------------------------------------------------------------------------
// The authentication extractor and the three generic webhook handlers

/// A webhook request that passed its provider's check ([`channels::verify`]): its
/// signature, or our shared secret. One that fails gets 403, is logged, and reaches no
/// handler: nothing of it is stored. `B` reads the body, before the check (so a body over
/// its limit is 413 whoever sent it; the USSD form is read without failing, and its errors
/// are answered after the check).
struct Verified<P, B> {
    uri: Uri,
    headers: HeaderMap,
    body: B,
    provider: PhantomData<P>,
}

impl<P, B: Body> Verified<P, B> {
    fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            path: self.uri.path(),
            query: self.uri.query(),
            headers: &self.headers,
            body: self.body.bytes(),
        }
    }
}

impl<P: Provider, B: Body> FromRequest<AppState> for Verified<P, B> {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let uri = match req.extensions().get::<OriginalUri>() {
            Some(original) => original.0.clone(),
            None => req.uri().clone(),
        };
        let headers = req.headers().clone();
        let body = B::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let verified = Verified {
            uri,
            headers,
            body,
            provider: PhantomData,
        };
        if let Err(refused) = channels::verify::<P>(&state.config, &verified.request()) {
            tracing::warn!(
                provider = P::NAME,
                path = %verified.uri.path(),
                reason = refused.0,
                "webhook refused"
            );
            return Err(forbidden());
        }
        Ok(verified)
    }
}

/// How a webhook's body is read, and what of it a signature check sees.
trait Body: FromRequest<AppState> + Send + 'static {
    fn bytes(&self) -> &[u8];
}

impl Body for Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A `GET` webhook: its body is not read.
struct NoBody;

impl FromRequest<AppState> for NoBody {
    type Rejection = std::convert::Infallible;

    async fn from_request(
        _req: axum::extract::Request,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(NoBody)
    }
}

impl Body for NoBody {
    fn bytes(&self) -> &[u8] {
        &[]
    }
}

/// A USSD hop's form, read by axum's `Form` (its failure is answered 400 after the check).
/// The check does not see the body (see [`Ussd`]).
impl<T: serde::de::DeserializeOwned + Send + 'static> Body for Result<Form<T>, FormRejection> {
    fn bytes(&self) -> &[u8] {
        &[]
    }
}

async fn ussd_hop<P: Ussd>(
    State(state): State<AppState>,
    hook: Verified<P, Result<Form<P::Form>, FormRejection>>,
) -> Response {
    let form = match hook.body {
        Ok(Form(f)) => f,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("bad request: {}\n", e.body_text()),
            )
        }
    };
    let hop = match P::parse_ussd(form) {
        Ok(h) => h,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad request: {e}\n")),
    };
    let reply = ussd::answer(&state, &hop).await;
    let screen = Screen {
        text: &reply.text,
        end: reply.end,
    };
    plain(StatusCode::OK, P::render_ussd(&screen))
}

async fn inbound_sms<P: ReceivesSms, B: Body>(
    State(state): State<AppState>,
    hook: Verified<P, B>,
) -> Response {
    receive_all(&state, P::parse_sms(&hook.request()), P::ANSWER).await
}

async fn delivery_reports<P: ReportsDelivery, B: Body>(
    State(state): State<AppState>,
    hook: Verified<P, B>,
) -> Response {
    deliver_all(&state, P::parse_delivery(&hook.request())).await
}

// ---------------------------------------------------------------------------------------
// SMS and delivery-report webhooks. Each checks the provider's signature or our shared
// secret first (a refused request gets 403 and is stored nowhere), then stores the raw
// message, deduplicated, and answers 200 quickly; a retry of a stored message gets 200 too.

fn forbidden() -> Response {
    plain(StatusCode::FORBIDDEN, "forbidden\n".into())
}

fn bad(e: InboundError) -> Response {
    match e {
        InboundError::TooLarge(_) => plain(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
        _ => plain(StatusCode::BAD_REQUEST, format!("bad request: {e}\n")),
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what} failed");
    plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        "temporary failure, please retry\n".into(),
    )
}

/// A webhook's database failure: 503 (as documented) when the database is only
/// unavailable for now — refused, restarting, the pool timed out — so that the provider
/// retries; 500 for anything else.
fn db_failure(what: &str, e: Option<&sqlx::Error>, shown: &dyn std::fmt::Display) -> Response {
    match e {
        Some(e) if crate::store::pool::is_temporary(e) => {
            tracing::warn!(error = %e, "{what}: database unavailable; asking the provider to retry");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporary failure, please retry\n".into(),
            )
        }
        _ => internal(what, shown),
    }
}

/// The database error behind an SMS handling error, if it is one.
fn sms_db_error(e: &crate::conversation::ConversationError) -> Option<&sqlx::Error> {
    match e {
        crate::conversation::ConversationError::Db(e)
        | crate::conversation::ConversationError::Action(crate::actions::ActionError::Db(e)) => {
            Some(e)
        }
        _ => None,
    }
}

fn itself(e: &sqlx::Error) -> Option<&sqlx::Error> {
    Some(e)
}

/// Runs `attempt` again, once, when its connection turned out to be dead (a database
/// restart leaves every pooled connection dead): the handling of a webhook is one
/// transaction, deduplicated on the message, so a second try is safe.
async fn once_more_if_lost<T, E, F, Fut>(
    attempt: F,
    db_error: fn(&E) -> Option<&sqlx::Error>,
) -> Result<T, E>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    match attempt().await {
        Err(e) if db_error(&e).is_some_and(crate::store::pool::is_connection_lost) => {
            crate::store::pool::note_connection_lost();
            tracing::warn!("database connection lost; trying once more on another");
            attempt().await
        }
        other => other,
    }
}

/// The answer when the database did not finish within `HASHAR_DB_TIMEOUT_MS`: the
/// unfinished transaction is dropped (rolled back), so nothing half-done stays, and the
/// provider retries; a retry of a message that did commit after all is a duplicate and is
/// handled once.
fn too_slow(what: &str) -> Response {
    tracing::warn!("{what} did not finish in time; asking the provider to retry");
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporary failure, please retry\n".into(),
    )
}

/// Handles each parsed message (each with its own raw form), then answers `done`; a
/// request that did not parse is 400, one with a text longer than
/// [`crate::channels::MAX_TEXT_CHARS`] is 413 (nothing of it is stored), and a failure is an
/// error answer the provider retries.
async fn receive_all(state: &AppState, parsed: Parsed<InboundSms>, done: Answer) -> Response {
    let messages = match parsed {
        Ok(m) => m,
        Err(e) => return bad(e),
    };
    if let Err(e) = messages
        .iter()
        .try_for_each(|(msg, _)| crate::channels::check_text(msg))
    {
        return bad(e);
    }
    let timeout = std::time::Duration::from_millis(state.config.db_timeout_ms);
    for (msg, raw) in messages {
        let handled = once_more_if_lost(|| sms::receive(state, &msg, raw.clone()), sms_db_error);
        match tokio::time::timeout(timeout, handled).await {
            Ok(Ok(sms::Received::Duplicate)) => metrics::inbound_sms(msg.provider, "duplicate"),
            Ok(Ok(_)) => metrics::inbound_sms(msg.provider, "handled"),
            Ok(Err(e)) => {
                metrics::inbound_sms(msg.provider, "error");
                if let crate::conversation::ConversationError::Db(e) = &e {
                    metrics::pool_timeout(e);
                }
                return db_failure("handling an inbound sms", sms_db_error(&e), &e);
            }
            Err(_) => {
                metrics::inbound_sms(msg.provider, "timeout");
                return too_slow("handling an inbound sms");
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, done.content_type)],
        done.body,
    )
        .into_response()
}

/// Stores each delivery report with its own raw form (deduplicated on message and status)
/// and applies it, within `HASHAR_DB_TIMEOUT_MS` like an inbound text.
async fn deliver_all(state: &AppState, parsed: Parsed<DeliveryReport>) -> Response {
    let reports = match parsed {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let timeout = std::time::Duration::from_millis(state.config.db_timeout_ms);
    let provider = reports.first().map(|r| r.0.provider);
    match tokio::time::timeout(timeout, deliver_each(state, reports)).await {
        Ok(Some(error)) => error,
        Ok(None) => ok_empty(),
        Err(_) => {
            if let Some(provider) = provider {
                metrics::delivery_report(provider, "timeout");
            }
            too_slow("applying a delivery report")
        }
    }
}

async fn deliver_each(
    state: &AppState,
    reports: Vec<(DeliveryReport, serde_json::Value)>,
) -> Option<Response> {
    let now = state.clock.now();
    for (report, raw) in reports {
        let applied = once_more_if_lost(|| inbox::deliver(&state.pool, &report, &raw, now), itself);
        match applied.await {
            Ok(Delivered::Refused) => {
                metrics::delivery_report(report.provider, "unknown_message");
                tracing::warn!(
                    provider = report.provider,
                    "delivery report refused: it names no message of ours that was sent"
                )
            }
            Ok(Delivered::Applied) => metrics::delivery_report(report.provider, "applied"),
            Ok(Delivered::Duplicate) => metrics::delivery_report(report.provider, "duplicate"),
            Err(e) => {
                metrics::delivery_report(report.provider, "error");
                metrics::pool_timeout(&e);
                return Some(db_failure("storing a delivery report", Some(&e), &e));
            }
        }
    }
    None
}

fn ok_empty() -> Response {
    plain(StatusCode::OK, String::new())
}
