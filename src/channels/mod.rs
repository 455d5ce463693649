//! One module per aggregator, each implementing the provider contract ([`provider`]):
//! checking its requests (signature or shared secret), parsing what it sends (USSD hops,
//! inbound SMS, delivery reports) with the form each is stored in, declaring its webhooks,
//! reading its own settings and sending SMS.
//!
//! Adding a provider: a module here implementing [`Provider`] (and [`ReceivesSms`],
//! [`ReportsDelivery`], [`Ussd`] for what it carries), with its `Options` (its settings) and
//! its tests beside it, and one line in the registry below. Its webhooks are mounted, its
//! name accepted by `HASHAR_SMS_PROVIDER` and its settings read from there
//! (`docs/ARCHITECTURE.md`, "Adding a provider").

pub mod africastalking;
pub mod console;
pub mod infobip;
pub mod kannel;
pub mod provider;
#[cfg(test)]
mod testkit;
pub mod twilio;
pub mod ussd;

use chrono::{DateTime, Utc};

use crate::{
    config::Config,
    domain::{Phone, PhoneError},
};

pub use provider::{
    form_field, log_sending, log_sent, one_in_form, one_in_query, require_setting, send_request,
    shared_secret, stored_form, stored_query, verify, webhook_path, webhook_url,
    webhook_url_with_secret, webhooks, with_secret, Answer, Answered, Carrier, HttpClient, Kind,
    Parsed, Protection, Provider, ReceivesSms, Refused, Registered, ReportsDelivery, SendSms, Ussd,
    Webhook, WebhookRequest, Webhooks,
};

/// The registry: every provider, as `module::Type`, once. From this list come
/// [`ProviderOptions`] (each provider's settings, flattened into
/// [`Config`](crate::config::Config)), [`SmsProvider`] (the values of
/// `HASHAR_SMS_PROVIDER`), [`Sender`] (the configured client) and [`for_each_provider`]
/// (the webhook routes, the README's list).
macro_rules! registry {
    ($($module:ident :: $provider:ident),+ $(,)?) => {
        /// Every provider's own settings (`Options` in its module).
        #[derive(Debug, Clone, clap::Args)]
        pub struct ProviderOptions {
            $(
                #[command(flatten)]
                pub $module: $module::Options,
            )+
        }

        $(
            impl Registered for $module::$provider {
                type Options = $module::Options;
                fn options(config: &Config) -> &$module::Options {
                    &config.providers.$module
                }
            }
        )+

        /// A provider by name: the one that sends SMS (`HASHAR_SMS_PROVIDER`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum SmsProvider {
            $($provider,)+
        }

        impl SmsProvider {
            /// Every provider, in the registry's order.
            pub const ALL: &'static [SmsProvider] = &[$(SmsProvider::$provider,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(SmsProvider::$provider => <$module::$provider as Provider>::NAME,)+
                }
            }

            fn client(self, config: &Config, http: reqwest::Client) -> Result<Sender, MissingSetting> {
                Ok(match self {
                    $(SmsProvider::$provider => {
                        Sender::$provider(<$module::$provider as Provider>::client(config, http)?)
                    })+
                })
            }

            fn sender(self, from: &str) -> Result<Phone, PhoneError> {
                match self {
                    $(SmsProvider::$provider => <$module::$provider as Provider>::sender(from),)+
                }
            }
        }

        /// The configured provider's outbound client.
        pub enum Sender {
            $($provider(<$module::$provider as Provider>::Client),)+
        }

        impl Sender {
            /// Whose client this is.
            pub fn provider(&self) -> SmsProvider {
                match self {
                    $(Sender::$provider(_) => SmsProvider::$provider,)+
                }
            }

            async fn send_one(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
                match self {
                    $(Sender::$provider(c) => c.send(msg).await,)+
                }
            }
        }

        /// Calls `each.provider::<P>()` for every provider, in the registry's order.
        pub fn for_each_provider(each: &mut impl EachProvider) {
            $(each.provider::<$module::$provider>();)+
        }
    };
}

registry! {
    console::Console,
    africastalking::AfricasTalking,
    twilio::Twilio,
    infobip::Infobip,
    kannel::Kannel,
}

/// Something done for each provider ([`for_each_provider`]).
pub trait EachProvider {
    fn provider<P: Provider>(&mut self);
}

