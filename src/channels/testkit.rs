//! The channel test kit, shared by every provider's tests: request builders (a webhook
//! request as the provider's parsers see it), the case-table runners, a wiremock matcher and
//! the fixtures of the outbound clients' tests.

use std::{fmt::Display, time::Duration};

use wiremock::{
    matchers::{header, method, path},
    Mock, MockBuilder, MockServer, Request, ResponseTemplate,
};

use super::{
    Accepted, DeliveryReport, DeliveryState, HttpClient, InboundError, InboundSms, MessageRef,
    OutboundSms, Parsed, SendError, SendSms, WebhookRequest,
};
use crate::domain::{Encoding, Phone};

// ---------------------------------------------------------------------------------------
// Requests

/// Form fields as owned pairs, in order.
pub fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A webhook request to hand to a provider's parser.
pub enum TestRequest {
    /// A form body.
    Form(String),
    /// A JSON (or any other) body, as sent.
    Body(Vec<u8>),
    /// A raw query string.
    Query(String),
}

/// A request with these fields as its form body, as an aggregator encodes it.
pub fn form(fields: &[(&str, &str)]) -> TestRequest {
    TestRequest::Form(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish(),
    )
}

/// A request with this body (a captured form, or JSON).
pub fn body(body: impl Into<Vec<u8>>) -> TestRequest {
    TestRequest::Body(body.into())
}

/// A request with this raw query string.
pub fn query(query: impl Into<String>) -> TestRequest {
    TestRequest::Query(query.into())
}

impl TestRequest {
    pub fn view(&self) -> WebhookRequest<'_> {
        match self {
            TestRequest::Form(body) => WebhookRequest::with_body(body.as_bytes()),
            TestRequest::Body(body) => WebhookRequest::with_body(body),
            TestRequest::Query(query) => WebhookRequest::with_query(query),
        }
    }
}

/// What a parser found, without the form each message is stored in.
pub fn messages<T>(parsed: Parsed<T>) -> Result<Vec<T>, InboundError> {
    parsed.map(|all| all.into_iter().map(|(m, _)| m).collect())
}

/// The one message of a request (form and query webhooks carry one).
pub fn single<T: std::fmt::Debug>(parsed: Parsed<T>) -> Result<T, InboundError> {
    messages(parsed).map(|mut all| {
        assert_eq!(all.len(), 1, "one message per request: {all:?}");
        all.remove(0)
    })
}

// ---------------------------------------------------------------------------------------
// Case tables

/// Runs a table of (name, input, expected result): each input through `run`, its result
/// compared with the expected one, a failure named by its case.
pub fn check_cases<N: Display, I, O: PartialEq + std::fmt::Debug>(
    cases: impl IntoIterator<Item = (N, I, O)>,
    run: impl Fn(I) -> O,
) {
    for (name, input, want) in cases {
        assert_eq!(run(input), want, "{name}");
    }
}

