-- Issue 12: how far back "the same pledge" is looked for is a setting
-- (`HASHAR_PLEDGE_REPEAT_MINUTES`, default 10), given to every connection of the
-- application's pools as `hashar.pledge_repeat_minutes`; where it is not set (psql, SQL by
-- hand) it stays 10 minutes. 0 never asks: the same statements run and find nothing.
--
-- Why a setting: the peer comparison's phones (../shared/peers) pledge the same amount to
-- the same project every few seconds; with the 10-minute question most of Hashar's pledge
-- sessions ended at the question and made no pledge, so Hashar did less work than the
-- peer, which pledges every time. Benchmarks now run with 0.
create or replace function recent_pledge(p_phone text, p_project bigint, p_amount numeric, p_now timestamptz, p_key text)
returns jsonb
language plpgsql stable as $$
declare
    v_household bigint;
    v_minutes integer := coalesce(nullif(current_setting('hashar.pledge_repeat_minutes', true), '')::integer, 10);
begin
    -- The household first, then its pledges: with both the household and the project given,
    -- the plan reads the household's index whatever the statistics say (a plan made before
    -- any ANALYZE chose the project's recent pledges, all of them, and kept that plan).
    select household_id into v_household from phones where phone = p_phone;
    if v_household is null then
        return null;
    end if;
    return (
        select jsonb_build_object(
            'ask', '1',
            'minutes', least(v_minutes, greatest(1, ceil(extract(epoch from (p_now - pl.created_at)) / 60)))::int::text)
        from pledges pl
        where pl.household_id = v_household and pl.project_id = p_project and pl.amount = p_amount
          and pl.status <> 'cancelled' and pl.idempotency_key <> p_key
          and pl.created_at > p_now - v_minutes * interval '1 minute'
        order by pl.created_at desc
        limit 1);
end $$;