/// The providers that do not sign their webhooks and have some, for people: "Africa's
/// Talking, Infobip and Kannel". Without `HASHAR_WEBHOOK_SECRET` those webhooks are open.
pub fn unsigned_titles() -> String {
    struct Unsigned(Vec<&'static str>);
    impl EachProvider for Unsigned {
        fn provider<P: Provider>(&mut self) {
            if P::PROTECTION == Protection::SharedSecret && !webhooks::<P>().is_empty() {
                self.0.push(P::TITLE);
            }
        }
    }
    let mut unsigned = Unsigned(Vec::new());
    for_each_provider(&mut unsigned);
    match unsigned.0.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Longest inbound SMS text taken, in characters: about ten concatenated segments
/// (10 × 153 GSM-7 characters, 10 × 67 UCS-2), more than any phone sends as one message. A
/// longer text is refused whole (413) and stored nowhere, so a provider's retry of it is
/// refused again; nothing real is that long.
pub const MAX_TEXT_CHARS: usize = 1600;

/// Most messages (or delivery reports) one webhook request may carry: Infobip sends at most
/// 100 per request; the form and query providers send one.
pub const MAX_MESSAGES_PER_REQUEST: usize = 100;

/// Largest body of a form webhook (USSD hops, Africa's Talking and Twilio texts and reports).
pub const FORM_BODY_LIMIT: usize = 64 * 1024;

/// Largest body of an Infobip JSON webhook: 100 messages of [`MAX_TEXT_CHARS`] each, every
/// character escaped as `\uXXXX`, with room for the other fields.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

/// Why an inbound request was refused; the message is returned to the sender as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// More than the limits above: answered 413.
    #[error("too large: {0}")]
    TooLarge(String),
}

/// Refuses a text longer than [`MAX_TEXT_CHARS`].
pub fn check_text(msg: &InboundSms) -> Result<(), InboundError> {
    // counting stops at the limit: a huge text costs no more than a long one
    if msg.text.chars().nth(MAX_TEXT_CHARS).is_some() {
        Err(InboundError::TooLarge(format!(
            "text longer than {MAX_TEXT_CHARS} characters"
        )))
    } else {
        Ok(())
    }
}

/// An SMS as a provider handed it over, before anything else is done with it. The sender is
/// kept raw: it is parsed (and may fail to parse) after the message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub provider: &'static str,
    /// The provider's id for this message: the key retries are deduplicated on.
    pub provider_msg_id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub received_at: Option<DateTime<Utc>>,
}

impl InboundSms {
    /// The sender as a phone number, read as its provider writes numbers
    /// ([`Provider::sender`]: Infobip writes them in international form without the `+`).
    pub fn sender(&self) -> Result<Phone, PhoneError> {
        match SmsProvider::named(self.provider) {
            Some(provider) => provider.sender(&self.from),
            None => Phone::parse(&self.from),
        }
    }
}

// What the outbox hands a provider and what comes back (the send contract) is the
// outbox's: re-exported here, where each provider module implements it.
pub use crate::outbox::message::{
    Accepted, DeliveryReport, DeliveryState, MessageRef, OutboundSms, SendError, MAX_RETRY_AFTER,
};

