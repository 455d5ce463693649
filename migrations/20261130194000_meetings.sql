-- Meetings (issue 11 point 4): a broadcast may announce a meeting — when, where and what
-- about — which households list on USSD and by SMS conversation, answer (one answer per
-- household and meeting), are reminded of the day before when they said yes, and whose
-- attendance coordinators record by household.

-- `place` is one text for every language (a place is a name: "Мактаби 3", "Mosque"),
-- at most 24 characters so that "12.12 14:00 <place>" fits one line of a USSD list.
-- `topics` are what a meeting is about; the outreach figures count "attended an
-- information session on T" from them (legal_stay, trafficking, hiv and remittances are
-- the callback queue's topic names, so both count alike).
alter table broadcasts
    add column meeting_at timestamptz,
    add column place      text check (place is null or char_length(place) between 1 and 24),
    add column topics     text[] not null default '{}'
        check (topics <@ array['general', 'remittances', 'business', 'legal_stay', 'trafficking', 'hiv']::text[]),
    add constraint broadcasts_meeting check (
        (meeting_at is null) = (place is null) and (meeting_at is not null or cardinality(topics) = 0));
create index broadcasts_meeting_idx on broadcasts (meeting_at) where meeting_at is not null;

-- One answer per household and meeting (the household's latest, by whichever of its numbers,
-- by SMS reply or on USSD). Before, an answer was kept per number; where two numbers of one
-- household answered, the later answer is the household's (the earlier one is dropped).
alter table rsvps add column household_id bigint references households (id);
update rsvps v set household_id = r.household_id
  from broadcast_recipients r where r.broadcast_id = v.broadcast_id and r.phone = v.phone;
delete from rsvps v using rsvps w
 where v.broadcast_id = w.broadcast_id and v.household_id = w.household_id
   and (v.answered_at, v.phone) < (w.answered_at, w.phone);
alter table rsvps alter column household_id set not null;
alter table rsvps drop constraint rsvps_pkey;
alter table rsvps add primary key (broadcast_id, household_id);
-- a number added to the household after the notice went out may answer on USSD too
alter table rsvps drop constraint rsvps_broadcast_id_phone_fkey;
alter table rsvps add foreign key (broadcast_id) references broadcasts (id);
alter table rsvps add column channel text not null default 'sms' check (channel in ('sms', 'ussd'));

-- The reminder the day before, once per household and meeting, to the number that said yes.
create table meeting_reminders (
    broadcast_id bigint not null references broadcasts (id),
    household_id bigint not null references households (id),
    phone        text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    outbox_id    bigint not null references outbox (id),
    created_at   timestamptz not null,
    primary key (broadcast_id, household_id)
);

-- Who came, by household: recorded (and corrected: unticked is `attended = false`, never a
-- deleted row) by a coordinator of the community or an admin.
create table meeting_attendance (
    broadcast_id bigint not null references broadcasts (id),
    household_id bigint not null references households (id),
    attended     boolean not null,
    recorded_by  bigint not null references coordinators (id),
    recorded_at  timestamptz not null,
    primary key (broadcast_id, household_id)
);
create index meeting_attendance_household_idx on meeting_attendance (household_id) where attended;

-- For the outreach figures: one row per household, meeting and topic it attended.
create view meeting_attended_topics as
select a.household_id, h.community_id, a.broadcast_id, b.meeting_at, t.topic
  from meeting_attendance a
  join broadcasts b on b.id = a.broadcast_id
  join households h on h.id = a.household_id
  cross join lateral unnest(b.topics) as t(topic)
 where a.attended;
