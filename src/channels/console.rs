//! The zero-configuration provider: messages go to the log (phone masked) and to a small
//! in-memory ring for a simulator page, never to a phone.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{Accepted, MissingSetting, OutboundSms, Provider, SendError, SendSms};
use crate::config::Config;

/// The built-in console: no webhooks, nothing to set.
pub struct Console;

impl Provider for Console {
    const NAME: &'static str = "console";
    const TITLE: &'static str = "Console";
    type Client = Client;

    fn client(_config: &Config, _http: reqwest::Client) -> Result<Client, MissingSetting> {
        Ok(Client::new())
    }
}

/// The console has no settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Options {}

/// How many sent messages [`Client::recent`] keeps.
pub const KEEP: usize = 200;

/// One message as "sent" by the console provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsoleMessage {
    /// Our outbox id.
    pub id: i64,
    /// E.164, in full: this is shown on the simulator page, not logged.
    pub to: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Client {
    recent: Mutex<VecDeque<ConsoleMessage>>,
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    /// The last [`KEEP`] messages, oldest first.
    pub fn recent(&self) -> Vec<ConsoleMessage> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }
}

impl SendSms for Client {
    async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
        tracing::info!(
            provider = Console::NAME,
            outbox_id = msg.id,
            to = %msg.to.masked(),
            encoding = ?msg.encoding,
            segments = msg.segments,
            text = %msg.text,
            "console SMS"
        );
        let entry = ConsoleMessage {
            id: msg.id,
            to: msg.to.as_str().to_owned(),
            text: msg.text.clone(),
            at: Utc::now(),
        };
        // A poisoned lock only means another sender panicked mid-push; the ring is still usable.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= KEEP {
            recent.pop_front();
        }
        recent.push_back(entry);
        Ok(Accepted {
            provider_msg_id: Some(format!("console-{}", msg.id)),
        })
    }
}

#[cfg(test)]
mod tests;
