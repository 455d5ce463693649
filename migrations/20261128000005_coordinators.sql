-- Coordinators and their API tokens. A token is shown once when created and stored only as
-- its SHA-256 (tokens are long random strings, so a fast hash is the right one; PINs, which
-- are short, get argon2 in a later migration).

create table coordinators (
    id         bigint generated always as identity primary key,
    name       text not null check (char_length(name) between 1 and 120),
    phone      text not null unique check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    is_admin   boolean not null default false,
    created_at timestamptz not null default now()
);

-- The communities a (non-admin) coordinator may see and act on.
create table coordinator_communities (
    coordinator_id bigint not null references coordinators (id),
    community_id   bigint not null references communities (id),
    primary key (coordinator_id, community_id)
);

create table api_tokens (
    id             bigint generated always as identity primary key,
    coordinator_id bigint not null references coordinators (id),
    token_sha256   text not null unique check (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at     timestamptz not null default now(),
    revoked_at     timestamptz
);