/// Form fields as a test writes them, in order.
pub type Fields = Vec<(&'static str, &'static str)>;
/// Case name, the request's form, the text it should come to.
pub type SmsCase = (&'static str, Fields, Result<InboundSms, InboundError>);
/// The request's form (which names the case), the report it should come to.
pub type ReportCase = (Fields, Result<DeliveryReport, InboundError>);

/// A delivery report of `provider` about `message`, as a parser should make it.
pub fn report(
    provider: &'static str,
    message: MessageRef,
    state: DeliveryState,
    status: &str,
    reason: Option<&str>,
) -> DeliveryReport {
    DeliveryReport {
        provider,
        message,
        state,
        provider_status: status.into(),
        reason: reason.map(str::to_owned),
    }
}

/// The cases of a table of status words: the request with `fields(status)` comes to
/// `report(status, state, None)`.
pub fn status_cases(
    table: &[(&'static str, DeliveryState)],
    fields: impl Fn(&'static str) -> Fields,
    report: impl Fn(&str, DeliveryState, Option<&str>) -> DeliveryReport,
) -> Vec<ReportCase> {
    table
        .iter()
        .map(|&(status, state)| (fields(status), Ok(report(status, state, None))))
        .collect()
}

/// Runs a table of (name, form fields, expected message) through `parse`, the parser of a
/// form webhook (one message per request).
pub fn check_form_cases<N: Display, T: PartialEq + std::fmt::Debug>(
    cases: impl IntoIterator<Item = (N, Fields, Result<T, InboundError>)>,
    parse: impl Fn(&WebhookRequest<'_>) -> Parsed<T>,
) {
    check_cases(cases, |fields| single(parse(&form(&fields).view())));
}

/// [`check_form_cases`] for a table of [`ReportCase`]s, each named by its fields.
pub fn check_form_reports(
    cases: Vec<ReportCase>,
    parse: impl Fn(&WebhookRequest<'_>) -> Parsed<DeliveryReport>,
) {
    let named = cases
        .into_iter()
        .map(|(fields, want)| (format!("{fields:?}"), fields, want));
    check_form_cases(named, parse);
}

/// What a send should come to: accepted with this provider id, or refused for good or for
/// now with a reason that contains this.
pub enum Want {
    Accepted(&'static str),
    Fatal(&'static str),
    Retryable(&'static str),
}

/// Runs a table of (name, the provider's answer, expected outcome) through
/// [`send_answered`].
pub async fn check_send_answers<C: SendSms>(
    cases: Vec<(&str, ResponseTemplate, Want)>,
    endpoint: (&str, &str),
    client: impl Fn(&MockServer) -> C,
    msg: &OutboundSms,
) {
    for (name, answer, want) in cases {
        let got = send_answered(answer, endpoint, &client, msg).await;
        match (&got, want) {
            (Ok(a), Want::Accepted(id)) => {
                assert_eq!(a.provider_msg_id.as_deref(), Some(id), "{name}")
            }
            (Err(SendError::Fatal(m)), Want::Fatal(part))
            | (Err(SendError::Retryable(m)), Want::Retryable(part)) => {
                assert!(m.contains(part), "{name}: {m}")
            }
            _ => panic!("{name}: got {got:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Outbound clients

/// Sends `msg` through the client `client` builds for a mock server that answers the
/// `(method, path)` endpoint with `answer`, and is called there exactly once.
pub async fn send_answered<C: SendSms>(
    answer: ResponseTemplate,
    (verb, endpoint): (&str, &str),
    client: impl FnOnce(&MockServer) -> C,
    msg: &OutboundSms,
) -> Result<Accepted, SendError> {
    let request = Mock::given(method(verb)).and(path(endpoint));
    send_expecting(request, answer, client, msg).await
}

/// Sends `msg` through the client `client` builds for a mock server that answers `request`
/// (the request the provider documents, as matchers) with `answer`, and is called with it
/// exactly once.
pub async fn send_expecting<C: SendSms>(
    request: MockBuilder,
    answer: ResponseTemplate,
    client: impl FnOnce(&MockServer) -> C,
    msg: &OutboundSms,
) -> Result<Accepted, SendError> {
    let server = MockServer::start().await;
    request.respond_with(answer).expect(1).mount(&server).await;
    client(&server).send(msg).await
}

/// A form `POST` to `endpoint` with exactly these fields (in any order).
pub fn form_post(endpoint: &str, fields: &[(&str, &str)]) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(endpoint))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(FormIs(pairs(fields)))
}

/// A send the provider accepted, with this id of its own.
pub fn accepted(provider_msg_id: Option<&str>) -> Result<Accepted, SendError> {
    Ok(Accepted {
        provider_msg_id: provider_msg_id.map(str::to_owned),
    })
}

/// The outbound client of the tests for these settings: its HTTP client has a short
/// timeout, so that a slow answer is a timeout without slowing the tests down.
pub fn client<S>(settings: S) -> HttpClient<S> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("http client");
    HttpClient::new(settings, http)
}

/// A message to +79161234567.
pub fn outbound(id: i64, text: &str, encoding: Encoding) -> OutboundSms {
    OutboundSms {
        id,
        to: Phone::parse("+79161234567").expect("valid test number"),
        text: text.into(),
        encoding,
        segments: 1,
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then closed; wiremock pools its
/// servers, so dropping one does not close it).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Matches a form body with exactly these fields (in any order).
pub struct FormIs(pub Vec<(String, String)>);

impl wiremock::Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let mut got: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect();
        let mut want = self.0.clone();
        got.sort();
        want.sort();
        got == want
    }
}
