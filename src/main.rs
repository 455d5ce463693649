use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hashar::{
    app::{self, AppState},
    channels::Sender,
    config::{Config, MetricsListen, WebhookExposure},
    demo,
    engine::{check, MenuSet},
    http, provision,
};
use tracing_subscriber::EnvFilter;

/// `hashar phone`: a console phone for trying the menus; part of the binary, not the library.
#[path = "cli/phone.rs"]
mod phone_cli;

#[derive(Parser)]
#[command(
    name = "hashar",
    version,
    about = "SMS/USSD gateway for community pledges and matching"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (webhooks, health).
    Serve,
    /// Create the database if needed and apply migrations.
    Migrate,
    /// Menu tools.
    Menus {
        #[command(subcommand)]
        command: MenusCommand,
    },
    /// Load the demo programme: 15 Zarafshon valley communities, projects, households.
    DemoData {
        /// Also generate this many registered households (phones +99290 and seven
        /// digits), for benchmarks at scale.
        #[arg(long, default_value_t = 0)]
        households: u64,
        /// Also generate this many pledges by the generated households (one in three
        /// received), for benchmarks at scale.
        #[arg(long, default_value_t = 0)]
        pledges: u64,
    },
    /// Coordinators and their API tokens.
    Coordinator {
        #[command(subcommand)]
        command: CoordinatorCommand,
    },
    /// A console feature phone that dials the running server.
    Phone {
        /// The caller's number.
        #[arg(long, default_value = "+992900000001")]
        phone: String,
        /// The USSD code dialled.
        #[arg(long, default_value = "*384*4274#")]
        code: String,
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

#[derive(Subcommand)]
enum CoordinatorCommand {
    /// Add a coordinator (or a new token for an existing one, by phone); prints the token once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: String,
        /// A community code this coordinator works for (repeat for several).
        #[arg(long = "community")]
        communities: Vec<String>,
        /// May see and do everything (the same as `--role admin`).
        #[arg(long)]
        admin: bool,
        /// admin (everything), coordinator (their communities; the default for someone
        /// new), counsellor (every community, no money) or officer (reads their
        /// communities, changes nothing). Left out, an existing person keeps theirs.
        #[arg(long, value_enum, conflicts_with = "admin")]
        role: Option<hashar::store::staff::Role>,
    },
    /// Set a coordinator's PIN for the phone menu (6 digits, not all the same and not a run; stored as an argon2 hash).
    SetPin {
        #[arg(long)]
        phone: String,
        /// Read from standard input when left out, so it stays out of the shell history.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Set a member of staff's console password (at least 10 characters; read from standard
    /// input, never from the command line; stored as an argon2id hash).
    SetPassword {
        #[arg(long)]
        phone: String,
    },
    /// Revoke an API token by its id (printed when it was created).
    Revoke {
        #[arg(long)]
        token_id: i64,
    },
}

#[derive(Subcommand)]
enum MenusCommand {
    /// Load every menu, render every screen in every language; fail on any problem.
    Check,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let cli = Cli::parse();
    let config = cli.config;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let pool = provision::prepare(&config)
                .await
                .context("preparing the database")?;
            let added =
                hashar::actions::sync_tips(&pool, &config.menus_dir.join("tips.toml")).await?;
            println!("database ready; {added} new tips loaded");
            Ok(())
        }
        Command::Menus {
            command: MenusCommand::Check,
        } => {
            // The screens are checked against the limits `serve` would use, so the same
            // settings are refused here.
            config.validate()?;
            let set = MenuSet::load_dir(&config.menus_dir).context("loading menus")?;
            let errors = check::check(&set, config.screen_limits());
            if errors.is_empty() {
                let screens: usize = set.menus.values().map(|m| m.screens.len()).sum();
                println!(
                    "menus ok: {} menus, {screens} screens, 3 languages",
                    set.menus.len()
                );
                Ok(())
            } else {
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!("{} problem(s) in the menus", errors.len())
            }
        }
        Command::DemoData {
            households,
            pledges,
        } => {
            let pool = provision::prepare(&config)
                .await
                .context("preparing the database")?;
            hashar::actions::sync_tips(&pool, &config.menus_dir.join("tips.toml")).await?;
            let added = demo::load(&pool).await?;
            println!(
                "demo data: {} communities, {} projects, {} households added",
                added.communities, added.projects, added.households
            );
            if households > 0 || pledges > 0 {
                // Generated households have real-looking Tajik numbers in every community:
                // only where nothing is really sent.
                if config.sms_provider != hashar::channels::SmsProvider::Console {
                    anyhow::bail!(
                        "demo-data --households/--pledges only with HASHAR_SMS_PROVIDER=console \
                         (the generated numbers would be texted by the next broadcast)"
                    );
                }
                let scaled = demo::scale(&pool, households, pledges, chrono::Utc::now()).await?;
                println!(
                    "generated: {} households, {} pledges, {} receipts added",
                    scaled.households, scaled.pledges, scaled.receipts
                );
            }
            hashar::store::demo::analyze(&pool, pledges > 0).await?;
            Ok(())
        }
        Command::Coordinator { command } => {
            let pool = provision::prepare(&config)
                .await
                .context("preparing the database")?;
            match command {
                CoordinatorCommand::Add {
                    name,
                    phone,
                    communities,
                    admin,
                    role,
                } => {
                    let role = if admin {
                        Some(hashar::store::staff::Role::Admin)
                    } else {
                        role
                    };
                    let (id, token_id, token) =
                        hashar::api::auth::add_staff(&pool, &name, &phone, &communities, role)
                            .await?;
                    println!(
                        "coordinator {id}, token {token_id} (shown once, keep it safe):\n{token}"
                    );
                }
                CoordinatorCommand::SetPin { phone, pin } => {
                    let phone = hashar::domain::Phone::parse(&phone)?;
                    let pin = match pin {
                        Some(p) => p,
                        None => {
                            let mut line = String::new();
                            std::io::stdin().read_line(&mut line)?;
                            line.trim().to_owned()
                        }
                    };
                    hashar::actions::set_pin(&pool, &phone, &pin).await?;
                    println!("PIN set for {phone}");
                }
                CoordinatorCommand::SetPassword { phone } => {
                    let phone = hashar::domain::Phone::parse(&phone)?;
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    let password = line.trim_end_matches(['\r', '\n']);
                    hashar::console::auth::set_password(&pool, &phone, password).await?;
                    println!("console password set for {}", phone.masked());
                }
                CoordinatorCommand::Revoke { token_id } => {
                    hashar::api::auth::revoke_token(&pool, token_id).await?;
                    println!("token {token_id} revoked");
                }
            }
            Ok(())
        }
        Command::Phone { phone, code, url } => {
            phone_cli::run(phone_cli::Dial { url, phone, code }).await?;
            Ok(())
        }
    }
}

