//! `GET /console`: the Overview, the programme at a glance (console design §3, issue 10
//! page 1), for the signed-in person's scope ([`service::overview`]).
//!
//! At 360 px: the scope's matched total against its target and %, a card per community
//! with its bar and projects, the pledges-per-week chart and the health strip (households
//! by how they registered, messages sent this week and the share delivered). From 960 px
//! the cards give way to a community × project table (target, pledged, received, matched,
//! matched total, %), the chart beside the scope's totals. Counsellors see no money: the
//! health strip only. Project names link to their pages (`/console/projects/{id}`).
//!
//! A database error or timeout gives an error page with a retry link (503), never partial
//! totals. Every aggregate says when it was read ("as of 09:41").

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;

use super::{
    auth::{self, Staff},
    i18n::{key, Tr},
    pages::{role_key, LangQuery, Layout, MessagePage},
    svg::{self, Svg},
    timing, Console,
};
use crate::{
    domain::Language,
    service::{
        self,
        overview::{Overview, Totals, Week},
        Role,
    },
    store::overview::{Health, ProjectFigures},
};

/// The scope's (or a community's) figures in one currency, formatted.
pub struct TotalView {
    pub matched_total: String,
    pub target: String,
    pub pledged: String,
    pub received: String,
    pub matched: String,
    pub percent: String,
    /// "12 000,00 TJS of 150 000,00 TJS".
    pub of_target: String,
    /// "Target: 150 000,00 TJS".
    pub target_line: String,
    pub bar: Svg,
}

/// A project's row (or a card's line), formatted.
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    pub closed: bool,
    pub totals: TotalView,
}

pub struct CommunityView {
    pub name: String,
    pub totals: Vec<TotalView>,
    pub projects: Vec<ProjectView>,
}

pub struct MoneyView {
    pub totals: Vec<TotalView>,
    pub communities: Vec<CommunityView>,
    pub chart: Svg,
    /// No pledges in the chart's weeks (it says so under the empty chart).
    pub no_pledges: bool,
}

/// A count of households registered one way.
pub struct ChannelView {
    pub key: &'static str,
    pub count: String,
}

pub struct HealthView {
    pub households: String,
    pub channels: Vec<ChannelView>,
    pub sent: String,
    /// "93,5% delivered"; `None` when nothing was sent.
    pub delivered: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/overview.html")]
pub struct OverviewPage {
    pub t: Tr,
    pub l: Layout,
    pub name: String,
    pub role_key: &'static str,
    pub as_of: String,
    pub admin: bool,
    pub money: Option<MoneyView>,
    pub health: HealthView,
}

/// `GET /console`: the overview; `?lang=` changes the person's language first. Without a
/// session, the sign-in page (303, by [`Staff`]).
pub async fn page(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    staff: Staff,
) -> Response {
    let mut language = staff.signed.language;
    if let Some(chosen) = q.lang.as_deref().and_then(|l| l.parse::<Language>().ok()) {
        if chosen != language {
            auth::set_session_language(&staff.session, &staff.signed, chosen).await;
            language = chosen;
        }
    }
    let t = Tr::new(language);
    let l = Layout::signed_in(&console, &t, "/console", &staff);
    let config = &console.app.config;
    let now = console.app.clock.now();
    let limit = std::time::Duration::from_millis(config.db_timeout_ms.max(100));
    let read = service::overview::overview(&console.app.pool, &staff.actor, now, config.timezone);
    let overview = match tokio::time::timeout(limit, timing::db(read)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: reading the overview failed");
            return error_page(t, l);
        }
        Err(_) => {
            tracing::warn!(
                ms = config.db_timeout_ms,
                "console: reading the overview timed out"
            );
            return error_page(t, l);
        }
    };
    let local = now.with_timezone(&config.timezone);
    let as_of = t.t_with(
        "overview.as_of",
        &[
            ("time", &t.time(local.time())),
            ("date", &t.date(local.date_naive())),
        ],
    );
    OverviewPage {
        name: staff.name.clone(),
        role_key: role_key(staff.actor.role),
        admin: staff.actor.role == Role::Admin,
        as_of,
        money: overview.money.as_ref().map(|m| MoneyView {
            totals: m.totals.iter().map(|x| total_view(&t, x, None)).collect(),
            communities: m
                .communities
                .iter()
                .map(|c| {
                    let name = c.name.get(t.language).to_owned();
                    CommunityView {
                        totals: c
                            .totals
                            .iter()
                            .map(|x| total_view(&t, x, Some(&name)))
                            .collect(),
                        projects: c.projects.iter().map(|p| project_view(&t, p)).collect(),
                        name,
                    }
                })
                .collect(),
            chart: chart(&t, &m.weeks),
            no_pledges: m.weeks.iter().all(|w| w.pledges == 0),
        }),
        health: health_view(&t, &overview),
        t,
        l,
    }
    .into_response()
}

/// What failed, what to do, and a link that tries again (503).
fn error_page(t: Tr, l: Layout) -> Response {
    let page = MessagePage {
        t,
        l,
        title_key: key("overview.error.title"),
        text_key: key("overview.error.text"),
        back: "/console",
        back_key: key("overview.error.retry"),
    };
    (StatusCode::SERVICE_UNAVAILABLE, page).into_response()
}

/// Figures of one currency, formatted, with their bar (`name`: whose, for its label).
fn total_view(t: &Tr, x: &Totals, name: Option<&str>) -> TotalView {
    figures_view(
        t,
        Figures {
            currency: &x.currency,
            target: x.target,
            pledged: x.pledged,
            outstanding: x.outstanding,
            received: x.received,
            matched: x.matched,
            matched_total: x.matched_total,
            percent: x.percent(),
        },
        name,
    )
}

