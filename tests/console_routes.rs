//! Every console route, walked for every role: anonymous, admin, a coordinator of community
//! A, a counsellor and a programme officer of community A, each against community A's
//! objects and community B's. The table names each route's method and path template; a
//! route in `src/console/mod.rs` missing from the table fails the test, so no page can be
//! added without saying who may open it.
//!
//! Expectations: no session → the sign-in page (303) for a GET, 403 for a POST (the CSRF
//! check comes first); out of scope or out of role → 404, never data; in scope → 200 (a
//! page) or 303 (a change, with its flash).

mod common;
mod console_kit;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use console_kit::{get, post, sign_in, staff, Signed};
use hashar::store::staff::Role;
use sqlx::PgPool;

const ANON: usize = 0;
const ROLES: [&str; 5] = ["anonymous", "admin", "coordinator", "counsellor", "officer"];

/// One row: method, route template, the concrete path (placeholders `{pledge}`, `{b_pledge}`,
/// `{cancel}`, `{b_cancel}`, `{receipt}`, `{b_receipt}`, `{disbursement}`, `{b_disbursement}`,
/// `{broadcast}`, `{b_broadcast}`, `{cancel_broadcast}`, `{b_cancel_broadcast}`, `{meeting}`,
/// `{b_meeting}`, `{project}`, `{b_project}`, `{b_community}`, `{code}`, `{css}`,
/// `{household}`, `{b_household}`, `{person}`, `{token}`, `{callback}`, `{holiday}`, `{a}`, `{b}`; in a
/// form also `{n}`),
/// the form of a POST, the expected status for each of [`ROLES`], and whether it ends the session.
struct Row {
    method: &'static str,
    template: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    expect: [u16; 5],
    ends_session: bool,
}

const fn row(
    method: &'static str,
    template: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    expect: [u16; 5],
) -> Row {
    Row {
        method,
        template,
        path,
        form,
        expect,
        ends_session: false,
    }
}

const RECEIPT: &[(&str, &str)] = &[("amount", "1"), ("date", "2026-11-28"), ("method", "cash")];
const CANCEL: &[(&str, &str)] = &[("reason", "Moved away")];
const NEW_PERSON: &[(&str, &str)] = &[
    ("name", "New"),
    ("phone", "+992900000906"),
    ("role", "counsellor"),
];
const DISBURSE: &[(&str, &str)] = &[("amount", "1"), ("date", "2026-11-28"), ("partner", "UNDP")];
// `{a}`, `{b}`: the communities; `{n}`: a number new for each request.
const REGISTER_A: &[(&str, &str)] = &[
    ("community", "{a}"),
    ("name", "New"),
    ("phones", "+99293777{n}"),
];
const REGISTER_B: &[(&str, &str)] = &[
    ("community", "{b}"),
    ("name", "New"),
    ("phones", "+99293778{n}"),
];
const EDIT_A: &[(&str, &str)] = &[
    ("community", "{a}"),
    ("name", "Renamed"),
    ("language", "ru"),
];
const EDIT_B: &[(&str, &str)] = &[
    ("community", "{b}"),
    ("name", "Renamed"),
    ("language", "ru"),
];
// no community chosen: refused (303 back to the form) for an admin, before anything is written
const NEW_PROJECT: &[(&str, &str)] = &[("community", ""), ("code", "CANAL"), ("kind", "business")];
const EDIT: &[(&str, &str)] = &[("target", "10000"), ("ratio", "1"), ("cap", "")];
const CLOSE: &[(&str, &str)] = &[("to", "closed")];
const BROADCAST_A: &[(&str, &str)] = &[
    ("community", "{a}"),
    ("text_tg", "Ҷаласа"),
    ("text_ru", "Собрание"),
    ("text_en", "Meeting"),
];
const BROADCAST_B: &[(&str, &str)] = &[
    ("community", "{b}"),
    ("text_tg", "Ҷаласа"),
    ("text_ru", "Собрание"),
    ("text_en", "Meeting"),
];
const NO_ANSWER: &[(&str, &str)] = &[("outcome", "no_answer")];
const UNPLEDGED: &[(&str, &str)] = &[("amount", "1"), ("date", "2026-11-28"), ("method", "cash")];
const REVERSE: &[(&str, &str)] = &[("reason", "Recorded by mistake")];
const LINK: &[(&str, &str)] = &[("phone", "+7926555{n}")];
const CODE: &[(&str, &str)] = &[("phone", "+79265559999"), ("code", "123456")];
const UNLINK_A: &[(&str, &str)] = &[("phone", "+79161230000")];
const UNLINK_B: &[(&str, &str)] = &[("phone", "+79161230001")];
const STOP_A: &[(&str, &str)] = &[("phone", "+992901112233"), ("stop", "true")];
const STOP_B: &[(&str, &str)] = &[("phone", "+992931119999"), ("stop", "true")];
const ZONE_A: &[(&str, &str)] = &[("phone", "+992901112233"), ("timezone", "Asia/Dushanbe")];
const ZONE_B: &[(&str, &str)] = &[("phone", "+992931119999"), ("timezone", "Asia/Dushanbe")];
const PICK_A: &[(&str, &str)] = &[("pick", "1"), ("household", "{household}.0")];
const PICK_B: &[(&str, &str)] = &[("pick", "1"), ("household", "{b_household}.0")];
const PRESS: &[(&str, &str)] = &[("reply", "1"), ("press", "2")];
const TARGET: &[(&str, &str)] = &[("community", ""), ("target", "2 500")];