/// Refuses settings `serve` cannot work with, and unsigned webhooks open to anyone;
/// warns about them open on loopback or by choice.
fn check_settings(config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    match config.webhook_exposure()? {
        WebhookExposure::Protected => {
            tracing::info!("webhooks of unsigned providers check HASHAR_WEBHOOK_SECRET")
        }
        WebhookExposure::OpenOnLoopback => tracing::warn!(
            listen = %config.listen,
            "HASHAR_WEBHOOK_SECRET is not set: the Africa's Talking, Infobip and Kannel webhooks accept any request from this machine"
        ),
        WebhookExposure::OpenByChoice => tracing::warn!(
            listen = %config.listen,
            "HASHAR_INSECURE_WEBHOOKS=true and no HASHAR_WEBHOOK_SECRET: the Africa's Talking, Infobip and Kannel webhooks accept requests from anyone who can reach this address (forged pledges, STOPs, delivery reports, SMS pumping)"
        ),
    }
    if config.hotline_unset() {
        tracing::warn!(
            "HASHAR_HOTLINE is not set: the safe-migration screens leave the hotline out and tell callers to ask their resource centre for the number"
        );
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    check_settings(&config)?;
    let menus = app::load_checked_menus(&config)?;
    hashar::console::i18n::check_at_start()?;
    tracing::info!(
        dir = %config.menus_dir.display(),
        menus = menus.menus.len(),
        screens = menus.menus.values().map(|m| m.screens.len()).sum::<usize>(),
        "menus loaded and checked"
    );
    let pools = provision::prepare_pools(&config)
        .await
        .context("preparing the database")?;
    let pool = pools.webhooks.clone();
    let tips = hashar::actions::sync_tips(&pool, &config.menus_dir.join("tips.toml")).await?;
    tracing::info!(new = tips, "tips loaded");
    tracing::info!(
        provider = config.sms_provider.name(),
        rate_per_sec = config.sms_rate,
        dispatchers = config.dispatchers,
        "SMS provider"
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %config.listen, "hashar listening; dial it with `hashar phone`");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(config.sms_http_timeout_ms))
        .build()
        .context("building the HTTP client")?;
    let sender = Arc::new(Sender::from_config(&config, http).context("SMS provider settings")?);
    let state = AppState::new(pool, menus, config)?.with_api_pool(pools.api);
    let metrics_listen = state.config.metrics_listen;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    match metrics_listen {
        MetricsListen::At(addr) => {
            let mut rx = stop_rx.clone();
            let (bound, task) = hashar::metrics::install(addr, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await?;
            tracing::info!(addr = %bound, "metrics at /metrics");
            workers.push(task);
            workers.push(tokio::spawn(hashar::metrics::sample(
                state.pool.clone(),
                std::time::Duration::from_secs(10),
                stop_rx.clone(),
            )));
        }
        MetricsListen::Off => tracing::info!("metrics listener off"),
    }
    // What USSD hops read, in memory and kept right by the database's notifications.
    let mut rx = stop_rx.clone();
    workers.extend(state.follow_database(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    // The dispatchers and the broadcast scheduler.
    workers.extend(hashar::workers::start(&state, sender, stop_rx.clone()));
    // On SIGTERM or Ctrl-C everything stops at once: the listener takes no new connection,
    // requests in flight are answered, the dispatchers finish the message they are sending
    // and give back the rest of their claim, and the process exits within 10 s.
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let limits = hashar::server::HttpLimits::from_config(&state.config);
    let router = http::router(state);
    let mut rx = stop_rx.clone();
    let server = hashar::server::serve(listener, router, limits, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    });
    let mut rx = stop_rx.clone();
    let grace_over = async move {
        let _ = rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(REQUEST_GRACE).await;
    };
    tokio::select! {
        served = server => served?,
        _ = grace_over => tracing::warn!(
            "requests still open {} s after the signal; closing them",
            REQUEST_GRACE.as_secs()
        ),
    }
    let workers = futures_util::future::join_all(workers);
    if tokio::time::timeout(WORKER_GRACE, workers).await.is_err() {
        tracing::warn!("workers still busy after the grace period; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long requests in flight may take after SIGTERM, and then the workers: 10 s in all,
/// what systemd and container runtimes wait before SIGKILL.
const REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(7);
const WORKER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Ctrl-C or SIGTERM (what systemd and container runtimes send): stop accepting, finish
/// the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
