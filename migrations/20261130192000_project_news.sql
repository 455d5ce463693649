-- Issue 11, point 3: project news. A project's target reached is told to the households
-- that pledged to it, once (a broadcast the scheduler creates, see src/news.rs), and the
-- phone shows a closed project for a year after it closed, as "completed" when its target
-- was reached and "closed" otherwise.

-- One row per project whose matched total reached its target: written by the triggers
-- below the first time it happens (primary key: concurrent receipts and retries write it
-- once), never deleted, so that money reversed and received again announces nothing twice.
create table project_target_reached (
    project_id   bigint primary key references projects (id),
    reached_at   timestamptz not null default now(),
    -- due: to announce; announced: the broadcast is made (broadcast_id); before: reached
    -- before this release, never announced (households are not told months late)
    state        text not null default 'due' check (state in ('due', 'announced', 'before')),
    broadcast_id bigint unique references broadcasts (id),
    announced_at timestamptz,
    check ((state = 'announced') = (broadcast_id is not null and announced_at is not null))
);
create index project_target_reached_due_idx on project_target_reached (reached_at) where state = 'due';

create function project_target_reached_forbid() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        raise exception 'project_target_reached rows are never deleted' using errcode = 'check_violation';
    end if;
    if new.project_id <> old.project_id or new.reached_at <> old.reached_at
       or not (old.state = 'due' and new.state = 'announced') then
        raise exception 'a reached target only moves from due to announced' using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger project_target_reached_rules before update or delete on project_target_reached
    for each row execute function project_target_reached_forbid();

-- Notes project `p` as reached when its matched total (received + matched, as
-- `project_totals` computes it) is at least its target; nothing when it is already noted.
create function note_target_reached(p bigint) returns void language plpgsql as $$
begin
    insert into project_target_reached (project_id)
    select t.project_id from project_totals t
     where t.project_id = p and t.matched_total >= t.target
    on conflict (project_id) do nothing;
end $$;

-- Money received (the project's sums row is locked by the update that fires this, so two
-- receipts at once are noted one after the other).
create function project_sums_target_reached() returns trigger language plpgsql as $$
begin
    if new.received > old.received then
        perform note_target_reached(new.project_id);
    end if;
    return null;
end $$;
create trigger project_sums_target_reached after update of received on project_sums
    for each row execute function project_sums_target_reached();

-- A target lowered or matching raised can reach it too.
create function projects_target_reached() returns trigger language plpgsql as $$
begin
    perform note_target_reached(new.id);
    return null;
end $$;
create trigger projects_target_reached after update of target, match_ratio, match_cap on projects
    for each row execute function projects_target_reached();

insert into project_target_reached (project_id, state)
select project_id, 'before' from project_totals where matched_total >= target;

-- A project's figures for a screen, with how the phone names its state: open, completed
-- (closed after its target was reached) or closed.
create or replace function project_total_texts(p_project bigint) returns jsonb
language plpgsql stable as $$
declare
    v jsonb;
begin
    select jsonb_build_object(
        'pledged', screen_amount(t.pledged),
        'received', screen_amount(t.received),
        'matched', screen_amount(t.matched),
        'matched_total', screen_amount(t.matched_total),
        'target', screen_amount(t.target),
        'percent', trim_scale(t.percent)::text,
        'currency', t.currency,
        'project_status', case when t.status = 'open' then 'open'
                               when exists (select 1 from project_target_reached r where r.project_id = t.project_id)
                               then 'completed' else 'closed' end)
    into v
    from project_totals t where t.project_id = p_project;
    return v;
end $$;
