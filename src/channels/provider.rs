//! The provider contract: what a module under `src/channels/` implements to be a provider.
//!
//! - [`Provider`]: its name (written once, here in the contract's `NAME`), how its webhooks
//!   are protected, which webhooks it has (path, and how each request comes), how it
//!   builds its outbound client from its own settings (`Options` in its module).
//! - [`ReceivesSms`], [`ReportsDelivery`], [`Ussd`]: parsing what each webhook carries,
//!   for the providers that have it. A webhook can only be declared by a provider that
//!   implements the matching trait.
//! - [`SendSms`]: its outbound client; over HTTP an [`HttpClient`] of its settings.
//!
//! What the providers share lives here too, so that each module holds only its protocol:
//! parsing a one-message webhook ([`one_in_form`], [`one_in_query`], [`form_field`]) and
//! sending ([`send_request`] and its [`Answered`], [`log_sending`], [`log_sent`],
//! [`webhook_url_with_secret`]).
//!
//! The webhook handlers (`crate::http`) are generic over these traits: each checks the
//! request with [`verify`] first (403, stored nowhere, when it fails), then hands the
//! [`WebhookRequest`] to the provider's parser, which returns every message with the form it
//! is stored in.

use std::{future::Future, marker::PhantomData, sync::LazyLock};

use axum::http::{header, HeaderMap};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use super::{
    read_capped, status_error, transport_error,
    ussd::{Hop, Screen},
    Accepted, DeliveryReport, InboundError, InboundSms, MissingSetting, OutboundSms, SendError,
};
use crate::{
    config::Config,
    domain::{Phone, PhoneError},
};

/// Where a provider's settings live in [`Config`]. The registry (`channels/mod.rs`)
/// implements it for every provider it lists, so a provider that is not registered does
/// not compile.
pub trait Registered {
    /// The provider's own settings (`HASHAR_<PROVIDER>_*`): `Options` in its module, a
    /// `clap::Args` struct flattened into [`Config`].
    type Options: std::fmt::Debug + Clone + Send + Sync + 'static;
    fn options(config: &Config) -> &Self::Options;
}

/// A provider: one module under `src/channels/` and one line in the registry.
pub trait Provider: Registered + Sized + Send + Sync + 'static {
    /// Its name, written only here: the `HASHAR_SMS_PROVIDER` value, the webhooks'
    /// `/webhooks/{NAME}/…`, the `provider` of stored rows, metrics and logs.
    const NAME: &'static str;
    /// Its name for people (the README's table, error messages).
    const TITLE: &'static str;
    /// How its webhooks are checked.
    const PROTECTION: Protection = Protection::SharedSecret;

    /// Its outbound client.
    type Client: SendSms;

    /// Builds its client from its settings; a setting it needs and does not have is an
    /// error (refused at start).
    fn client(config: &Config, http: reqwest::Client) -> Result<Self::Client, MissingSetting>;

    /// Declares its webhooks, each under `/webhooks/{NAME}/`: `w.sms("sms", Carrier::Form)`.
    fn webhooks<W: Webhooks<Self>>(w: W) -> W {
        w
    }

    /// Checks a request's signature; called for [`Protection::Signature`] only. A
    /// provider that says it signs and does not override this refuses everything.
    fn check_signature(_config: &Config, _request: &WebhookRequest<'_>) -> Result<(), Refused> {
        Err(Refused("no signature check"))
    }

    /// The sender of an inbound text as a phone number. Most providers send E.164, or what
    /// the operator gave (parsed with the default region).
    fn sender(from: &str) -> Result<Phone, PhoneError> {
        Phone::parse(from)
    }
}

/// What a webhook request carries, once parsed: every message (a text or a delivery report),
/// each with the form it is stored in (`inbound_messages.raw`); or why it was refused.
pub type Parsed<T> = Result<Vec<(T, serde_json::Value)>, InboundError>;

