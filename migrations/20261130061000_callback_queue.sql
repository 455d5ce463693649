-- The counsellors' callback queue (issue 11 point 5; console design §3 "Callbacks", §9).
--
-- A request stays `status = 'open'` until it is done; within that:
--   new          taken_by is null, attempts = 0
--   taken        taken_by/taken_at set (one counsellor calls; another's Take is refused)
--   no answer    outcome = 'no_answer', taken_by cleared, next_try_at = 2 h later (back in the
--                queue then); the third "no answer" closes it as `unreachable`
--   done         status = 'done': outcome reached / wrong_number / declined / unreachable,
--                done_at and done_by set; a done request never changes again.
-- `topics` are what the call covered (for the outreach figures), `note` at most 280
-- characters (counsellors and admins only read it).
alter table callback_requests
    add column taken_by    bigint references coordinators (id),
    add column taken_at    timestamptz,
    add column attempts    smallint not null default 0,
    add column next_try_at timestamptz,
    add column outcome     text,
    add column note        text,
    add column topics      text[] not null default '{}',
    add column done_at     timestamptz,
    add column done_by     bigint references coordinators (id);

alter table callback_requests
    add constraint callback_requests_attempts check (attempts between 0 and 3),
    add constraint callback_requests_outcome check (outcome in
        ('reached', 'no_answer', 'wrong_number', 'declined', 'unreachable')),
    add constraint callback_requests_note check (note is null or char_length(note) between 1 and 280),
    add constraint callback_requests_topics check (topics <@ array[
        'legal_stay', 'trafficking', 'hiv', 'remittances', 'other']::text[]),
    add constraint callback_requests_taken check ((taken_by is null) = (taken_at is null)),
    -- no answer: back in the queue (nobody holds it) at next_try_at, after 1 or 2 tries
    add constraint callback_requests_no_answer check (
        (outcome is not distinct from 'no_answer') = (next_try_at is not null)
        and (outcome is distinct from 'no_answer' or (taken_by is null and attempts between 1 and 2))),
    add constraint callback_requests_unreachable check (
        outcome is distinct from 'unreachable' or attempts = 3),
    add constraint callback_requests_taken_open check (taken_by is null or status = 'open');

-- done: with who, when and a final outcome; open: none of those. NOT VALID: before this
-- migration nothing in the service closed a request, so a `done` row can only have been
-- closed by hand and has no who, when or outcome; it is kept as it is (a done row never
-- changes again, below) while every row written from now on is checked.
alter table callback_requests
    add constraint callback_requests_done check (
        (status = 'done') = (done_at is not null)
        and (done_at is null) = (done_by is null)
        and (status = 'done') = (coalesce(outcome, 'no_answer') <> 'no_answer')) not valid;

-- A done request is final; no request is ever deleted (archive, never delete).
create function callback_requests_final() returns trigger language plpgsql as $$
begin
    if old.status = 'done' then
        raise exception 'callback request % is done and does not change', old.id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger callback_requests_final before update on callback_requests
    for each row execute function callback_requests_final();
create trigger callback_requests_no_delete before delete on callback_requests
    for each row execute function forbid_delete();

-- The queue: open requests, oldest first (console design §7).
create index callback_requests_open on callback_requests (created_at) where status = 'open';

-- Public holidays (no working day) for a callback's "due by" (two working days, Monday to
-- Friday in HASHAR_TIMEZONE, not counting these). `year` null: every year on that date;
-- a year: that year only. The fixed-date holidays of the Labour Code of Tajikistan are
-- seeded; the movable ones are entered each year when the government announces them:
-- Idi Ramazon (Eid al-Fitr), Idi Qurbon (Eid al-Adha), and the days off moved from a
-- holiday that falls on a weekend, e.g.
--   insert into public_holidays (year, month, day, name) values (2027, 3, 10, 'Idi Ramazon');
create table public_holidays (
    id    bigint generated always as identity primary key,
    year  smallint check (year between 2020 and 2100),
    month smallint not null check (month between 1 and 12),
    day   smallint not null check (day between 1 and 31),
    name  text not null check (char_length(name) between 1 and 80),
    -- a real date (31 April is refused); a fixed-date row is checked in a leap year
    check (make_date(coalesce(year::int, 2024), month, day) is not null)
);
create unique index public_holidays_once on public_holidays (coalesce(year, 0), month, day);

insert into public_holidays (year, month, day, name) values
    (null, 1, 1, 'New Year'),
    (null, 3, 8, 'Mother''s Day'),
    (null, 3, 21, 'Navruz'),
    (null, 3, 22, 'Navruz'),
    (null, 3, 23, 'Navruz'),
    (null, 3, 24, 'Navruz'),
    (null, 5, 1, 'International Workers'' Solidarity Day'),
    (null, 5, 9, 'Victory Day'),
    (null, 6, 27, 'National Unity Day'),
    (null, 9, 9, 'Independence Day'),
    (null, 11, 6, 'Constitution Day');

-- The taken request's SMS has a kind of its own in the outbox.
alter table outbox drop constraint outbox_kind_check;
alter table outbox add constraint outbox_kind_check
    check (kind in ('reply', 'stop_confirmation', 'broadcast', 'receipt', 'link_code', 'callback'));
