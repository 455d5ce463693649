-- Pledge and join codes that cannot be predicted without a 256-bit server secret.
--
-- `..._codes_without_locks` passed a sequence through a 4-round Feistel network keyed with
-- ~25 effective bits: three consecutive family codes (three own registrations) gave the key
-- by brute force in a second, and with it every code issued and to come. Now the sequence
-- number goes through FF1 (NIST SP 800-38G rev. 1, format-preserving encryption) with
-- AES-256 under a 256-bit key drawn once, here, from the server's CSPRNG (pgcrypto's
-- gen_random_bytes, OpenSSL). Still a bijection, so still unique by construction and
-- without a lock per code; still in SQL, so every path that inserts a household or a
-- pledge (USSD, SMS, the admin API, demo data, bulk inserts, SQL functions) gets its code
-- from the same `before insert` triggers as before.
--
-- AES is pgcrypto's (OpenSSL's); only FF1's ten-round Feistel structure around it is
-- written here (about thirty lines), because a Rust crate cannot run inside the triggers
-- and moving code assignment out of SQL would leave every SQL insert path without a code.
-- tests/codes.rs checks this function against the RustCrypto-family `fpe` crate and the
-- NIST sample vectors.
--
-- Codes issued before keep their values; a new code equal to one of them is skipped (those
-- rows are committed, so the check sees them) and the next sequence number is taken.

create extension if not exists pgcrypto;

create table code_secret (
    id  boolean primary key default true check (id),
    key bytea not null check (octet_length(key) = 32)
);
insert into code_secret (key) values (gen_random_bytes(32));
-- The secret is never shown by the API; the old 40-bit keys are gone.
drop table code_keys;
drop function keyed_permutation(bigint, integer, bigint, bigint);

-- FF1 encryption of the p_n-digit decimal number p_x (leading zeros count as digits) with
-- an empty tweak under the AES key p_key (16, 24 or 32 bytes: AES-128/192/256).
-- Limited to 2 <= p_n <= 18 (then b <= 4 and d = 8: one AES block per round, and every
-- number fits a bigint).
create function ff1_encrypt_decimal(p_x bigint, p_n integer, p_key bytea)
returns bigint language plpgsql immutable strict as $$
declare
    u integer := p_n / 2;
    v integer := p_n - p_n / 2;
    b integer := ceil(ceil(v * log(2, 10)) / 8)::integer;
    a bigint;
    bb bigint;
    c numeric;
    m integer;
    p bytea;
    q bytea;
    r bytea;
    y numeric;
begin
    if p_n < 2 or p_n > 18 or p_x < 0 or p_x >= (10::numeric ^ p_n) then
        raise exception 'ff1_encrypt_decimal(%, %): out of range', p_x, p_n;
    end if;
    a := p_x / (10::numeric ^ v)::bigint;
    bb := p_x % (10::numeric ^ v)::bigint;
    -- P = [1]^1 [2]^1 [1]^1 [radix]^3 [10]^1 [u mod 256]^1 [n]^4 [t]^4
    p := '\x010201'::bytea || '\x00000a0a'::bytea || set_byte('\x00'::bytea, 0, u % 256)
         || substr(int4send(p_n), 1, 4) || '\x00000000'::bytea;
    for i in 0..9 loop
        -- Q = [0]^((-t-b-1) mod 16) [i]^1 [NUM(B)]^b, t = 0
        q := substr('\x00000000000000000000000000000000'::bytea, 1, 15 - b)
             || set_byte('\x00'::bytea, 0, i) || substr(int8send(bb), 9 - b, b);
        -- R = PRF(P || Q): CBC-MAC, the last block of AES-CBC with a zero IV
        r := substr(encrypt_iv(p || q, p_key, '\x00000000000000000000000000000000'::bytea,
                               'aes-cbc/pad:none'), 17, 16);
        -- y = NUM(S), S = the first d = 8 bytes of R (unsigned)
        y := ('x' || encode(substr(r, 1, 8), 'hex'))::bit(64)::bigint::numeric;
        if y < 0 then
            y := y + 18446744073709551616::numeric;
        end if;
        m := case when i % 2 = 0 then u else v end;
        c := mod(a::numeric + y, 10::numeric ^ m);
        a := bb;
        bb := c::bigint;
    end loop;
    return a * (10::numeric ^ v)::bigint + bb;
end $$;

-- A bijection on [p_low, 10^p_n): FF1 walked again while the value falls below p_low
-- (cycle walking; 1.1 rounds on average for the domains used here).
create function ff1_code(p_x bigint, p_n integer, p_low bigint, p_key bytea)
returns bigint language plpgsql immutable strict as $$
declare
    v bigint := p_x;
begin
    if p_x < p_low then
        raise exception 'ff1_code(%): below %', p_x, p_low;
    end if;
    loop
        v := ff1_encrypt_decimal(v, p_n, p_key);
        exit when v >= p_low;
    end loop;
    return v;
end $$;

-- 7 digits, never a leading zero: FF1 on [1,000,000, 10,000,000) of 1,000,000 + n.
create or replace function new_pledge_code() returns text language plpgsql volatile as $$
declare
    v_key bytea := (select key from code_secret);
    candidate text;
begin
    loop
        candidate := ff1_code(1000000 + nextval('pledge_code_seq'), 7, 1000000, v_key)::text;
        exit when not exists (select 1 from pledges where code = candidate);
    end loop;
    return candidate;
end $$;

-- 6 digits: FF1 on [100,000, 1,000,000) of 100,000 + n.
create or replace function new_join_code() returns text language plpgsql volatile as $$
declare
    v_key bytea := (select key from code_secret);
    candidate text;
begin
    loop
        candidate := ff1_code(100000 + nextval('join_code_seq'), 6, 100000, v_key)::text;
        exit when not exists (select 1 from households where join_code = candidate);
    end loop;
    return candidate;
end $$;

-- Wrong join codes from all numbers in the last hour (src/sms.rs counts them under one
-- lock with the per-number ones).
create index join_attempts_wrong_idx on join_attempts (attempted_at) where not succeeded;
