-- Issue 12: the USSD pledge statement may hand the pledge its code, made ahead by the
-- server process (src/store/pledge_codes.rs: the same FF1-AES-256 of 1,000,000 + a number
-- reserved from `pledge_code_seq`, under `code_secret`), instead of the trigger computing
-- it in PL/pgSQL (about a tenth of a pledge's database time).
--
-- The statement sets `hashar.pledge_code` for its transaction. The trigger takes that code
-- for the first pledge inserted after it was set, once (it clears the setting), if it is 7
-- digits and no pledge has it yet (codes issued before the FF1 scheme); otherwise, and for
-- every insert path that sets nothing, it makes the code itself as before. The unique
-- constraint on `pledges.code` stays the last word.
create or replace function pledges_code() returns trigger language plpgsql as $$
declare
    v_given text := nullif(current_setting('hashar.pledge_code', true), '');
begin
    if new.code is null and v_given is not null then
        perform set_config('hashar.pledge_code', '', true);
        if v_given ~ '^[1-9][0-9]{6}$' and not exists (select 1 from pledges where code = v_given) then
            new.code := v_given;
        end if;
    end if;
    if new.code is null then
        new.code := new_pledge_code();
    end if;
    return new;
end $$;
