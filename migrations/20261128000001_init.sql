-- Hashar's first schema: communities, households and phones, projects, pledges and money
-- received, USSD sessions, inbound messages, budgeting tips, counselling callbacks.
-- Rules live here too: a direct SQL write that breaks them fails.

create table communities (
    id          bigint generated always as identity primary key,
    code        text not null unique check (code ~ '^[a-z0-9][a-z0-9-]{1,39}$'),
    district    text not null check (length(district) between 1 and 60),
    name_tg     text not null check (char_length(name_tg) between 1 and 20),
    name_ru     text not null check (char_length(name_ru) between 1 and 20),
    name_en     text not null check (char_length(name_en) between 1 and 20),
    created_at  timestamptz not null default now()
);

create table households (
    id           bigint generated always as identity primary key,
    community_id bigint not null references communities (id),
    name         text check (name is null or char_length(name) between 1 and 120),
    language     text check (language in ('tg', 'ru', 'en')),
    -- how the household was registered: by a coordinator, or by the caller on USSD/SMS
    registered_via text not null default 'coordinator'
                 check (registered_via in ('coordinator', 'ussd', 'sms', 'demo')),
    created_at   timestamptz not null default now()
);
create index households_community_idx on households (community_id);

-- A household's phones (E.164). A number belongs to at most one household.
create table phones (
    phone        text primary key check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    household_id bigint not null references households (id),
    created_at   timestamptz not null default now()
);
create index phones_household_idx on phones (household_id);

create table projects (
    id           bigint generated always as identity primary key,
    community_id bigint not null references communities (id),
    code         text not null check (code ~ '^[A-Z0-9]{2,12}$'),
    kind         text not null check (kind in ('infrastructure', 'business')),
    name_tg      text not null check (char_length(name_tg) between 1 and 24),
    name_ru      text not null check (char_length(name_ru) between 1 and 24),
    name_en      text not null check (char_length(name_en) between 1 and 24),
    target       numeric(14, 2) not null check (target > 0),
    currency     text not null default 'TJS' check (currency ~ '^[A-Z]{3}$'),
    match_ratio  numeric(8, 4) not null check (match_ratio >= 0),
    match_cap    numeric(14, 2) check (match_cap is null or match_cap >= 0),
    status       text not null default 'open' check (status in ('open', 'closed')),
    -- when it was closed: sessions that started before still see it in their lists, so a
    -- list position a caller chose keeps pointing at the same project
    closed_at    timestamptz,
    created_at   timestamptz not null default now(),
    unique (community_id, code),
    check ((status = 'closed') = (closed_at is not null))
);

create function projects_closed_at() returns trigger language plpgsql as $$
begin
    if new.status = 'closed' and new.closed_at is null then
        new.closed_at := now();
    elsif new.status = 'open' then
        new.closed_at := null;
    end if;
    return new;
end $$;
create trigger projects_closed_at before insert or update of status on projects
    for each row execute function projects_closed_at();
create index projects_community_idx on projects (community_id) where status = 'open';

-- A promise of money. Never deleted: a status change records who and when.
create table pledges (
    id               bigint generated always as identity primary key,
    project_id       bigint not null references projects (id),
    household_id     bigint not null references households (id),
    phone            text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    amount           numeric(14, 2) not null check (amount > 0),
    currency         text not null check (currency ~ '^[A-Z]{3}$'),
    channel          text not null check (channel in ('ussd', 'sms', 'api')),
    status           text not null default 'pledged'
                     check (status in ('pledged', 'received', 'cancelled')),
    status_changed_at timestamptz,
    status_changed_by text,
    -- e.g. 'ussd:africastalking:<sessionId>:<step>': a repeated hop cannot pledge twice
    idempotency_key  text not null unique,
    created_at       timestamptz not null default now(),
    check ((status = 'pledged') = (status_changed_at is null and status_changed_by is null))
);
create index pledges_project_idx on pledges (project_id) include (amount, status);
create index pledges_household_idx on pledges (household_id);

-- Money that actually arrived for a project, for a pledge or without one. Appended only.
create table receipts (
    id           bigint generated always as identity primary key,
    project_id   bigint not null references projects (id),
    pledge_id    bigint references pledges (id),
    household_id bigint references households (id),
    amount       numeric(14, 2) not null check (amount > 0),
    currency     text not null check (currency ~ '^[A-Z]{3}$'),
    received_on  date not null,
    method       text not null check (method in ('cash', 'bank', 'mobile_money', 'remittance', 'other')),
    receipt_no   text,
    recorded_by  text not null,
    recorded_at  timestamptz not null default now()
);
create index receipts_project_idx on receipts (project_id) include (amount);