// Expected statuses: anonymous, admin, coordinator of A, counsellor, officer of A.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    row("GET", "/console", "/console", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/login", "/console/login", &[], [200, 200, 200, 200, 200]),
    // signed in, the form's session token passes; an empty phone is a wrong sign-in
    row("POST", "/console/login", "/console/login", &[("phone", ""), ("password", "")], [403, 401, 401, 401, 401]),
    row("GET", "/console/static/{file}", "{css}", &[], [200, 200, 200, 200, 200]),
    row("GET", "/console/static/{file}", "/console/static/nothing.css", &[], [404, 404, 404, 404, 404]),
    row("GET", "/console/money", "/console/money", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money", "/console/money?code={code}", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/pledges/{id}", "/console/money/pledges/{pledge}", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/pledges/{id}", "/console/money/pledges/{b_pledge}", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/money/pledges/{id}", "/console/money/pledges/999999", &[], [303, 404, 404, 404, 404]),
    row("GET", "/console/money/pledges/{id}/receipt", "/console/money/pledges/{pledge}/receipt?amount=1&date=2026-11-28&method=cash", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/pledges/{id}/receipt", "/console/money/pledges/{b_pledge}/receipt?amount=1&date=2026-11-28&method=cash", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/money/pledges/{id}/receipt", "/console/money/pledges/{pledge}/receipt", RECEIPT, [403, 303, 303, 404, 404]),
    row("POST", "/console/money/pledges/{id}/receipt", "/console/money/pledges/{b_pledge}/receipt", RECEIPT, [403, 303, 404, 404, 404]),
    row("GET", "/console/money/pledges/{id}/cancel", "/console/money/pledges/{cancel}/cancel?reason=x", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/pledges/{id}/cancel", "/console/money/pledges/{b_cancel}/cancel?reason=x", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/money/pledges/{id}/cancel", "/console/money/pledges/{cancel}/cancel", CANCEL, [403, 303, 303, 404, 404]),
    row("POST", "/console/money/pledges/{id}/cancel", "/console/money/pledges/{b_cancel}/cancel", CANCEL, [403, 303, 404, 404, 404]),
    row("GET", "/console/money/projects/{id}", "/console/money/projects/{project}", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/projects/{id}", "/console/money/projects/{b_project}", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/money/projects/{id}/disburse", "/console/money/projects/{project}/disburse?amount=1&date=2026-11-28&partner=UNDP", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/projects/{id}/disburse", "/console/money/projects/{b_project}/disburse?amount=1&date=2026-11-28&partner=UNDP", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/money/projects/{id}/disburse", "/console/money/projects/{project}/disburse", DISBURSE, [403, 303, 303, 404, 404]),
    row("POST", "/console/money/projects/{id}/disburse", "/console/money/projects/{b_project}/disburse", DISBURSE, [403, 303, 404, 404, 404]),
    row("GET", "/console/money/projects/{id}/receipt", "/console/money/projects/{project}/receipt?amount=1&date=2026-11-28&method=cash", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/money/projects/{id}/receipt", "/console/money/projects/{b_project}/receipt?amount=1&date=2026-11-28&method=cash", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/money/projects/{id}/receipt", "/console/money/projects/{project}/receipt", UNPLEDGED, [403, 303, 303, 404, 404]),
    row("POST", "/console/money/projects/{id}/receipt", "/console/money/projects/{b_project}/receipt", UNPLEDGED, [403, 303, 404, 404, 404]),
    // reversals: admins only (as the API); the admin's POST reverses, later ones are refused with a flash
    row("GET", "/console/money/receipts/{id}/reverse", "/console/money/receipts/{receipt}/reverse", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/money/receipts/{id}/reverse", "/console/money/receipts/{b_receipt}/reverse", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/money/receipts/{id}/reverse", "/console/money/receipts/999999/reverse", &[], [303, 404, 404, 404, 404]),
    row("POST", "/console/money/receipts/{id}/reverse", "/console/money/receipts/{receipt}/reverse", REVERSE, [403, 303, 404, 404, 404]),
    row("POST", "/console/money/receipts/{id}/reverse", "/console/money/receipts/{b_receipt}/reverse", REVERSE, [403, 303, 404, 404, 404]),
    row("GET", "/console/money/disbursements/{id}/reverse", "/console/money/disbursements/{disbursement}/reverse", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/money/disbursements/{id}/reverse", "/console/money/disbursements/{b_disbursement}/reverse", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/money/disbursements/{id}/reverse", "/console/money/disbursements/{disbursement}/reverse", REVERSE, [403, 303, 404, 404, 404]),
    row("POST", "/console/money/disbursements/{id}/reverse", "/console/money/disbursements/{b_disbursement}/reverse", REVERSE, [403, 303, 404, 404, 404]),
    row("GET", "/console/households", "/console/households", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/households", "/console/households?community={b}", &[], [303, 200, 404, 200, 404]),
    row("POST", "/console/households", "/console/households", REGISTER_A, [403, 303, 303, 303, 404]),
    row("POST", "/console/households", "/console/households", REGISTER_B, [403, 303, 404, 303, 404]),
    row("GET", "/console/households/new", "/console/households/new", &[], [303, 200, 200, 200, 404]),
    row("GET", "/console/households/{id}", "/console/households/{household}", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/households/{id}", "/console/households/{b_household}", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/households/{id}", "/console/households/999999", &[], [303, 404, 404, 404, 404]),
    row("POST", "/console/households/{id}", "/console/households/{household}", EDIT_A, [403, 303, 303, 303, 404]),
    row("POST", "/console/households/{id}", "/console/households/{b_household}", EDIT_B, [403, 303, 404, 303, 404]),
    row("GET", "/console/households/{id}/edit", "/console/households/{household}/edit", &[], [303, 200, 200, 200, 404]),
    row("GET", "/console/households/{id}/edit", "/console/households/{b_household}/edit", &[], [303, 200, 404, 200, 404]),
    // numbers: admins and the community's coordinators; counsellors and officers read (404)
    row("POST", "/console/households/{id}/phones", "/console/households/{household}/phones", LINK, [403, 303, 303, 404, 404]),
    row("POST", "/console/households/{id}/phones", "/console/households/{b_household}/phones", LINK, [403, 303, 404, 404, 404]),
    row("GET", "/console/households/{id}/phones/confirm", "/console/households/{household}/phones/confirm?phone=%2B79265559999", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/households/{id}/phones/confirm", "/console/households/{b_household}/phones/confirm?phone=%2B79265559999", &[], [303, 200, 404, 404, 404]),
    // no code is pending: refused with a flash (303)
    row("POST", "/console/households/{id}/phones/confirm", "/console/households/{household}/phones/confirm", CODE, [403, 303, 303, 404, 404]),
    row("POST", "/console/households/{id}/phones/confirm", "/console/households/{b_household}/phones/confirm", CODE, [403, 303, 404, 404, 404]),
    row("GET", "/console/households/{id}/phones/unlink", "/console/households/{household}/phones/unlink?phone=%2B79161230000", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/households/{id}/phones/unlink", "/console/households/{b_household}/phones/unlink?phone=%2B79161230001", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/households/{id}/phones/unlink", "/console/households/999999/phones/unlink?phone=%2B79161230001", &[], [303, 404, 404, 404, 404]),
    // the admin unlinks; the coordinator's later POST is refused with a flash (303)
    row("POST", "/console/households/{id}/phones/unlink", "/console/households/{household}/phones/unlink", UNLINK_A, [403, 303, 303, 404, 404]),
    row("POST", "/console/households/{id}/phones/unlink", "/console/households/{b_household}/phones/unlink", UNLINK_B, [403, 303, 404, 404, 404]),
    row("GET", "/console/households/{id}/phones/opt-out", "/console/households/{household}/phones/opt-out?phone=%2B992901112233&stop=true", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/households/{id}/phones/opt-out", "/console/households/{b_household}/phones/opt-out?phone=%2B992931119999&stop=true", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/households/{id}/phones/opt-out", "/console/households/{household}/phones/opt-out", STOP_A, [403, 303, 303, 404, 404]),
    row("POST", "/console/households/{id}/phones/opt-out", "/console/households/{b_household}/phones/opt-out", STOP_B, [403, 303, 404, 404, 404]),
    // a number's time zone (issue 11 point 9): whoever edits the household; an officer reads only
    row("POST", "/console/households/{id}/timezone", "/console/households/{household}/timezone", ZONE_A, [403, 303, 303, 303, 404]),
    row("POST", "/console/households/{id}/timezone", "/console/households/{b_household}/timezone", ZONE_B, [403, 303, 404, 303, 404]),
    // exports: every role reads its own scope; a community filter out of scope is 403, as in the API
    row("GET", "/console/exports", "/console/exports", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/exports/{file}", "/console/exports/pledges.csv", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/exports/{file}", "/console/exports/households.csv?community={a}&bom=true", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/exports/{file}", "/console/exports/households.csv?community={b}", &[], [303, 200, 403, 200, 403]),
    row("GET", "/console/exports/{file}", "/console/exports/secrets.csv", &[], [303, 404, 404, 404, 404]),
    row("GET", "/console/people", "/console/people", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/people/audit", "/console/people/audit?action=staff.", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/people/new", "/console/people/new", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/people/new", "/console/people/new", NEW_PERSON, [403, 303, 404, 404, 404]),
    row("GET", "/console/people/{id}", "/console/people/{person}", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/people/{id}", "/console/people/999999", &[], [303, 404, 404, 404, 404]),
    row("GET", "/console/people/{id}/access", "/console/people/{person}/access?role=counsellor", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/people/{id}/access", "/console/people/{person}/access", &[("role", "counsellor")], [403, 303, 404, 404, 404]),
    row("POST", "/console/people/{id}/password", "/console/people/{person}/password", &[], [403, 303, 404, 404, 404]),
    row("POST", "/console/people/{id}/unlock", "/console/people/{person}/unlock", &[], [403, 303, 404, 404, 404]),
    row("POST", "/console/people/{id}/sign-out", "/console/people/{person}/sign-out", &[], [403, 303, 404, 404, 404]),
    row("POST", "/console/people/{id}/tokens", "/console/people/{person}/tokens", &[], [403, 303, 404, 404, 404]),
    row("POST", "/console/people/{id}/tokens/{token}/revoke", "/console/people/{person}/tokens/{token}/revoke", &[], [403, 303, 404, 404, 404]),
    row("GET", "/console/people/{id}/disable", "/console/people/{person}/disable", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/people/{id}/disable", "/console/people/{person}/disable", &[], [403, 303, 404, 404, 404]),
    // anonymous, the link is the proof: an unknown one is 404 for everyone (a POST without
    // a session needs the pre-session token first)
    row("GET", "/console/welcome/{token}", "/console/welcome/nothing", &[], [404, 404, 404, 404, 404]),
    row("POST", "/console/welcome/{token}", "/console/welcome/nothing", &[("password", "0123456789"), ("again", "0123456789")], [403, 404, 404, 404, 404]),
    row("GET", "/console/projects", "/console/projects", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/projects", "/console/projects?community={b_community}&status=open&kind=infrastructure", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/projects/new", "/console/projects/new", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/projects/new", "/console/projects/new", NEW_PROJECT, [403, 303, 404, 404, 404]),
    row("GET", "/console/projects/{id}", "/console/projects/{project}", &[], [303, 200, 200, 200, 200]),
    row("GET", "/console/projects/{id}", "/console/projects/{b_project}", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/projects/{id}", "/console/projects/999999", &[], [303, 404, 404, 404, 404]),
    row("GET", "/console/projects/{id}/edit", "/console/projects/{project}/edit", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/projects/{id}/edit", "/console/projects/{b_project}/edit", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/projects/{id}/edit/confirm", "/console/projects/{project}/edit/confirm?target=10000&ratio=1&cap=", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/projects/{id}/edit/confirm", "/console/projects/{b_project}/edit/confirm?target=8000&ratio=1&cap=", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/projects/{id}/edit", "/console/projects/{project}/edit", EDIT, [403, 303, 303, 404, 404]),
    row("POST", "/console/projects/{id}/edit", "/console/projects/{b_project}/edit", EDIT, [403, 303, 404, 404, 404]),
    row("GET", "/console/projects/{id}/status", "/console/projects/{project}/status?to=closed", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/projects/{id}/status", "/console/projects/{b_project}/status?to=closed", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/projects/{id}/status", "/console/projects/{project}/status", CLOSE, [403, 303, 303, 404, 404]),
    row("POST", "/console/projects/{id}/status", "/console/projects/{b_project}/status", CLOSE, [403, 303, 404, 404, 404]),
    // broadcasts: coordinators and admins; counsellors and officers 404 (as Money)
    row("GET", "/console/broadcasts", "/console/broadcasts", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/broadcasts/new", "/console/broadcasts/new", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/broadcasts/new", "/console/broadcasts/new?part=audience&community={b}", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/broadcasts/new", "/console/broadcasts/new?copy={b_broadcast}", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/broadcasts/new", "/console/broadcasts/new", BROADCAST_A, [403, 303, 303, 404, 404]),
    row("POST", "/console/broadcasts/new", "/console/broadcasts/new", BROADCAST_B, [403, 303, 404, 404, 404]),
    row("GET", "/console/broadcasts/{id}", "/console/broadcasts/{broadcast}", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/broadcasts/{id}", "/console/broadcasts/{b_broadcast}", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/broadcasts/{id}", "/console/broadcasts/999999", &[], [303, 404, 404, 404, 404]),
    row("GET", "/console/broadcasts/{id}/send", "/console/broadcasts/{broadcast}/send", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/broadcasts/{id}/send", "/console/broadcasts/{b_broadcast}/send", &[], [303, 200, 404, 404, 404]),
    row("POST", "/console/broadcasts/{id}/send", "/console/broadcasts/{broadcast}/send", &[], [403, 303, 303, 404, 404]),
    row("POST", "/console/broadcasts/{id}/send", "/console/broadcasts/{b_broadcast}/send", &[], [403, 303, 404, 404, 404]),
    row("POST", "/console/broadcasts/{id}/cancel", "/console/broadcasts/{cancel_broadcast}/cancel", &[], [403, 303, 303, 404, 404]),
    row("POST", "/console/broadcasts/{id}/cancel", "/console/broadcasts/{b_cancel_broadcast}/cancel", &[], [403, 303, 404, 404, 404]),
    // a meeting's attendance: as the broadcasts; a broadcast that is no meeting 404
    row("GET", "/console/broadcasts/{id}/attendance", "/console/broadcasts/{meeting}/attendance", &[], [303, 200, 200, 404, 404]),
    row("GET", "/console/broadcasts/{id}/attendance", "/console/broadcasts/{b_meeting}/attendance", &[], [303, 200, 404, 404, 404]),
    row("GET", "/console/broadcasts/{id}/attendance", "/console/broadcasts/{broadcast}/attendance", &[], [303, 404, 404, 404, 404]),
    row("POST", "/console/broadcasts/{id}/attendance", "/console/broadcasts/{meeting}/attendance", &[("came", "{household}")], [403, 303, 303, 404, 404]),
    row("POST", "/console/broadcasts/{id}/attendance", "/console/broadcasts/{b_meeting}/attendance", &[("came", "{b_household}")], [403, 303, 404, 404, 404]),
    // counsellors' queue: coordinators and officers never see it; the admin takes the request
    // first, so the counsellor's Take and outcome are refused with a flash (303)
    row("GET", "/console/callbacks", "/console/callbacks", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/callbacks", "/console/callbacks?language=ru&done=1", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/callbacks/coverage", "/console/callbacks/coverage", &[], [303, 200, 404, 200, 404]),
    row("GET", "/console/callbacks/{id}/take", "/console/callbacks/{callback}/take", &[], [303, 200, 404, 200, 404]),
    row("POST", "/console/callbacks/{id}/take", "/console/callbacks/{callback}/take", &[], [403, 303, 404, 303, 404]),
    row("POST", "/console/callbacks/{id}/outcome", "/console/callbacks/{callback}/outcome", NO_ANSWER, [403, 303, 404, 303, 404]),
    // after the no answer nobody holds it: a release changes nothing (303 back)
    row("POST", "/console/callbacks/{id}/release", "/console/callbacks/{callback}/release", &[], [403, 303, 404, 303, 404]),
    // the public holidays of the queue's working days: counsellors and admins read them,
    // admins add (a day in 2027) and remove (the Idi Ramazon the setup added) them
    row("GET", "/console/holidays", "/console/holidays", &[], [303, 200, 404, 200, 404]),
    row("POST", "/console/holidays", "/console/holidays", &[("date", "2027-05-17"), ("name", "Idi Qurbon")], [403, 303, 404, 404, 404]),
    row("POST", "/console/holidays/{id}/remove", "/console/holidays/{holiday}/remove", &[], [403, 303, 404, 404, 404]),
    // outreach: aggregates every role reads (each its own scope); only admins set targets
    row("GET", "/console/outreach", "/console/outreach", &[], [303, 200, 200, 200, 200]),
    row("POST", "/console/outreach/targets", "/console/outreach/targets", TARGET, [403, 303, 404, 404, 404]),
    row("GET", "/console/exports/{file}", "/console/exports/outreach.csv", &[], [303, 200, 200, 200, 200]),
    // the phone simulator (the test config's SMS provider is the console): staff who change
    // data; a household out of scope is 404; a key press changes only the session's state
    row("GET", "/console/phone", "/console/phone", &[], [303, 200, 200, 200, 404]),
    row("GET", "/console/phone", "/console/phone?tab=sms", &[], [303, 200, 200, 200, 404]),
    row("POST", "/console/phone/ussd", "/console/phone/ussd", PICK_A, [403, 303, 303, 303, 404]),
    row("POST", "/console/phone/ussd", "/console/phone/ussd", PICK_B, [403, 303, 404, 303, 404]),
    row("POST", "/console/phone/sms", "/console/phone/sms", PICK_A, [403, 303, 303, 303, 404]),
    row("POST", "/console/phone/sms", "/console/phone/sms", PRESS, [403, 303, 303, 303, 404]),
    Row { ends_session: true, ..row("POST", "/console/logout", "/console/logout", &[], [403, 303, 303, 303, 303]) },
    Row { ends_session: true, ..row("POST", "/console/logout/everywhere", "/console/logout/everywhere", &[], [403, 303, 303, 303, 303]) },
];

/// The (method, path) of every route `src/console/mod.rs` declares.
fn declared_routes() -> BTreeSet<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/console/mod.rs"))
            .expect("src/console/mod.rs");
    let mut routes = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        let chunk = chunk.split(".layer(").next().unwrap_or(chunk);
        let path = chunk.split('"').nth(1).expect("a route's path").to_owned();
        for (call, method) in [("get(", "GET"), ("post(", "POST")] {
            if chunk.contains(call) {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_table_covers_every_console_route() {
    let declared = declared_routes();
    assert!(declared.len() >= 10, "{declared:?}");
    let covered: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "console routes not in the table: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&declared).collect();
    assert!(stale.is_empty(), "table rows for no route: {stale:?}");
}

async fn pledge(pool: &PgPool, project: i64, household: i64, phone: &str) -> (i64, String) {
    sqlx::query_as(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 1000, 'TJS', 'ussd', gen_random_uuid()::text) returning id, code",
    )
    .bind(project)
    .bind(household)
    .bind(phone)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn every_console_route_answers_each_role_as_the_table_says(pool: PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let a = seed.community;
    let b_household =
        common::add_household(&app.pool, seed.other_community, Some("tg"), "+992931119999").await;
    let b_project: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&app.pool)
        .await
        .expect("water");
    let (pledge_a, code) = pledge(&app.pool, seed.bridge, seed.household, common::PHONE_TG).await;
    let (pledge_b, _) = pledge(&app.pool, b_project, b_household, "+992931119999").await;
    let (cancel_a, _) = pledge(&app.pool, seed.bridge, seed.household, common::PHONE_TG).await;
    let (cancel_b, _) = pledge(&app.pool, b_project, b_household, "+992931119999").await;
    let broadcast = |community: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at)
                 values ('test', array[$1::bigint], 'Ҷаласа', 'Собрание', 'Meeting', now()) returning id",
            )
            .bind(community)
            .fetch_one(&pool)
            .await
            .expect("a broadcast")
        }
    };
    let (broadcast_a, broadcast_b) = (broadcast(a).await, broadcast(seed.other_community).await);
    let (cancel_broadcast_a, cancel_broadcast_b) =
        (broadcast(a).await, broadcast(seed.other_community).await);
    // meetings an hour after the test's clock (attendance is recorded from two hours before)
    let meeting = |community: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at,
                                         meeting_at, place, topics)
                 values ('test', array[$1::bigint], 'Ҷаласа', 'Собрание', 'Meeting', now(),
                         timestamptz '2026-11-28 10:00Z', 'School', array['hiv']) returning id",
            )
            .bind(community)
            .fetch_one(&pool)
            .await
            .expect("a meeting")
        }
    };
    let (meeting_a, meeting_b) = (meeting(a).await, meeting(seed.other_community).await);
    let callback: i64 = sqlx::query_scalar(
        "insert into callback_requests (phone, household_id, language, channel, idempotency_key)
         values ($1, $2, 'tg', 'ussd', 'route-table') returning id",
    )
    .bind(common::PHONE_TG)
    .bind(seed.household)
    .fetch_one(&app.pool)
    .await
    .expect("a callback request");
    let holiday: i64 = sqlx::query_scalar(
        "insert into public_holidays (year, month, day, name) values (2027, 3, 10, 'Idi Ramazon') returning id",
    )
    .fetch_one(&app.pool)
    .await
    .expect("a public holiday");
    // matching to disburse in both projects
    common::receive(&app.pool, seed.bridge, "500").await;
    common::receive(&app.pool, b_project, "500").await;
    let receipt_of = |project: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select id from receipts where project_id = $1 and pledge_id is null",
            )
            .bind(project)
            .fetch_one(&pool)
            .await
            .expect("a receipt")
        }
    };
    let (receipt_a, receipt_b) = (receipt_of(seed.bridge).await, receipt_of(b_project).await);
    let disbursement = |project: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, recorded_by)
                 values ($1, 1, 'TJS', '2026-11-01', 'UNDP', 'test') returning id",
            )
            .bind(project)
            .fetch_one(&pool)
            .await
            .expect("a disbursement")
        }
    };
    let (disbursement_a, disbursement_b) = (
        disbursement(seed.bridge).await,
        disbursement(b_project).await,
    );
    // a second number in each household, to unlink
    for (phone, household) in [
        ("+79161230000", seed.household),
        ("+79161230001", b_household),
    ] {
        sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
            .bind(phone)
            .bind(household)
            .execute(&app.pool)
            .await
            .expect("a number");
    }

    let people = [
        ("+992900000901", Role::Admin, vec![]),
        ("+992900000902", Role::Coordinator, vec![a]),
        ("+992900000903", Role::Counsellor, vec![]),
        ("+992900000904", Role::Officer, vec![a]),
    ];
    for (phone, role, communities) in &people {
        staff(&app, &format!("{role} of A"), phone, *role, communities).await;
    }
    // the person People & access works on, with a token to revoke
    staff(&app, "Target", "+992900000905", Role::Coordinator, &[a]).await;
    let person: i64 =
        sqlx::query_scalar("select id from coordinators where phone = '+992900000905'")
            .fetch_one(&app.pool)
            .await
            .expect("the target");
    let token: i64 = sqlx::query_scalar(
        "insert into api_tokens (coordinator_id, token_sha256) values ($1, repeat('a', 64)) returning id",
    )
    .bind(person)
    .fetch_one(&app.pool)
    .await
    .expect("a token");
    let login = get(&app, "/console/login", "").await;
    let css = login
        .body
        .split("href=\"")
        .find(|s| s.starts_with("/console/static/console."))
        .and_then(|s| s.split('"').next())
        .expect("the stylesheet's URL")
        .to_owned();

    let fill = |path: &str| {
        path.replace("{pledge}", &pledge_a.to_string())
            .replace("{b_pledge}", &pledge_b.to_string())
            .replace("{cancel}", &cancel_a.to_string())
            .replace("{b_cancel}", &cancel_b.to_string())
            .replace("{project}", &seed.bridge.to_string())
            .replace("{b_project}", &b_project.to_string())
            .replace("{b_community}", &seed.other_community.to_string())
            .replace("{code}", &code)
            .replace("{b_household}", &b_household.to_string())
            .replace("{household}", &seed.household.to_string())
            .replace("{a}", &a.to_string())
            .replace("{b}", &seed.other_community.to_string())
            .replace("{css}", &css)
            .replace("{a}", &a.to_string())
            .replace("{b}", &seed.other_community.to_string())
            .replace("{person}", &person.to_string())
            .replace("{token}", &token.to_string())
            .replace("{broadcast}", &broadcast_a.to_string())
            .replace("{b_broadcast}", &broadcast_b.to_string())
            .replace("{cancel_broadcast}", &cancel_broadcast_a.to_string())
            .replace("{b_cancel_broadcast}", &cancel_broadcast_b.to_string())
            .replace("{callback}", &callback.to_string())
            .replace("{holiday}", &holiday.to_string())
            .replace("{b_meeting}", &meeting_b.to_string())
            .replace("{meeting}", &meeting_a.to_string())
            .replace("{b_receipt}", &receipt_b.to_string())
            .replace("{receipt}", &receipt_a.to_string())
            .replace("{b_disbursement}", &disbursement_b.to_string())
            .replace("{disbursement}", &disbursement_a.to_string())
    };
    // Row by row, each role in turn (a change by one role is seen by the next, as in life).
    let mut failures = Vec::new();
    let mut sessions: Vec<Option<Signed>> = vec![None; ROLES.len()];
    let mut keys = 0;
    let mut ip = 0u8;
    for r in TABLE {
        for (who, role) in ROLES.iter().enumerate() {
            if who != ANON && sessions[who].is_none() {
                let (phone, ..) = &people[who - 1];
                ip += 1;
                sessions[who] = Some(sign_in(&app, phone, [10, 9, 0, ip]).await);
            }
            let (cookie, csrf) = match &sessions[who] {
                Some(s) => (s.cookie.clone(), Some(s.csrf.clone())),
                None => (String::new(), None),
            };
            let path = fill(r.path);
            let answer = if r.method == "GET" {
                get(&app, &path, &cookie).await
            } else {
                keys += 1;
                let key = format!("route-table-{keys}");
                let filled: Vec<(&str, String)> = r
                    .form
                    .iter()
                    .map(|(k, v)| (*k, fill(v).replace("{n}", &format!("{keys:04}"))))
                    .collect();
                let mut form: Vec<(&str, &str)> =
                    filled.iter().map(|(k, v)| (*k, v.as_str())).collect();
                form.push(("key", &key));
                if let Some(csrf) = &csrf {
                    form.push(("csrf", csrf));
                }
                post(&app, &path, &cookie, &form).await
            };
            let expected = r.expect[who];
            if answer.status.as_u16() != expected {
                failures.push(format!(
                    "{role}: {} {path}: {} (expected {expected})",
                    r.method, answer.status
                ));
            }
            // Every answer says where its time went (console design §7); a signed-in one
            // read the session and the person from the database.
            let timing = answer
                .headers
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let public =
                r.path.starts_with("/console/login") || r.path.starts_with("/console/welcome/");
            if public {
                // not on the sign-in pages: it would tell a real number from an unknown one
                if !timing.is_empty() {
                    failures.push(format!(
                        "{role}: {} {path}: Server-Timing on a public page",
                        r.method
                    ));
                }
            } else if !(timing.starts_with("db;dur=") && timing.contains(", total;dur=")) {
                failures.push(format!(
                    "{role}: {} {path}: Server-Timing {timing:?}",
                    r.method
                ));
            }
            if who != ANON && !public && timing.contains("desc=\"0 calls\"") {
                failures.push(format!(
                    "{role}: {} {path}: no database time counted",
                    r.method
                ));
            }
            if answer.status == StatusCode::SEE_OTHER && who == ANON {
                assert_eq!(answer.location(), "/console/login", "{path}");
            }
            if answer.status == StatusCode::NOT_FOUND && r.path.contains("{b_") {
                // out of scope shows nothing of B
                assert!(!answer.body.contains("Water"), "{role}: {path}");
            }
            if r.ends_session {
                sessions[who] = None;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