/// A provider that forwards inbound texts.
pub trait ReceivesSms: Provider {
    /// Every text the request carries, each with the form it is stored in
    /// (`inbound_messages.raw`): never the whole request once per message.
    fn parse_sms(request: &WebhookRequest<'_>) -> Parsed<InboundSms>;

    /// The answer once every text is stored: 200 with an empty `text/plain` body unless
    /// the provider expects something else.
    const ANSWER: Answer = Answer::EMPTY;
}

/// A provider that reports the delivery of what we sent.
pub trait ReportsDelivery: Provider {
    /// Every report the request carries, each with the form it is stored in.
    fn parse_delivery(request: &WebhookRequest<'_>) -> Parsed<DeliveryReport>;
}

/// A provider that carries USSD sessions. A hop is a POST form of at most
/// [`super::FORM_BODY_LIMIT`], read by axum's `Form` (a form that does not read is answered
/// 400 with axum's reason). Its request is checked on the URL and headers: the body is not
/// given to [`Provider::check_signature`].
pub trait Ussd: Provider {
    /// The hop's form fields.
    type Form: DeserializeOwned + Send + 'static;
    fn parse_ussd(form: Self::Form) -> Result<Hop, InboundError>;
    /// The body of the answer (`text/plain`).
    fn render_ussd(screen: &Screen<'_>) -> String;
}

/// A provider's outbound client.
pub trait SendSms: Send + Sync + 'static {
    fn send(&self, msg: &OutboundSms) -> impl Future<Output = Result<Accepted, SendError>> + Send;
}

/// How a provider's webhooks are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// It does not sign: our shared secret (`HASHAR_WEBHOOK_SECRET`), as `?secret=…` or the
    /// password of HTTP basic auth, compared in constant time. Not checked when none is
    /// set, which `serve` allows only on a loopback address or by choice
    /// (`Config::webhook_exposure`).
    SharedSecret,
    /// It signs every request: [`Provider::check_signature`]. What it signs, for the README.
    Signature(&'static str),
}

/// Why a request was refused (logged; the sender only gets 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// The answer to an inbound-SMS webhook once its texts are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub content_type: &'static str,
    pub body: &'static str,
}

impl Answer {
    pub const EMPTY: Answer = Answer {
        content_type: "text/plain; charset=utf-8",
        body: "",
    };
}

/// How a webhook's request comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// `POST`, a form body of at most [`super::FORM_BODY_LIMIT`].
    Form,
    /// `POST`, a JSON body of at most [`super::JSON_BODY_LIMIT`].
    Json,
    /// `GET`, everything in the query string; no body is read.
    Query,
}

impl Carrier {
    pub fn method(self) -> &'static str {
        match self {
            Carrier::Form | Carrier::Json => "POST",
            Carrier::Query => "GET",
        }
    }
}

/// What a webhook carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ussd,
    Sms,
    Delivery,
}

