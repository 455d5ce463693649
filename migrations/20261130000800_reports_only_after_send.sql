-- A delivery report moves a message only once it has been sent (issue 8, point 11).
--
-- A report naming a message still `queued` (never handed to the provider) used to move it
-- to delivered and stop its retries; outbox ids are sequential, so anyone who could reach
-- the webhook could suppress every pending SMS. Now:
-- * `apply_delivery` changes only messages that are `sent`, `delivered` or `failed`
--   (forward only, as before) and returns null for any other;
-- * a report that names our id for a message still `sending` (a fast operator: Kannel and
--   Infobip can report before the dispatcher has recorded the send) waits in
--   `early_delivery_reports` (new column `outbox_ref`) and is applied once the send is
--   recorded; one naming a `queued` message is refused (src/outbox.rs `keep_early_report`);
-- * reports still waiting after 7 days are pruned (deleted: they changed nothing), by
--   `apply_early_delivery_reports`, which the dispatcher runs after each round and when idle.

create or replace function apply_delivery(p_provider text, p_id bigint, p_pid text, p_state text,
                                          p_provider_status text, p_reason text, p_at timestamptz)
returns bigint language plpgsql as $$
declare
    v_id bigint;
    v_rank int := case p_state when 'sent' then 1 else 2 end;
begin
    update outbox
       set status = case
               when status in ('delivered', 'failed') then status
               when v_rank = 2 then p_state
               else status end,
           provider_status = case when status in ('delivered', 'failed') then provider_status else p_provider_status end,
           last_error = case when p_state = 'failed' and status = 'sent'
                             then coalesce(p_reason, last_error) else last_error end,
           delivered_at = case when p_state = 'delivered' and status = 'sent' then p_at else delivered_at end,
           failed_at = case when p_state = 'failed' and status = 'sent' then p_at else failed_at end,
           updated_at = greatest(updated_at, p_at)
     where provider = p_provider and (id = p_id or provider_msg_id = p_pid)
       and status in ('sent', 'delivered', 'failed')
    returning id into v_id;
    return v_id;
end $$;

alter table early_delivery_reports alter column provider_msg_id drop not null;
alter table early_delivery_reports add column outbox_ref bigint references outbox (id);
alter table early_delivery_reports add constraint early_delivery_reports_names_a_message
    check (provider_msg_id is not null or outbox_ref is not null);

-- Applied reports are history and stay; waiting ones may be pruned.
drop trigger early_delivery_reports_no_delete on early_delivery_reports;
create trigger early_delivery_reports_no_delete before delete on early_delivery_reports
    for each row when (old.applied_at is not null) execute function forbid_delete();

create or replace function apply_early_delivery_reports(p_now timestamptz) returns integer
language plpgsql as $$
declare
    r record;
    v_done integer := 0;
begin
    delete from early_delivery_reports
     where applied_at is null and received_at < p_now - interval '7 days';
    for r in
        select e.id, e.provider, e.state, e.provider_status, e.reason, e.received_at,
               o.id as outbox_id
          from early_delivery_reports e
          join outbox o on o.provider = e.provider
                       and (o.provider_msg_id = e.provider_msg_id or o.id = e.outbox_ref)
         where e.applied_at is null and e.received_at > p_now - interval '2 days'
           and o.status in ('sent', 'delivered', 'failed')
         order by e.received_at, e.id
           for update of e skip locked
    loop
        perform apply_delivery(r.provider, r.outbox_id, null, r.state, r.provider_status,
                               r.reason, r.received_at);
        update early_delivery_reports set outbox_id = r.outbox_id, applied_at = p_now
         where id = r.id;
        v_done := v_done + 1;
    end loop;
    return v_done;
end $$;
