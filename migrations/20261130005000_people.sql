-- People & access (issue 10, page 7): one-time set-password links. An admin who adds a
-- person (or resets a password) gets a link shown once; only its SHA-256 is kept, it works
-- for 24 hours and once. Rows are never deleted (a used or expired link stays, as a record).
create table password_links (
    id             bigint generated always as identity primary key,
    coordinator_id bigint not null references coordinators (id),
    token_sha256   text not null unique check (token_sha256 ~ '^[0-9a-f]{64}$'),
    -- `coordinator:<id>` or `cli`
    created_by     text not null check (created_by ~ '^(coordinator:[0-9]+|cli)$'),
    created_at     timestamptz not null,
    expires_at     timestamptz not null,
    used_at        timestamptz,
    check (expires_at > created_at and expires_at <= created_at + interval '24 hours'),
    check (used_at is null or used_at >= created_at)
);
create index password_links_coordinator on password_links (coordinator_id, created_at desc);
create trigger password_links_no_delete before delete on password_links
    for each row execute function forbid_delete();

-- The People & access audit tab: the audit log by actor, newest first.
create index audit_log_actor on audit_log (actor, at desc);
