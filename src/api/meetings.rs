//! Meetings: who came to a meeting a broadcast announced, by household (read, and recorded
//! by admins and coordinators of its communities), with its figures.

use axum::{extract::State, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Auth,
    error::{ApiResult, Body, ErrorBody, Segments},
};
use crate::{
    app::AppState,
    service::{
        self,
        meetings::{Attendance, Mark},
        Once,
    },
    store::{
        meetings::{Counts, Meeting},
        BroadcastId,
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendanceRow {
    pub household_id: i64,
    pub community_id: i64,
    pub name: Option<String>,
    /// The notice reached the household.
    pub invited: bool,
    /// yes, no, or null (no answer).
    pub rsvp: Option<String>,
    /// true came, false did not, null not recorded.
    pub attended: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendanceView {
    pub broadcast_id: i64,
    pub meeting: Meeting,
    pub counts: Counts,
    /// Attendance may be recorded from this time (two hours before the meeting).
    pub opens_at: DateTime<Utc>,
    /// The households of the meeting's communities (those that said yes first).
    pub households: Vec<AttendanceRow>,
}

fn view(a: Attendance) -> AttendanceView {
    AttendanceView {
        broadcast_id: a.broadcast.id.0,
        meeting: a.meeting,
        counts: a.counts,
        opens_at: a.opens_at,
        households: a
            .households
            .into_iter()
            .map(|h| AttendanceRow {
                household_id: h.household.0,
                community_id: h.community.0,
                name: h.name,
                invited: h.invited,
                rsvp: h.answer,
                attended: h.attended,
            })
            .collect(),
    }
}

/// A meeting's attendance: its households with their answers and who came, and its figures
/// (households invited, that said yes or no, that came). 404 for a broadcast that announces
/// no meeting.
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}/attendance", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = AttendanceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_attendance(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<AttendanceView>> {
    let a = service::meetings::attendance(&state, &auth, BroadcastId(id)).await?;
    Ok(Json(view(a)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceMark {
    pub household_id: i64,
    /// Whether the household came.
    pub attended: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceMarks {
    /// 1 to 2000 households of the meeting's communities.
    pub households: Vec<AttendanceMark>,
}

/// Records who came (each household given: came or not; others stay as they are); the same
/// marks again change nothing. From two hours before the meeting (409 `meetings.not_yet`
/// before); a household of another community is 404. Returns the figures.
#[utoipa::path(put, path = "/api/v1/broadcasts/{id}/attendance", tag = "broadcasts", request_body = AttendanceMarks,
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = Counts), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_attendance(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(b): Body<AttendanceMarks>,
) -> ApiResult<Json<Counts>> {
    let marks: Vec<Mark> = b
        .households
        .iter()
        .map(|m| Mark {
            household: m.household_id,
            attended: m.attended,
        })
        .collect();
    let counts =
        service::meetings::record(&state, &auth, BroadcastId(id), &marks, Once::Always).await?;
    Ok(Json(counts))
}