-- A receipt must be in its project's currency (conversion happens before it is recorded).
create function receipts_currency_check() returns trigger language plpgsql as $$
begin
    if new.currency <> (select currency from projects where id = new.project_id) then
        raise exception 'receipt currency % differs from the project currency', new.currency
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger receipts_currency before insert or update on receipts
    for each row execute function receipts_currency_check();

-- Nothing about money is ever deleted.
create function forbid_delete() returns trigger language plpgsql as $$
begin
    raise exception '% rows are never deleted', tg_table_name using errcode = 'restrict_violation';
end $$;
create trigger pledges_no_delete before delete on pledges
    for each row execute function forbid_delete();
create trigger receipts_no_delete before delete on receipts
    for each row execute function forbid_delete();
create trigger projects_no_delete before delete on projects
    for each row execute function forbid_delete();

-- The one place totals are computed; every screen and report reads it.
-- matched = min(received × ratio, cap), rounded to the cent; matched total = received + matched.
create view project_totals as
select p.id as project_id,
       p.community_id,
       p.code,
       p.name_tg, p.name_ru, p.name_en,
       p.currency,
       p.target,
       p.match_ratio,
       p.match_cap,
       p.status,
       coalesce(pl.pledged, 0)::numeric(14, 2) as pledged,
       coalesce(pl.outstanding, 0)::numeric(14, 2) as outstanding,
       coalesce(r.received, 0)::numeric(14, 2) as received,
       m.matched,
       (coalesce(r.received, 0) + m.matched)::numeric(14, 2) as matched_total,
       round(100 * (coalesce(r.received, 0) + m.matched) / p.target, 1) as percent
from projects p
left join lateral (
    select sum(amount) filter (where status <> 'cancelled') as pledged,
           sum(amount) filter (where status = 'pledged') as outstanding
    from pledges where project_id = p.id
) pl on true
left join lateral (
    select sum(amount) as received from receipts where project_id = p.id
) r on true
cross join lateral (
    select round(case when p.match_cap is null then coalesce(r.received, 0) * p.match_ratio
                      else least(coalesce(r.received, 0) * p.match_ratio, p.match_cap) end, 2)::numeric(14, 2)
           as matched
) m;

-- USSD sessions: written only by a hop that changes something. `start_caller` is what the
-- engine knew about the caller when the session started, so that replaying the input
-- history gives the same screens after, say, the caller chose a language.
create table ussd_sessions (
    session_key   text primary key,
    phone         text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    start_caller  jsonb not null,
    -- inputs before this step belong to an expired part of the session and are ignored
    base_step     integer not null default 0 check (base_step >= 0),
    started_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);
create index ussd_sessions_started_idx on ussd_sessions (started_at);

-- What each effect of a session returned, by step: a repeated hop gets the same answer.
create table ussd_effects (
    session_key text not null references ussd_sessions (session_key) on delete cascade,
    step        integer not null check (step >= 0),
    action      text not null,
    result      jsonb not null,
    created_at  timestamptz not null default now(),
    primary key (session_key, step)
);

-- Every inbound message, raw, before anything else happens to it.
create table inbound_messages (
    id              bigint generated always as identity primary key,
    provider        text not null,
    kind            text not null check (kind in ('sms', 'delivery', 'ussd_event')),
    provider_msg_id text not null,
    sender          text,
    raw             jsonb not null,
    received_at     timestamptz not null default now(),
    unique (provider, kind, provider_msg_id)
);

create table tips (
    id        bigint generated always as identity primary key,
    code      text not null unique check (code ~ '^[a-z0-9][a-z0-9-]{1,59}$'),
    position  integer not null,
    active    boolean not null default true,
    text_tg   text not null check (char_length(text_tg) between 1 and 300),
    text_ru   text not null check (char_length(text_ru) between 1 and 300),
    text_en   text not null check (char_length(text_en) between 1 and 300)
);

-- Which tips a household has seen, per round: a new round starts when all were seen.
create table tip_views (
    household_id bigint not null references households (id),
    round        integer not null check (round >= 1),
    tip_id       bigint not null references tips (id),
    seen_at      timestamptz not null default now(),
    primary key (household_id, round, tip_id)
);

create table callback_requests (
    id              bigint generated always as identity primary key,
    phone           text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    household_id    bigint references households (id),
    language        text not null check (language in ('tg', 'ru', 'en')),
    topic           text not null default 'migration',
    status          text not null default 'open' check (status in ('open', 'done')),
    channel         text not null check (channel in ('ussd', 'sms')),
    idempotency_key text not null unique,
    created_at      timestamptz not null default now()
);