/// A provider declares its webhooks to one of these (the router mounts them; a listing
/// names them for URLs and the README). Paths are relative to `/webhooks/{NAME}/`.
pub trait Webhooks<P: Provider>: Sized {
    /// USSD hops (a POST form).
    fn ussd(self, path: &'static str) -> Self
    where
        P: Ussd;
    fn sms(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReceivesSms;
    fn delivery(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReportsDelivery;
}

/// The path of a provider's webhook: `/webhooks/{provider}/{path}`.
pub fn webhook_path(provider: &str, path: &str) -> String {
    format!("/webhooks/{provider}/{path}")
}

/// One declared webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub kind: Kind,
    pub carrier: Carrier,
    /// The whole path, `/webhooks/{NAME}/…`.
    pub path: String,
}

/// The webhooks `P` declares, in its order.
pub fn webhooks<P: Provider>() -> Vec<Webhook> {
    P::webhooks(Listing::<P>(Vec::new(), PhantomData)).0
}

struct Listing<P>(Vec<Webhook>, PhantomData<P>);

impl<P: Provider> Listing<P> {
    fn add(mut self, kind: Kind, path: &str, carrier: Carrier) -> Self {
        self.0.push(Webhook {
            kind,
            carrier,
            path: webhook_path(P::NAME, path),
        });
        self
    }
}

impl<P: Provider> Webhooks<P> for Listing<P> {
    fn ussd(self, path: &'static str) -> Self
    where
        P: Ussd,
    {
        self.add(Kind::Ussd, path, Carrier::Form)
    }
    fn sms(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReceivesSms,
    {
        self.add(Kind::Sms, path, carrier)
    }
    fn delivery(self, path: &'static str, carrier: Carrier) -> Self
    where
        P: ReportsDelivery,
    {
        self.add(Kind::Delivery, path, carrier)
    }
}

/// The public URL of `P`'s webhook of this kind (`HASHAR_PUBLIC_URL` + its path), to hand
/// to the provider; `None` when it has none.
pub fn webhook_url<P: Provider>(config: &Config, kind: Kind) -> Option<String> {
    let public = config.public_url.trim_end_matches('/');
    webhooks::<P>()
        .into_iter()
        .find(|w| w.kind == kind)
        .map(|w| format!("{public}{}", w.path))
}

/// [`webhook_url`] with our shared secret ([`with_secret`]): what a provider that does not
/// sign is told to call back.
pub fn webhook_url_with_secret<P: Provider>(config: &Config, kind: Kind) -> Option<SecretString> {
    webhook_url::<P>(config, kind).map(|url| with_secret(&url, config))
}

/// A setting `P`'s client cannot do without.
pub fn require_setting<P: Provider, T: Clone>(
    value: &Option<T>,
    setting: &'static str,
) -> Result<T, MissingSetting> {
    value.clone().ok_or(MissingSetting {
        provider: P::NAME,
        missing: setting,
    })
}

/// A webhook URL we hand to a provider, with the shared secret when one is set. It is a
/// secret itself: it is only ever sent to the provider, never logged.
pub fn with_secret(url: &str, config: &Config) -> SecretString {
    match config.webhook_secret() {
        Some(secret) => {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            SecretString::from(format!("{url}?secret={encoded}"))
        }
        None => SecretString::from(url),
    }
}

// ---------------------------------------------------------------------------------------
// The request as a provider sees it

/// A webhook request as a provider checks and parses it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// As received, e.g. `/webhooks/twilio/sms`.
    pub path: &'a str,
    /// The raw query string, without its `?`.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The body (empty for a `GET` webhook, whose body is never read).
    pub body: &'a [u8],
}

static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

impl<'a> WebhookRequest<'a> {
    /// A request with only this body (tests, fuzzing).
    pub fn with_body(body: &'a [u8]) -> WebhookRequest<'a> {
        WebhookRequest {
            path: "",
            query: None,
            headers: &NO_HEADERS,
            body,
        }
    }

    /// A request with only this query string (tests, fuzzing).
    pub fn with_query(query: &'a str) -> WebhookRequest<'a> {
        WebhookRequest {
            path: "",
            query: Some(query),
            headers: &NO_HEADERS,
            body: &[],
        }
    }

    /// The query string, `""` when there is none.
    pub fn query(&self) -> &'a str {
        self.query.unwrap_or("")
    }

    /// The body read as a form, every pair in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body)
            .into_owned()
            .collect()
    }
}

/// The first value of a form field, if any.
pub fn form_field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The one message of a form webhook: `parse` reads it from the body's pairs, and it is
/// stored as those pairs ([`stored_form`]).
pub fn one_in_form<T>(
    request: &WebhookRequest<'_>,
    parse: impl FnOnce(&[(String, String)]) -> Result<T, InboundError>,
) -> Parsed<T> {
    let form = request.form();
    Ok(vec![(parse(&form)?, stored_form(&form))])
}

/// The one message of a query webhook: `parse` reads it from the raw query string, and it is
/// stored as that string without our shared secret ([`stored_query`]).
pub fn one_in_query<T>(
    request: &WebhookRequest<'_>,
    parse: impl FnOnce(&str) -> Result<T, InboundError>,
) -> Parsed<T> {
    let query = request.query();
    Ok(vec![(parse(query)?, stored_query(query))])
}

/// How a form is stored: its pairs, in order, as a JSON array of `[name, value]`.
pub fn stored_form(pairs: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        pairs
            .iter()
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect(),
    )
}

/// How a query string is stored: as a JSON string, without our shared secret (a pair is
/// left out when its name reads `secret`, however it is written: `secre%74=` is accepted
/// by [`shared_secret`] too).
pub fn stored_query(query: &str) -> serde_json::Value {
    let is_secret = |pair: &&str| {
        let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
        url::form_urlencoded::parse(name.as_bytes())
            .next()
            .is_some_and(|(name, _)| name == "secret")
    };
    serde_json::Value::String(
        query
            .split('&')
            .filter(|pair| !is_secret(pair))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

// ---------------------------------------------------------------------------------------
// Checks

/// Checks a request as `P` protects its webhooks: its signature, or our shared secret.
pub fn verify<P: Provider>(config: &Config, request: &WebhookRequest<'_>) -> Result<(), Refused> {
    match P::PROTECTION {
        Protection::SharedSecret => shared_secret(config, request),
        Protection::Signature(_) => P::check_signature(config, request),
    }
}

/// The shared secret of providers that do not sign: `?secret=…` or the password of HTTP
/// basic auth. Not checked when none is configured, which `serve` allows only on a loopback
/// address or with `HASHAR_INSECURE_WEBHOOKS=true` (see `Config::webhook_exposure`).
pub fn shared_secret(config: &Config, request: &WebhookRequest<'_>) -> Result<(), Refused> {
    let Some(secret) = config.webhook_secret() else {
        return Ok(());
    };
    let in_query = url::form_urlencoded::parse(request.query().as_bytes())
        .any(|(k, v)| k == "secret" && same(v.as_bytes(), secret.as_bytes()));
    let in_basic = request
        .headers
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
        Ok(())
    } else {
        Err(Refused("missing or wrong shared secret"))
    }
}

/// Compares in constant time (`subtle`; the length is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

// ---------------------------------------------------------------------------------------
// Sending

/// The outbound client of a provider that sends over HTTP: its settings (`Settings` in its
/// module, which names it `Client`) and the process's HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient<S> {
    pub(super) settings: S,
    pub(super) http: reqwest::Client,
}

impl<S> HttpClient<S> {
    pub fn new(settings: S, http: reqwest::Client) -> HttpClient<S> {
        HttpClient { settings, http }
    }
}

/// A provider's answer to a send, as every client reads it.
#[derive(Debug)]
pub struct Answered {
    pub status: reqwest::StatusCode,
    /// Its `Retry-After` (429 and 503 only, [`super::retry_after`]).
    pub retry_after: Option<std::time::Duration>,
    /// Its body, at most [`super::MAX_RESPONSE_BYTES`] of it ([`read_capped`]).
    pub body: String,
}

/// Sends a provider's request and reads its answer. A request that gets no answer (timeout,
/// connection refused or reset) is retryable, its error naming no URL
/// ([`transport_error`]).
pub async fn send_request(request: reqwest::RequestBuilder) -> Result<Answered, SendError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let retry_after = super::retry_after(status, response.headers(), chrono::Utc::now());
    let body = read_capped(response).await?;
    Ok(Answered {
        status,
        retry_after,
        body,
    })
}

impl Answered {
    /// A 2xx answer, to be read by its provider; any other is [`Answered::refusal`].
    pub fn success(self) -> Result<Answered, SendError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.refusal())
        }
    }

    /// The retry decision every provider shares for an answer that is not 2xx
    /// ([`status_error`]), with its `Retry-After`.
    pub fn refusal(&self) -> SendError {
        status_error(self.status, &self.body).retry_after(self.retry_after)
    }
}

/// Logs a send about to be made (`debug`): the number masked (`Phone`'s `Display`), never
/// the text.
pub fn log_sending<P: Provider>(msg: &OutboundSms) {
    tracing::debug!(
        provider = P::NAME,
        outbox_id = msg.id,
        to = %msg.to,
        encoding = ?msg.encoding,
        segments = msg.segments,
        "sending"
    );
}

/// Logs what became of a send that got an answer: `debug` when it was accepted (with the
/// provider's id for it), `warn` when not. The number is masked (`Phone`'s `Display`).
pub fn log_sent<P: Provider>(msg: &OutboundSms, result: &Result<Accepted, SendError>) {
    match result {
        Ok(a) => tracing::debug!(
            provider = P::NAME,
            outbox_id = msg.id,
            to = %msg.to,
            message_id = a.provider_msg_id.as_deref().unwrap_or(""),
            "sent"
        ),
        Err(e) => tracing::warn!(
            provider = P::NAME,
            outbox_id = msg.id,
            to = %msg.to,
            error = %e,
            "send failed"
        ),
    }
}