/// The `Retry-After` of a 429 or 503 answer (seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`]; `None` for other statuses or a missing or unreadable header.
pub fn retry_after(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    if status != reqwest::StatusCode::TOO_MANY_REQUESTS
        && status != reqwest::StatusCode::SERVICE_UNAVAILABLE
    {
        return None;
    }
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let after = match raw.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
            (at - now).to_std().unwrap_or(std::time::Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

/// Maps an HTTP status to the retry decision every provider shares: 429 and 5xx are worth
/// another try, any other 4xx is not.
pub fn status_error(status: reqwest::StatusCode, body: &str) -> SendError {
    let snippet: String = body.chars().take(300).collect();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::Retryable(format!("HTTP {status}: {snippet}"))
    } else {
        SendError::Fatal(format!("HTTP {status}: {snippet}"))
    }
}

/// Maps a transport error: timeouts and connection failures are retryable. The URL is
/// dropped first: reqwest's message names the request URL, which for Kannel holds the
/// password, the recipient, the text and the delivery URL with our webhook secret (and for
/// Twilio the account id). What remains is stored in `outbox.last_error` and logged.
pub fn transport_error(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    // The chain of causes says why (refused, reset, timed out), and names no URL.
    let mut message = format!("transport: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Retryable(message)
}

/// Most of a provider's answer we read: a status line or a small JSON document is all we
/// need, and a broken or hostile endpoint must not make us buffer an unbounded body.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Reads a provider's answer, at most [`MAX_RESPONSE_BYTES`] of it (the rest is dropped
/// unread, and the answer is then judged on what was read: a cut JSON answer does not
/// parse, and is refused as unreadable like any other).
pub async fn read_capped(mut response: reqwest::Response) -> Result<String, SendError> {
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let room = MAX_RESPONSE_BYTES - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            tracing::warn!(
                limit = MAX_RESPONSE_BYTES,
                "provider answer longer than the limit; the rest is not read"
            );
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("HASHAR_SMS_PROVIDER={provider} needs {missing}")]
pub struct MissingSetting {
    pub provider: &'static str,
    pub missing: &'static str,
}

impl SmsProvider {
    /// The provider of this name.
    pub fn named(name: &str) -> Option<SmsProvider> {
        SmsProvider::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl clap::ValueEnum for SmsProvider {
    fn value_variants<'a>() -> &'a [Self] {
        SmsProvider::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl Sender {
    /// Builds the client `config` asks for; a provider without its credentials is an error.
    pub fn from_config(config: &Config, http: reqwest::Client) -> Result<Sender, MissingSetting> {
        config.sms_provider.client(config, http)
    }
}

impl crate::outbox::Gateway for Sender {
    fn name(&self) -> &'static str {
        self.provider().name()
    }

    fn send<'a>(
        &'a self,
        msg: &'a OutboundSms,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted, SendError>> + Send + 'a>>
    {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = self.send_one(msg).await;
            let outcome = match &result {
                Ok(_) => "accepted",
                Err(SendError::Retryable(_) | SendError::RetryAfter { .. }) => "retryable",
                Err(SendError::Fatal(_)) => "fatal",
            };
            crate::metrics::provider_send(self.name(), outcome, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

    /// The README's table of webhooks, as the registry says it should read.
    fn webhooks_table() -> String {
        struct Rows(Vec<String>);
        impl EachProvider for Rows {
            fn provider<P: Provider>(&mut self) {
                let hooks = webhooks::<P>();
                if hooks.is_empty() {
                    return;
                }
                let cell = |kind: Kind| match hooks.iter().find(|w| w.kind == kind) {
                    Some(w) => {
                        let json = if w.carrier == Carrier::Json {
                            " (JSON)"
                        } else {
                            ""
                        };
                        format!("`{} {}`{json}", w.carrier.method(), w.path)
                    }
                    None => "—".to_owned(),
                };
                let protection = match P::PROTECTION {
                    Protection::SharedSecret => "shared secret",
                    Protection::Signature(how) => how,
                };
                self.0.push(format!(
                    "| {} | {} | {} | {} | {protection} |",
                    P::TITLE,
                    cell(Kind::Ussd),
                    cell(Kind::Sms),
                    cell(Kind::Delivery),
                ));
            }
        }
        let mut rows = Rows(vec![
            "| provider | USSD | inbound SMS | delivery reports | protection |".to_owned(),
            "|---|---|---|---|---|".to_owned(),
        ]);
        for_each_provider(&mut rows);
        rows.0.join("\n")
    }

    /// The README lists what the registry holds: the webhooks of every provider, and the
    /// values of `HASHAR_SMS_PROVIDER`.
    #[test]
    fn the_readme_lists_the_registered_providers() {
        let readme = include_str!("../../README.md");
        let table = webhooks_table();
        assert!(
            readme.contains(&format!("\n{table}\n\n")),
            "README.md should hold:\n{table}"
        );
        let names: Vec<String> = SmsProvider::ALL
            .iter()
            .map(|p| format!("`{}`", p.name()))
            .collect();
        let row = format!(
            "| `HASHAR_SMS_PROVIDER` | `{}` | who sends SMS: {} |",
            SmsProvider::Console.name(),
            names.join(", ")
        );
        assert!(readme.contains(&row), "README.md should hold:\n{row}");
    }

    /// A secret in the query is accepted under its name written in any way a form decoder
    /// reads (`secre%74=`), and it was then kept in the stored query: it is left out
    /// whatever way its name is written.
    #[test]
    fn the_shared_secret_is_never_stored() {
        let mut config = Config::from_env();
        config.webhook_secret = Some("hook-secret-0123456789".into());
        for raw in [
            "secret=hook-secret-0123456789&id=a&from=1",
            "id=a&secre%74=hook-secret-0123456789&from=1",
            "id=a&from=1&%73%65cret=hook-secret-0123456789",
        ] {
            let request = WebhookRequest::with_query(raw);
            assert_eq!(shared_secret(&config, &request), Ok(()), "{raw}");
            assert_eq!(stored_query(raw), "id=a&from=1", "{raw}");
        }
    }

    #[test]
    fn the_unsigned_providers_are_named_for_people() {
        assert_eq!(unsigned_titles(), "Africa's Talking, Infobip and Kannel");
    }

    #[test]
    fn each_provider_is_found_by_its_name() {
        for provider in SmsProvider::ALL {
            assert_eq!(SmsProvider::named(provider.name()), Some(*provider));
        }
        assert_eq!(SmsProvider::named("nobody"), None);
    }

    #[tokio::test]
    async fn a_provider_answer_is_read_up_to_the_cap_only() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("z".repeat(16 * 1024 * 1024)))
            .mount(&server)
            .await;
        let response = reqwest::get(server.uri()).await.expect("answer");
        let body = read_capped(response).await.expect("read");
        assert_eq!(body.len(), MAX_RESPONSE_BYTES);
        // a small one is read whole
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("0: Accepted"))
            .mount(&server)
            .await;
        let response = reqwest::get(server.uri()).await.expect("answer");
        assert_eq!(read_capped(response).await.expect("read"), "0: Accepted");
    }

    #[test]
    fn provider_settings_print_no_secret() {
        let kannel = kannel::Settings {
            sendsms_url: "http://127.0.0.1:13013/cgi-bin/sendsms".into(),
            username: "hashar".into(),
            password: "kannel-password-123".into(),
            sender: None,
            dlr_url_base: Some("https://x/webhooks/kannel/delivery?secret=hook-secret-456".into()),
        };
        let infobip = infobip::Settings {
            api_key: "infobip-key-789".into(),
            sender: "Hashar".into(),
            base_url: "https://api.infobip.com".into(),
            delivery_url: Some("https://x/webhooks/infobip/delivery?secret=hook-secret-456".into()),
        };
        let africastalking = africastalking::Settings {
            username: "hashar".into(),
            api_key: "at-key-135".into(),
            sender: None,
            base_url: africastalking::DEFAULT_BASE_URL.into(),
        };
        let twilio = twilio::Settings {
            account_sid: "AC1".into(),
            auth_token: "twilio-token-246".into(),
            from: "+12028831111".into(),
            base_url: twilio::DEFAULT_BASE_URL.into(),
            status_callback: None,
        };
        let shown = format!("{kannel:?} {infobip:?} {africastalking:?} {twilio:?}");
        for leak in [
            "kannel-password-123",
            "hook-secret-456",
            "infobip-key-789",
            "at-key-135",
            "twilio-token-246",
        ] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;
    use reqwest::{header::HeaderMap, StatusCode};
    use std::time::Duration;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            value.parse().expect("header value"),
        );
        h
    }

    #[test]
    fn retry_after_is_read_from_429_and_503_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let cases: [(StatusCode, &str, Option<Duration>); 7] = [
            (
                StatusCode::TOO_MANY_REQUESTS,
                "2",
                Some(Duration::from_secs(2)),
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                " 30 ",
                Some(Duration::from_secs(30)),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Wed, 21 Oct 2015 07:28:10 GMT",
                Some(Duration::from_secs(10)),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Wed, 21 Oct 2015 07:27:00 GMT",
                Some(Duration::ZERO),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "99999999",
                Some(MAX_RETRY_AFTER),
            ),
            (StatusCode::TOO_MANY_REQUESTS, "soon", None),
            (StatusCode::INTERNAL_SERVER_ERROR, "2", None),
        ];
        for (status, value, want) in cases {
            assert_eq!(
                retry_after(status, &headers(value), now),
                want,
                "{status} {value}"
            );
        }
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), now),
            None
        );
    }

    #[test]
    fn only_retryable_errors_take_a_retry_after() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            SendError::Retryable("HTTP 429".into()).retry_after(after),
            SendError::RetryAfter {
                reason: "HTTP 429".into(),
                after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            SendError::Fatal("HTTP 400".into()).retry_after(after),
            SendError::Fatal("HTTP 400".into())
        );
        assert_eq!(
            SendError::Retryable("HTTP 500".into()).retry_after(None),
            SendError::Retryable("HTTP 500".into())
        );
    }
}
