//! HTTP routes: health, readiness and the aggregator webhooks.

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Form, OriginalUri, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_http::trace::TraceLayer;

use crate::{
    app::AppState,
    channels::{
        africastalking, infobip, kannel, twilio, DeliveryReport, InboundError, InboundSms,
        FORM_BODY_LIMIT, JSON_BODY_LIMIT,
    },
    db,
    inbox::{self, Delivered},
    metrics, sms, ussd,
};

pub fn router(state: AppState) -> Router {
    // Every webhook body is bounded (a larger one is answered 413 before it is read whole):
    // forms by FORM_BODY_LIMIT, Infobip's JSON by JSON_BODY_LIMIT.
    let form = || DefaultBodyLimit::max(FORM_BODY_LIMIT);
    let json = || DefaultBodyLimit::max(JSON_BODY_LIMIT);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/webhooks/africastalking/ussd", post(at_ussd).layer(form()))
        .route("/webhooks/africastalking/sms", post(at_sms).layer(form()))
        .route(
            "/webhooks/africastalking/delivery",
            post(at_delivery).layer(form()),
        )
        .route("/webhooks/twilio/sms", post(twilio_sms).layer(form()))
        .route("/webhooks/twilio/status", post(twilio_status).layer(form()))
        .route("/webhooks/infobip/sms", post(infobip_sms).layer(json()))
        .route(
            "/webhooks/infobip/delivery",
            post(infobip_delivery).layer(json()),
        )
        .route("/webhooks/kannel/sms", get(kannel_sms))
        .route("/webhooks/kannel/delivery", get(kannel_delivery))
        .with_state(state.clone())
        // the admin API gets its own pool: no API call or export can take a webhook's connection
        .merge(crate::api::router(state.for_api()))
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
    match tokio::time::timeout(timeout, db::migrations_applied(&state.pool)).await {
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

async fn at_ussd(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    form: Result<Form<africastalking::UssdForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(refused) = check_secret(&state, &uri, &headers) {
        return refused;
    }
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("bad request: {}\n", e.body_text()),
            )
        }
    };
    let hop = match africastalking::parse_ussd(form) {
        Ok(h) => h,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad request: {e}\n")),
    };
    let reply = ussd::answer(&state, &hop).await;
    let screen = crate::channels::ussd::Screen {
        text: &reply.text,
        end: reply.end,
    };
    plain(StatusCode::OK, africastalking::render_ussd(&screen))
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
        Some(e) if db::is_temporary(e) => {
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
        Err(e) if db_error(&e).is_some_and(db::is_connection_lost) => {
            db::note_connection_lost();
            tracing::warn!("database connection lost; trying once more on another");
            attempt().await
        }
        other => other,
    }
}

/// Compares in constant time (the length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The shared secret of providers that do not sign: `?secret=…` or the password of HTTP
/// basic auth. Not checked when none is configured, which `serve` allows only on a loopback
/// address or with `HASHAR_INSECURE_WEBHOOKS=true` (see `Config::webhook_exposure`).
fn check_secret(state: &AppState, uri: &OriginalUri, headers: &HeaderMap) -> Option<Response> {
    let secret = state.config.webhook_secret()?;
    let in_query = uri
        .0
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "secret" && same(v.as_bytes(), secret.as_bytes()))
        })
        .unwrap_or(false);
    let in_basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(_, pass)| same(pass.as_bytes(), secret.as_bytes()))
        })
        .unwrap_or(false);
    if in_query || in_basic {
        None
    } else {
        tracing::warn!(path = %uri.0.path(), "webhook refused: missing or wrong shared secret");
        Some(forbidden())
    }
}

/// A query string to store: everything but our shared secret.
fn without_secret(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.starts_with("secret="))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_pairs(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn pairs_json(pairs: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        pairs
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect(),
    )
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

/// Handles each parsed message (each with its own raw form), then answers `done()`; a
/// request that did not parse is 400, one with a text longer than
/// [`crate::channels::MAX_TEXT_CHARS`] is 413 (nothing of it is stored), and a failure is an
/// error answer the provider retries.
async fn receive_all(
    state: &AppState,
    parsed: Result<Vec<(InboundSms, serde_json::Value)>, InboundError>,
    done: fn() -> Response,
) -> Response {
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
    done()
}

/// Stores each delivery report with its own raw form (deduplicated on message and status)
/// and applies it, within `HASHAR_DB_TIMEOUT_MS` like an inbound text.
async fn deliver_all(
    state: &AppState,
    parsed: Result<Vec<(DeliveryReport, serde_json::Value)>, InboundError>,
) -> Response {
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

async fn at_sms(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    let pairs = form_pairs(&body);
    let parsed = africastalking::parse_sms(&pairs).map(|m| vec![(m, pairs_json(&pairs))]);
    receive_all(&state, parsed, ok_empty).await
}

async fn at_delivery(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    let pairs = form_pairs(&body);
    let parsed = africastalking::parse_delivery(&pairs).map(|r| vec![(r, pairs_json(&pairs))]);
    deliver_all(&state, parsed).await
}

/// Twilio signs every request; without a valid `X-Twilio-Signature` nothing is stored.
fn check_twilio(
    state: &AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Option<Response> {
    let Some(token) = state
        .config
        .twilio_auth_token
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret)
    else {
        tracing::warn!("twilio webhook refused: HASHAR_TWILIO_AUTH_TOKEN is not set");
        return Some(forbidden());
    };
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut url = format!(
        "{}{}",
        state.config.public_url.trim_end_matches('/'),
        uri.0.path()
    );
    if let Some(q) = uri.0.query() {
        url.push('?');
        url.push_str(q);
    }
    if twilio::verify_signature(token, &url, pairs, signature) {
        None
    } else {
        tracing::warn!(path = %uri.0.path(), "twilio webhook refused: bad signature");
        Some(forbidden())
    }
}

fn twiml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn twilio_sms(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    if let Some(r) = check_twilio(&state, &uri, &headers, &pairs) {
        return r;
    }
    let parsed = twilio::parse_sms(&pairs).map(|m| vec![(m, pairs_json(&pairs))]);
    receive_all(&state, parsed, || twiml(twilio::twiml_empty().to_owned())).await
}

async fn twilio_status(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = form_pairs(&body);
    if let Some(r) = check_twilio(&state, &uri, &headers, &pairs) {
        return r;
    }
    let parsed = twilio::parse_status(&pairs).map(|r| vec![(r, pairs_json(&pairs))]);
    deliver_all(&state, parsed).await
}

async fn infobip_sms(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    // each message is stored with its own JSON, never the whole body once per message
    receive_all(&state, infobip::parse_sms_with_raw(&body), ok_empty).await
}

async fn infobip_delivery(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    deliver_all(&state, infobip::parse_delivery_with_raw(&body)).await
}

async fn kannel_sms(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    let query = uri.0.query().unwrap_or("");
    let raw = serde_json::Value::String(without_secret(query));
    let parsed = kannel::parse_sms_query(query).map(|m| vec![(m, raw)]);
    receive_all(&state, parsed, ok_empty).await
}

async fn kannel_delivery(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = check_secret(&state, &uri, &headers) {
        return r;
    }
    let query = uri.0.query().unwrap_or("");
    let raw = serde_json::Value::String(without_secret(query));
    let parsed = kannel::parse_delivery_query(query).map(|r| vec![(r, raw)]);
    deliver_all(&state, parsed).await
}
