-- Meeting notices to communities, in each recipient's language, with RSVPs.

create table broadcasts (
    id              bigint generated always as identity primary key,
    created_by      text not null,
    communities     bigint[] not null check (cardinality(communities) >= 1),
    -- narrowing: households with a number abroad, households that pledged to a project,
    -- one language
    only_migrants   boolean not null default false,
    only_project    bigint references projects (id),
    only_language   text check (only_language in ('tg', 'ru', 'en')),
    text_tg         text not null check (char_length(text_tg) between 1 and 1000),
    text_ru         text not null check (char_length(text_ru) between 1 and 1000),
    text_en         text not null check (char_length(text_en) between 1 and 1000),
    -- values for {date} {time} {place} {project}
    vars            jsonb not null default '{}',
    status          text not null default 'draft'
                    check (status in ('draft', 'scheduled', 'queued', 'cancelled')),
    send_at         timestamptz,
    rsvp_hours      integer not null default 72 check (rsvp_hours between 0 and 720),
    created_at      timestamptz not null,
    queued_at       timestamptz,
    cancelled_at    timestamptz,
    check ((status = 'scheduled') <= (send_at is not null))
);
create index broadcasts_due_idx on broadcasts (send_at) where status = 'scheduled';

-- Who a broadcast went to; `outbox_id` is null for numbers skipped because they opted out.
create table broadcast_recipients (
    broadcast_id bigint not null references broadcasts (id),
    phone        text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    household_id bigint not null references households (id),
    community_id bigint not null references communities (id),
    language     text not null check (language in ('tg', 'ru', 'en')),
    outbox_id    bigint references outbox (id),
    skipped      text check (skipped in ('opted_out')),
    rsvp_until   timestamptz not null,
    primary key (broadcast_id, phone)
);
create index broadcast_recipients_phone_idx on broadcast_recipients (phone, rsvp_until);

-- The latest answer of each recipient counts.
create table rsvps (
    broadcast_id bigint not null,
    phone        text not null,
    answer       text not null check (answer in ('yes', 'no')),
    answered_at  timestamptz not null,
    inbound_id   bigint references inbound_messages (id),
    primary key (broadcast_id, phone),
    foreign key (broadcast_id, phone) references broadcast_recipients (broadcast_id, phone)
);

-- A broadcast can be cancelled while its messages still wait in the outbox.
alter table outbox drop constraint outbox_status_check;
alter table outbox add constraint outbox_status_check
    check (status in ('queued', 'sending', 'sent', 'delivered', 'failed', 'suppressed', 'cancelled'));
