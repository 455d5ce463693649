-- Pledge codes and family join codes are random, checked against the codes already
-- committed. Two transactions that drew the same candidate at the same moment both passed
-- that check, and the second then failed on the unique index (the SMS benchmark met it
-- once in ~50,000 pledges at 64 senders: a 500 to the aggregator, "busy" on USSD).
-- Now each candidate is taken under a transaction-scoped advisory lock first: the second
-- transaction waits until the first ends, then sees its code and draws another.
-- The lock keys: (1, n) for join codes, (2, n) for pledge codes.

create or replace function new_join_code() returns text language plpgsql volatile as $$
declare
    candidate integer;
begin
    loop
        candidate := floor(random() * 900000)::integer + 100000;
        perform pg_advisory_xact_lock(1, candidate);
        exit when not exists (select 1 from households where join_code = candidate::text);
    end loop;
    return candidate::text;
end $$;

create or replace function new_pledge_code() returns text language plpgsql volatile as $$
declare
    candidate integer;
begin
    loop
        candidate := floor(random() * 9000000)::integer + 1000000;
        perform pg_advisory_xact_lock(2, candidate);
        exit when not exists (select 1 from pledges where code = candidate::text);
    end loop;
    return candidate::text;
end $$;
