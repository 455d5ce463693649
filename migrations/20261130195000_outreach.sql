-- Outreach towards the programme's information goal (issue 11 point 6): households informed
-- on a topic (labour-migration realities and legal stay, human trafficking, HIV/AIDS,
-- remittances and budgeting) by a counsellor's completed call, an information session, or
-- (counted apart, as self-served) by reading that topic's screens to the end.
-- Only counts leave the database through the service: no figure names a household.

-- A household read a topic's safe-migration screens to the end on USSD or SMS; the first
-- time is kept (later readings change nothing).
create table outreach_self_served (
    household_id bigint not null references households (id),
    topic        text not null check (topic in ('legal_stay', 'trafficking', 'hiv', 'remittances')),
    channel      text not null check (channel in ('ussd', 'sms')),
    first_at     timestamptz not null,
    primary key (household_id, topic)
);

-- The programme's target of households informed (one row; 2,000 unless an admin sets
-- another) and each community's, where an admin set one.
create table outreach_programme_target (
    one    boolean primary key default true check (one),
    target integer not null check (target between 1 and 10000000),
    set_by bigint references coordinators (id),
    set_at timestamptz not null default now()
);
insert into outreach_programme_target (target) values (2000);

create table outreach_targets (
    community_id bigint primary key references communities (id),
    target       integer not null check (target between 1 and 10000000),
    set_by       bigint references coordinators (id),
    set_at       timestamptz not null
);

-- Information sessions: WHERE ATTENDANCE JOINS. One row per household that attended a
-- session on a topic (household_id, topic, attended_at). Empty until meetings record
-- attendance: the meetings' migration replaces this view (`create or replace view`, same
-- three columns) with its attended rows.
create view outreach_session_attendance as
    select null::bigint as household_id, null::text as topic, null::timestamptz as attended_at
    where false;

-- Every way a household was informed on a topic. `source`: counsellor (a done callback,
-- the household reached, that covered the topic; `other` informs about nothing in
-- particular), session (attendance above), self (read to the end; counted apart).
create view outreach_informed as
    select c.household_id, t.topic, 'counsellor'::text as source, c.done_at as informed_at
      from callback_requests c
      cross join lateral unnest(c.topics) as t (topic)
     where c.status = 'done' and c.outcome = 'reached' and c.household_id is not null
       and t.topic <> 'other'
    union all
    select a.household_id, a.topic, 'session', a.attended_at
      from outreach_session_attendance a
    union all
    select s.household_id, s.topic, 'self', s.first_at
      from outreach_self_served s;
