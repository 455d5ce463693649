-- Quiet hours in the recipient's time (issue 11, point 9).
--
-- phones.timezone: the IANA zone a household's record names for one of its numbers (a
-- migrant in Novosibirsk whose +7 number would otherwise be timed in Moscow); null: the
-- zone of the number's country, or the programme's own (checked by the application against
-- the IANA names it knows; here only bounded).
alter table phones add column timezone text
    check (timezone is null or (length(timezone) between 1 and 64 and timezone !~ '\s'));

-- outbox.timezone: the zone whose quiet hours a message that can wait (a broadcast's)
-- waits out; null for replies, receipts and codes, which go at once. The message's
-- next_attempt_at is set past the quiet hours of that zone when it is queued, and the
-- dispatcher puts one back that comes due (a retry, a backlog) inside them.
alter table outbox add column timezone text
    check (timezone is null or length(timezone) between 1 and 64);
