-- One actor, one rule book (issue 10, step 1): every member of staff has a role; every
-- change made through the service layer (the admin API today, the console later) is written
-- to an append-only audit log in the change's own transaction; console forms carry a
-- one-time key so that a repeated POST returns the first result.

-- Roles: admin (everything), coordinator (their communities), counsellor (all communities,
-- no money), officer (read-only programme officer, their communities). `is_admin` stays,
-- kept equal to `role = 'admin'` by a check, so that readers of either agree.
alter table coordinators add column role text;
update coordinators set role = case when is_admin then 'admin' else 'coordinator' end;
alter table coordinators
    alter column role set not null,
    alter column role set default 'coordinator',
    add constraint coordinators_role_check
        check (role in ('admin', 'coordinator', 'counsellor', 'officer')),
    add constraint coordinators_admin_is_role check (is_admin = (role = 'admin'));

-- The audit log: who did what to which object, when, with a small before → after.
create table audit_log (
    id           bigint generated always as identity primary key,
    at           timestamptz not null default now(),
    -- `coordinator:<id>`, `system` or `cli`
    actor        text not null check (actor ~ '^(coordinator:[0-9]+|system|cli)$'),
    -- what was done, e.g. `receipt.record`, `pledge.cancel`
    action       text not null check (action ~ '^[a-z_]+(\.[a-z_]+)+$' and char_length(action) <= 80),
    -- what it was done to, e.g. `pledge` 12
    subject_kind text not null check (subject_kind ~ '^[a-z_]+$' and char_length(subject_kind) <= 40),
    subject_id   bigint not null,
    community_id bigint references communities (id),
    -- {"before": …, "after": …}
    detail       jsonb not null default '{}'::jsonb check (jsonb_typeof(detail) = 'object'),
    request_id   text check (char_length(request_id) between 1 and 200)
);
create index audit_log_subject on audit_log (subject_kind, subject_id, at desc);
create trigger audit_log_no_update before update on audit_log
    for each row execute function forbid_update();
create trigger audit_log_no_delete before delete on audit_log
    for each row execute function forbid_delete();

-- One-time keys of console forms: the first result under each key, per actor.
create table console_form_keys (
    key        text primary key check (char_length(key) between 1 and 200 and key ~ '^[!-~]+$'),
    actor      text not null check (actor ~ '^(coordinator:[0-9]+|system|cli)$'),
    -- what the form did (its audit action), so a key cannot be reused for something else
    action     text not null check (char_length(action) between 1 and 80),
    -- the first result (null only inside the transaction that claimed the key)
    result     jsonb,
    created_at timestamptz not null default now()
);
create index console_form_keys_created_at on console_form_keys (created_at);