fn project_view(t: &Tr, p: &ProjectFigures) -> ProjectView {
    let name = p.name.get(t.language).to_owned();
    ProjectView {
        id: p.id.0,
        closed: p.status == crate::store::projects::ProjectStatus::Closed,
        totals: figures_view(
            t,
            Figures {
                currency: &p.currency,
                target: p.target,
                pledged: p.pledged,
                outstanding: p.outstanding,
                received: p.received,
                matched: p.matched,
                matched_total: p.matched_total,
                percent: p.percent,
            },
            Some(&name),
        ),
        name,
    }
}

struct Figures<'a> {
    currency: &'a str,
    target: Decimal,
    pledged: Decimal,
    outstanding: Decimal,
    received: Decimal,
    matched: Decimal,
    matched_total: Decimal,
    percent: Decimal,
}

fn figures_view(t: &Tr, f: Figures<'_>, name: Option<&str>) -> TotalView {
    let money = |x: Decimal| t.money(x, f.currency);
    let (matched_total, target, percent) = (
        money(f.matched_total),
        money(f.target),
        t.percent(f.percent),
    );
    let of_target = t.t_with(
        "overview.of_target",
        &[("amount", &matched_total), ("target", &target)],
    );
    let label = t.t_with(
        "overview.bar.label",
        &[
            ("name", name.unwrap_or(&t.t("overview.scope"))),
            ("amount", &matched_total),
            ("target", &target),
            ("percent", &percent),
        ],
    );
    let target_line = t.t_with("overview.bar.target", &[("amount", &target)]);
    let titles = [
        t.t_with("overview.bar.received", &[("amount", &money(f.received))]),
        t.t_with("overview.bar.matched", &[("amount", &money(f.matched))]),
        t.t_with(
            "overview.bar.outstanding",
            &[("amount", &money(f.outstanding))],
        ),
        t.t_with("overview.bar.target", &[("amount", &target)]),
    ];
    let bar = svg::progress(&svg::Progress {
        received: f.received,
        matched: f.matched,
        outstanding: f.outstanding,
        target: f.target,
        label: &label,
        titles: [&titles[0], &titles[1], &titles[2], &titles[3]],
    });
    TotalView {
        pledged: money(f.pledged),
        received: money(f.received),
        matched: money(f.matched),
        matched_total,
        target,
        percent,
        of_target,
        target_line,
        bar,
    }
}

/// A week's date without its year, for the chart's axis: `23.11`, `23 Nov`.
fn short_date(t: &Tr, day: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let full = t.date(day);
    let year = day.year().to_string();
    full.strip_suffix(&year)
        .map(|s| s.trim_end_matches(['.', ' ']).to_owned())
        .unwrap_or(full)
}

/// The pledges-per-week chart: a bar per week, every third week (the newest one included)
/// labelled under its bar, so that the dates never touch at 360 px.
fn chart(t: &Tr, weeks: &[Week]) -> Svg {
    let columns: Vec<svg::Column> = weeks
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let amounts: Vec<String> = w.amounts.iter().map(|(c, a)| t.money(*a, c)).collect();
            let pledges = t.n("overview.chart.pledges", w.pledges);
            let what = if amounts.is_empty() {
                pledges
            } else {
                format!("{pledges}, {}", amounts.join(", "))
            };
            svg::Column {
                value: w.pledges,
                // the newest week is always labelled
                label: if (weeks.len() - 1 - i).is_multiple_of(3) {
                    short_date(t, w.start)
                } else {
                    String::new()
                },
                title: t.t_with(
                    "overview.chart.week",
                    &[("date", &t.date(w.start)), ("pledges", &what)],
                ),
            }
        })
        .collect();
    let counts: Vec<String> = weeks.iter().map(|w| t.int(w.pledges)).collect();
    let (from, to) = match (weeks.first(), weeks.last()) {
        (Some(a), Some(b)) => (t.date(a.start), t.date(b.start)),
        _ => (String::new(), String::new()),
    };
    let label = t.t_with(
        "overview.chart.label",
        &[("from", &from), ("to", &to), ("counts", &counts.join(", "))],
    );
    let int = |n: i64| t.int(n);
    svg::columns(&columns, &label, &t.t("overview.chart.axis"), &int)
}

fn health_view(t: &Tr, o: &Overview) -> HealthView {
    let h: &Health = &o.health;
    let mut channels = vec![
        ChannelView {
            key: key("overview.channel.coordinator"),
            count: t.int(h.by_coordinator),
        },
        ChannelView {
            key: key("overview.channel.ussd"),
            count: t.int(h.by_ussd),
        },
        ChannelView {
            key: key("overview.channel.sms"),
            count: t.int(h.by_sms),
        },
    ];
    if h.by_demo > 0 {
        channels.push(ChannelView {
            key: key("overview.channel.demo"),
            count: t.int(h.by_demo),
        });
    }
    let households = h.by_coordinator + h.by_ussd + h.by_sms + h.by_demo;
    HealthView {
        households: t.n("overview.health.households", households),
        channels,
        sent: t.n("overview.health.sent", h.sent),
        delivered: (h.sent > 0).then(|| {
            t.t_with(
                "overview.health.delivered",
                &[(
                    "percent",
                    &t.percent(service::overview::percent(
                        Decimal::from(h.delivered),
                        Decimal::from(h.sent),
                    )),
                )],
            )
        }),
    }
}
