-- The dispatcher that holds an outbox row's lease. A claim writes the dispatcher's id here
-- and raises `attempts`; (lease_owner, attempts) is the claim's token, compared in the same
-- statement that renews the lease right before the send and in the statement that records
-- its outcome. A dispatcher whose claim outlived its lease and was taken over by another
-- therefore neither sends the message nor records anything about it (src/outbox.rs).
alter table outbox add column lease_owner text;
