//! `GET /console/exports`: the Exports page (console design §3, issue 10 page 6), and
//! `GET /console/exports/{file}.csv`, its downloads.
//!
//! One card per CSV (pledges, project totals, households, broadcasts) with the filters
//! the admin API has (community for all four; project and UTC days for the pledges) and an
//! "Excel on Windows" box (`bom=true`). Each card is a plain `GET` form: it works without
//! JavaScript, and the file is the very one `/api/v1/exports/*` gives, written by
//! `service::exports` for the signed-in person (their scope, officers' numbers masked, the
//! download audited, the concurrency limit and the statement timeout kept).
//!
//! Errors are pages: a community outside the person's scope is 403 (as in the API), a
//! last day before the first re-shows the page with the error beside the field (422),
//! too many exports at once is 503, a failed read 500 — never part of a file.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use serde::Deserialize;

use super::{
    auth::{self, Staff},
    i18n::{key, Tr},
    pages::{LangQuery, Layout, MessagePage},
    timing, Console,
};
use crate::{
    api::exports::csv_response,
    domain::Language,
    service::{
        self,
        exports::{File, Filters},
        ServiceError,
    },
};

/// A choice of a filter's `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One file's card.
pub struct FileCard {
    /// `pledges`, `project-totals`, …: the form's action and the ids of its fields.
    pub name: &'static str,
    pub title_key: &'static str,
    pub text_key: &'static str,
    /// The pledges' project and day filters.
    pub by_project_and_day: bool,
    pub communities: Vec<Choice>,
    pub projects: Vec<Choice>,
    pub from: String,
    pub to: String,
    pub bom: bool,
    /// The error beside the "to" field (already in the page's language).
    pub to_error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/exports.html")]
pub struct ExportsPage {
    pub t: Tr,
    pub l: Layout,
    pub masked: bool,
    pub files: Vec<FileCard>,
    /// The summary on top when a download was refused.
    pub error: Option<String>,
}

/// A download's query, as a form sends it: every field a string, empty when not chosen.
#[derive(Debug, Default, Deserialize)]
pub struct DownloadQuery {
    pub community: Option<String>,
    pub project: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub bom: Option<String>,
}

/// The filters a query names, or `None` when a field is not what its form sends (a
/// number, a `YYYY-MM-DD` day, `true`), each at most 32 characters.
fn filters(q: &DownloadQuery) -> Option<Filters> {
    fn field(v: &Option<String>) -> Option<Option<&str>> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(s) if s.len() > 32 => None,
            Some(s) => Some(Some(s)),
        }
    }
    let id = |v: &Option<String>| -> Option<Option<i64>> {
        match field(v)? {
            None => Some(None),
            Some(s) => s.parse::<i64>().ok().filter(|n| *n > 0).map(Some),
        }
    };
    let day = |v: &Option<String>| -> Option<Option<NaiveDate>> {
        match field(v)? {
            None => Some(None),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(Some),
        }
    };
    let bom = match field(&q.bom)? {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return None,
    };
    Some(Filters {
        community: id(&q.community)?,
        project: id(&q.project)?,
        from: day(&q.from)?,
        to: day(&q.to)?,
        bom,
    })
}

/// `GET /console/exports`: the four files with their filters; `?lang=` changes the
/// person's language first.
pub async fn page(
    State(console): State<Console>,
    Query(q): Query<LangQuery>,
    mut staff: Staff,
) -> Response {
    if let Some(chosen) = q.lang.as_deref().and_then(|l| l.parse::<Language>().ok()) {
        if chosen != staff.signed.language {
            auth::set_session_language(&staff.session, &staff.signed, chosen).await;
            staff.signed.language = chosen;
        }
    }
    render(&console, &staff, None, &Filters::default(), None).await
}

/// The page, with `filters` kept in the card of `failed` and its error.
async fn render(
    console: &Console,
    staff: &Staff,
    failed: Option<File>,
    kept: &Filters,
    error: Option<(StatusCode, String, bool)>,
) -> Response {
    let t = Tr::new(staff.signed.language);
    let l = Layout::signed_in(console, &t, "/console/exports", staff);
    let choices = match timing::db(service::exports::choices(&console.app.pool, &staff.actor)).await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "console: reading the export filters failed");
            return message(
                t,
                l,
                StatusCode::INTERNAL_SERVER_ERROR,
                "exports.error.failed",
            );
        }
    };
    let files = File::ALL
        .into_iter()
        .map(|file| {
            let none = Filters::default();
            let f = if failed == Some(file) { kept } else { &none };
            let mut communities = vec![Choice {
                value: String::new(),
                label: t.t("exports.filter.all_communities"),
                selected: f.community.is_none(),
            }];
            communities.extend(choices.communities.iter().map(|c| Choice {
                value: c.id.0.to_string(),
                label: c.name.get(t.language).to_owned(),
                selected: f.community == Some(c.id.0),
            }));
            let mut projects = vec![Choice {
                value: String::new(),
                label: t.t("exports.filter.all_projects"),
                selected: f.project.is_none(),
            }];
            projects.extend(choices.projects.iter().map(|p| Choice {
                value: p.id.0.to_string(),
                label: t.t_with(
                    "exports.filter.project_in",
                    &[
                        ("project", p.name.get(t.language)),
                        ("community", p.community.get(t.language)),
                    ],
                ),
                selected: f.project == Some(p.id.0),
            }));
            let day = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
            FileCard {
                name: file.name(),
                title_key: title_key(file),
                text_key: text_key(file),
                by_project_and_day: file.by_project_and_day(),
                communities,
                projects,
                from: day(f.from),
                to: day(f.to),
                bom: f.bom,
                to_error: match (&error, failed == Some(file)) {
                    (Some((_, e, true)), true) => Some(e.clone()),
                    _ => None,
                },
            }
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |(s, ..)| *s);
    let page = ExportsPage {
        masked: staff.actor.read_only(),
        files,
        error: error.map(|(_, e, _)| e),
        t,
        l,
    };
    (status, page).into_response()
}

