//! A meeting notice from the coordinator phone menu: previewed, then created and scheduled
//! as a broadcast like one from the admin API (`crate::broadcasts::create`, `schedule`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use sqlx::PgConnection;

use super::{coordinators::coordinator_of, id_var, refused, var, ActionError, EffectCtx};
use crate::{
    broadcasts::{self, Broadcast, BroadcastStatus},
    domain::Language,
    engine::{Action, Vars},
    store::{
        self,
        meetings::{Meeting, Topic},
        BroadcastId, CommunityId, CoordinatorId,
    },
};

/// The meeting a notice typed on the phone announces: the day (`31.12`) and time (`14:00`)
/// in the programme's time zone, this year or, when that has passed, the next; a general
/// meeting. None when the place is longer than a meeting's (the notice still goes out).
fn phone_meeting(values: &Vars, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Option<Meeting> {
    let place = values.get("place")?.trim();
    if place.is_empty() || place.chars().count() > crate::store::meetings::MAX_PLACE {
        return None;
    }
    let (day, month) = values.get("date")?.split_once('.')?;
    let (hour, minute) = values.get("time")?.split_once(':')?;
    let time = NaiveTime::from_hms_opt(hour.parse().ok()?, minute.parse().ok()?, 0)?;
    let year = now.with_timezone(&tz).year();
    let at = [year, year + 1].into_iter().find_map(|y| {
        let date = NaiveDate::from_ymd_opt(y, month.parse().ok()?, day.parse().ok()?)?;
        let at = tz
            .from_local_datetime(&date.and_time(time))
            .earliest()?
            .with_timezone(&Utc);
        (at > now).then_some(at)
    })?;
    Some(Meeting {
        at,
        place: place.to_owned(),
        topics: vec![Topic::General],
    })
}

/// A meeting notice from the coordinator's phone: the template of each language with the
/// day, time and place typed on the phone, to every household of one community. Without
/// `send`, only the preview (numbers and SMS segments); with it, the broadcast is created
/// and queued now, or at the end of the quiet hours (`preview_notice`, `send_notice`).
pub(super) async fn notice(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
    send: bool,
) -> Result<Vars, ActionError> {
    let action = if send {
        Action::SendNotice
    } else {
        Action::PreviewNotice
    };
    let community = CommunityId(id_var(vars, action.name(), "community_id")?);
    let mut values = Vars::new();
    for name in ["date", "time", "place"] {
        values.insert(name.to_owned(), var(vars, action.name(), name)?.to_owned());
    }
    let Some((coordinator, admin)) = coordinator_of(conn, ctx.phone).await? else {
        return Ok(refused("refused.no_pin"));
    };
    if !store::broadcasts::may_notify(conn, CoordinatorId(coordinator), community, admin).await? {
        return Ok(refused("refused.no_pledge"));
    }
    let state = ctx.state;
    let texts: std::collections::BTreeMap<String, String> = Language::ALL
        .iter()
        .map(|l| {
            (
                l.code().to_owned(),
                state.menus.text(*l, "coord.notice_template").to_owned(),
            )
        })
        .collect();
    let meeting = phone_meeting(&values, state.config.timezone, ctx.now);
    let mut b = Broadcast {
        id: BroadcastId(0),
        communities: vec![community],
        only_migrants: false,
        only_project: None,
        only_language: None,
        texts,
        vars: values,
        status: BroadcastStatus::Draft,
        send_at: None,
        rsvp_hours: 72,
        created_by: format!("coordinator:{coordinator}"),
        created_at: ctx.now,
        meeting,
    };
    let people = broadcasts::recipients(conn, &b, state.config.default_language).await?;
    let preview = broadcasts::preview(
        &b,
        &people,
        state.config.sms_price_per_segment,
        state.settings.sms_price_currency,
        &state.settings.quiet_hours,
        ctx.now,
    );
    let mut out = Vars::from([
        ("recipients".to_owned(), preview.recipients.to_string()),
        ("segments".to_owned(), preview.segments_total.to_string()),
    ]);
    if !send {
        return Ok(out);
    }
    b.id = broadcasts::create(conn, &b).await?;
    let Some(sending) = broadcasts::schedule(conn, state, &b, ctx.now, ctx.now).await? else {
        // Only this transaction knows the draft: nobody else can have queued it.
        return Err(ActionError::Db(sqlx::Error::RowNotFound));
    };
    let send_at = sending.send_at;
    tracing::info!(phone = %ctx.phone, broadcast = b.id.0, "meeting notice from the phone menu");
    out.insert(
        "when".to_owned(),
        send_at
            .with_timezone(&state.config.timezone)
            .format("%d.%m %H:%M")
            .to_string(),
    );
    Ok(out)
}
