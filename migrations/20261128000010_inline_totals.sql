-- Planning cost: `screen_amount` was STRICT around a non-strict CASE, and
-- `project_total_texts` a SQL function with a FROM; neither could be inlined, so PostgreSQL
-- re-parsed and re-planned them on every call (about a third of its CPU under the SMS
-- benchmark). Without STRICT the first inlines; as PL/pgSQL the second keeps its plan.
create or replace function screen_amount(x numeric) returns text
language sql immutable as $$
    select case when x is null then null
                when round(x, 2) = trunc(x) then trunc(x)::text
                else round(x, 2)::numeric(20, 2)::text end
$$;

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
        'currency', t.currency)
    into v
    from project_totals t where t.project_id = p_project;
    return v;
end $$;
