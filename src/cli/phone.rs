//! `hashar phone`: a console feature phone. It dials the running server through the same
//! Africa's Talking webhook an aggregator uses, shows each screen and reads the next input.

use std::io::Write;

use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum PhoneCliError {
    #[error("cannot reach {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the server answered neither CON nor END: {0:?}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub struct Dial {
    pub url: String,
    pub phone: String,
    pub code: String,
}

/// Runs sessions until the person types `q` (or input ends).
pub async fn run(dial: Dial) -> Result<(), PhoneCliError> {
    let client = reqwest::Client::new();
    let endpoint = format!(
        "{}/webhooks/africastalking/ussd",
        dial.url.trim_end_matches('/')
    );
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut session_no = 0u32;
    loop {
        session_no += 1;
        let session_id = format!("console-{}-{}", std::process::id(), session_no);
        println!("Dialling {} from {} …", dial.code, dial.phone);
        let mut history: Vec<String> = Vec::new();
        loop {
            let text = history.join("*");
            let form = [
                ("sessionId", session_id.as_str()),
                ("serviceCode", dial.code.as_str()),
                ("phoneNumber", dial.phone.as_str()),
                ("networkCode", "99999"),
                ("text", text.as_str()),
            ];
            let resp = client
                .post(&endpoint)
                .form(&form)
                .send()
                .await
                .map_err(|source| PhoneCliError::Http {
                    url: endpoint.clone(),
                    source,
                })?;
            let status = resp.status().as_u16();
            let body = resp.text().await.map_err(|source| PhoneCliError::Http {
                url: endpoint.clone(),
                source,
            })?;
            if status != 200 {
                return Err(PhoneCliError::Status { status, body });
            }
            let (end, screen) = if let Some(s) = body.strip_prefix("CON ") {
                (false, s)
            } else if let Some(s) = body.strip_prefix("END ") {
                (true, s)
            } else {
                return Err(PhoneCliError::Protocol(body));
            };
            println!("┌────────────────────────────");
            for line in screen.lines() {
                println!("│ {line}");
            }
            println!("└────────────────────────────");
            if end {
                break;
            }
            print!("> ");
            std::io::stdout().flush()?;
            match lines.next_line().await? {
                Some(input) if input.trim() == "q" => return Ok(()),
                Some(input) => history.push(input.trim().to_owned()),
                None => return Ok(()),
            }
        }
        print!("Session ended. Enter to dial again, q to quit: ");
        std::io::stdout().flush()?;
        match lines.next_line().await? {
            Some(input) if input.trim() != "q" => continue,
            _ => return Ok(()),
        }
    }
}
