-- Linking a number no longer tells whether it belongs to a household elsewhere (issue 8,
-- point 13).
--
-- `POST /api/v1/households/{id}/phones` answered 201 for a free number and 409 for one of a
-- household in another community, so a coordinator could probe any number for membership.
-- Now a coordinator linking a number they cannot already see gets the same answer either
-- way (202) and the number gets a code by SMS; `…/phones/confirm` with that code links it.
-- See src/api/households.rs.

-- Every code sent, kept for audit (who asked for which number and household, when, how it
-- ended) and for the per-coordinator and per-number hourly limits; rows are pruned 7 days
-- after they expired. The code itself is never stored: SHA-256 of a per-row random salt
-- followed by the code's six ASCII digits.
create table phone_link_codes (
    id           bigint generated always as identity primary key,
    household_id bigint not null references households (id),
    phone        text not null check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    code_salt    bytea not null check (octet_length(code_salt) = 16),
    code_sha256  bytea not null check (octet_length(code_sha256) = 32),
    created_by   bigint not null references coordinators (id),
    created_at   timestamptz not null,
    expires_at   timestamptz not null check (expires_at > created_at),
    wrong_tries  integer not null default 0 check (wrong_tries between 0 and 5),
    -- pending: may be confirmed until expires_at; replaced: a newer code was sent for the
    -- same household and number; confirmed: the number was linked with it; void: 5 wrong
    -- codes
    state        text not null default 'pending'
                 check (state in ('pending', 'replaced', 'confirmed', 'void')),
    closed_at    timestamptz,
    check ((state = 'pending') = (closed_at is null))
);
-- One pending request per household and number: a new one replaces it.
create unique index phone_link_codes_pending on phone_link_codes (household_id, phone)
    where state = 'pending';
create index phone_link_codes_by_coordinator on phone_link_codes (created_by, created_at);
create index phone_link_codes_by_phone on phone_link_codes (phone, created_at);
create index phone_link_codes_expiry on phone_link_codes (expires_at);

-- `POST /api/v1/households` still answers 409 for a number of a household the coordinator
-- cannot see (registration is in person, with the family); each such answer is counted
-- here, and a coordinator with 5 in the last 24 hours cannot register for a while (429).
-- No number is kept: only who got the answer and when.
create table taken_number_answers (
    id             bigint generated always as identity primary key,
    coordinator_id bigint not null references coordinators (id),
    answered_at    timestamptz not null
);
create index taken_number_answers_by_coordinator on taken_number_answers (coordinator_id, answered_at);

-- The code's SMS has a kind of its own in the outbox.
alter table outbox drop constraint outbox_kind_check;
alter table outbox add constraint outbox_kind_check
    check (kind in ('reply', 'stop_confirmation', 'broadcast', 'receipt', 'link_code'));
