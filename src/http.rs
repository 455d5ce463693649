//! HTTP routes: health, readiness and the aggregator webhooks.

use axum::{
    extract::{Form, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tower_http::trace::TraceLayer;

use crate::{app::AppState, channels::africastalking, db, ussd};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/webhooks/africastalking/ussd", post(at_ussd))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
    form: Result<Form<africastalking::UssdForm>, axum::extract::rejection::FormRejection>,
) -> Response {
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
    plain(StatusCode::OK, africastalking::render_ussd(&reply))
}
