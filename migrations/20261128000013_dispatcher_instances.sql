-- The server instances currently sending SMS through each provider, with a heartbeat:
-- each takes an equal share of HASHAR_SMS_RATE (see src/outbox/rate.rs). Rows come and go
-- with the instances; nothing here is a record worth keeping.
create table dispatcher_instances (
    instance_id  text primary key,
    provider     text not null,
    started_at   timestamptz not null,
    heartbeat_at timestamptz not null
);
create index dispatcher_instances_provider_idx on dispatcher_instances (provider, heartbeat_at);