fn title_key(file: File) -> &'static str {
    match file {
        File::Pledges => key("exports.pledges.title"),
        File::ProjectTotals => key("exports.project_totals.title"),
        File::Households => key("exports.households.title"),
        File::Broadcasts => key("exports.broadcasts.title"),
        File::Outreach => key("exports.outreach.title"),
    }
}

fn text_key(file: File) -> &'static str {
    match file {
        File::Pledges => key("exports.pledges.text"),
        File::ProjectTotals => key("exports.project_totals.text"),
        File::Households => key("exports.households.text"),
        File::Broadcasts => key("exports.broadcasts.text"),
        File::Outreach => key("exports.outreach.text"),
    }
}

/// A whole-page answer: what failed and a way back to the exports.
fn message(t: Tr, l: Layout, status: StatusCode, text_key: &'static str) -> Response {
    let page = MessagePage {
        t,
        l,
        title_key: key("exports.error.title"),
        text_key,
        back: "/console/exports",
        back_key: key("exports.error.back"),
    };
    (status, page).into_response()
}

/// `GET /console/exports/{file}.csv`: the file for the signed-in person, streamed as the
/// API streams it, or a page saying why not.
pub async fn download(
    State(console): State<Console>,
    Path(name): Path<String>,
    Query(q): Query<DownloadQuery>,
    staff: Staff,
) -> Response {
    let t = Tr::new(staff.signed.language);
    let file = name.strip_suffix(".csv").and_then(File::from_name);
    let Some(file) = file else {
        let l = Layout::signed_in(&console, &t, "/console/exports", &staff);
        return message(t, l, StatusCode::NOT_FOUND, "exports.error.no_such_file");
    };
    let Some(filters) = filters(&q) else {
        let l = Layout::signed_in(&console, &t, "/console/exports", &staff);
        return message(t, l, StatusCode::BAD_REQUEST, "exports.error.bad_filter");
    };
    let mut actor = staff.actor.clone();
    actor.request_id = None;
    match timing::db(service::exports::export(
        &console.app,
        &actor,
        file,
        &filters,
    ))
    .await
    {
        Ok(spooled) => csv_response(spooled),
        Err(ServiceError::Invalid { key: text, .. }) => {
            let e = t.t(text);
            render(
                &console,
                &staff,
                Some(file),
                &filters,
                Some((StatusCode::UNPROCESSABLE_ENTITY, e, true)),
            )
            .await
        }
        Err(e) => {
            let (status, text) = match e {
                ServiceError::Forbidden | ServiceError::NotFound(_) => {
                    (StatusCode::FORBIDDEN, key("exports.error.forbidden"))
                }
                ServiceError::Busy(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, key("exports.error.busy"))
                }
                _ => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    key("exports.error.failed"),
                ),
            };
            let l = Layout::signed_in(&console, &t, "/console/exports", &staff);
            message(t, l, status, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(community: &str, project: &str, from: &str, to: &str, bom: &str) -> DownloadQuery {
        let s = |v: &str| Some(v.to_owned());
        DownloadQuery {
            community: s(community),
            project: s(project),
            from: s(from),
            to: s(to),
            bom: s(bom),
        }
    }

    #[test]
    fn form_fields_become_filters() {
        assert_eq!(filters(&DownloadQuery::default()), Some(Filters::default()));
        assert_eq!(
            filters(&q("3", "", "2026-11-01", " 2026-11-30 ", "true")),
            Some(Filters {
                community: Some(3),
                project: None,
                from: NaiveDate::from_ymd_opt(2026, 11, 1),
                to: NaiveDate::from_ymd_opt(2026, 11, 30),
                bom: true,
            })
        );
        for bad in [
            q("x", "", "", "", ""),
            q("-1", "", "", "", ""),
            q("", "", "1.11.2026", "", ""),
            q("", "", "", "", "yes"),
            q(&"1".repeat(40), "", "", "", ""),
        ] {
            assert_eq!(filters(&bad), None, "{bad:?}");
        }
    }
}
