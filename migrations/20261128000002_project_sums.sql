-- Running sums per project, kept by triggers, so that reading a project's totals costs the
-- same with ten pledges or a million. `project_totals` keeps its columns and stays the one
-- place where matching is computed; it now reads these sums instead of scanning pledges.

create table project_sums (
    project_id  bigint primary key references projects (id),
    pledged     numeric(14, 2) not null default 0 check (pledged >= 0),
    outstanding numeric(14, 2) not null default 0 check (outstanding >= 0),
    received    numeric(14, 2) not null default 0 check (received >= 0)
);

insert into project_sums (project_id, pledged, outstanding, received)
select p.id,
       coalesce((select sum(amount) from pledges where project_id = p.id and status <> 'cancelled'), 0),
       coalesce((select sum(amount) from pledges where project_id = p.id and status = 'pledged'), 0),
       coalesce((select sum(amount) from receipts where project_id = p.id), 0)
from projects p;

create function project_sums_new_project() returns trigger language plpgsql as $$
begin
    insert into project_sums (project_id) values (new.id);
    return new;
end $$;
create trigger projects_sums after insert on projects
    for each row execute function project_sums_new_project();

create function project_sums_pledges() returns trigger language plpgsql as $$
begin
    if tg_op = 'UPDATE' then
        update project_sums
           set pledged = pledged - case when old.status <> 'cancelled' then old.amount else 0 end,
               outstanding = outstanding - case when old.status = 'pledged' then old.amount else 0 end
         where project_id = old.project_id;
    end if;
    update project_sums
       set pledged = pledged + case when new.status <> 'cancelled' then new.amount else 0 end,
           outstanding = outstanding + case when new.status = 'pledged' then new.amount else 0 end
     where project_id = new.project_id;
    return null;
end $$;
create trigger pledges_sums after insert or update of amount, status, project_id on pledges
    for each row execute function project_sums_pledges();

create function project_sums_receipts() returns trigger language plpgsql as $$
begin
    if tg_op = 'UPDATE' then
        update project_sums set received = received - old.amount where project_id = old.project_id;
    end if;
    update project_sums set received = received + new.amount where project_id = new.project_id;
    return null;
end $$;
create trigger receipts_sums after insert or update of amount, project_id on receipts
    for each row execute function project_sums_receipts();

create or replace view project_totals as
select p.id as project_id,
       p.community_id,
       p.code,
       p.name_tg, p.name_ru, p.name_en,
       p.currency,
       p.target,
       p.match_ratio,
       p.match_cap,
       p.status,
       s.pledged,
       s.outstanding,
       s.received,
       m.matched,
       (s.received + m.matched)::numeric(14, 2) as matched_total,
       round(100 * (s.received + m.matched) / p.target, 1) as percent
from projects p
join project_sums s on s.project_id = p.id
cross join lateral (
    select round(case when p.match_cap is null then s.received * p.match_ratio
                      else least(s.received * p.match_ratio, p.match_cap) end, 2)::numeric(14, 2)
           as matched
) m;
