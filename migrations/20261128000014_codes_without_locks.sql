-- Pledge and join codes without a lock per code.
--
-- `..._code_races` made two transactions that drew the same random code wait for each
-- other with an advisory lock per drawn code. Those locks last until commit, so a
-- transaction that inserts many pledges at once (a bulk import) ran out of lock slots
-- ("out of shared memory" after a few thousand rows). Now a code is a sequence number
-- passed through a keyed permutation: unique by construction (two transactions can never
-- get the same number from a sequence), still short and unpredictable-looking, no lock.
-- The per-installation key is drawn once, here. A permuted number that happens to equal a
-- code from the random scheme before it is skipped (those rows are committed, so the
-- check sees them).

-- A bijection on [0, p_domain) for p_domain <= 2^p_bits (p_bits even, at most 40): a
-- 4-round Feistel network on p_bits bits, walked again until the value falls inside the
-- domain (fewer than 2 rounds on average for the domains used here).
create function keyed_permutation(p_n bigint, p_bits integer, p_domain bigint, p_key bigint)
returns bigint language plpgsql immutable strict as $$
declare
    half integer := p_bits / 2;
    mask bigint := (1::bigint << (p_bits / 2)) - 1;
    v bigint := p_n;
    l bigint;
    r bigint;
    t bigint;
begin
    if p_n < 0 or p_n >= p_domain or p_domain > (1::bigint << p_bits) or p_bits % 2 <> 0 or p_bits > 40 then
        raise exception 'keyed_permutation(%, %, %): out of range', p_n, p_bits, p_domain;
    end if;
    loop
        l := v >> half;
        r := v & mask;
        for round in 1..4 loop
            t := r;
            -- any function of (r, key, round) makes a Feistel round a bijection; masked
            -- first, the product stays below 2^51
            r := l # (((((r # (p_key >> (round * 5))) & mask) * 1103515245 + round * 12345) >> 7) & mask);
            l := t;
        end loop;
        v := (l << half) | r;
        exit when v < p_domain;
    end loop;
    return v;
end $$;

create table code_keys (
    kind text primary key check (kind in ('pledge', 'join')),
    key  bigint not null check (key >= 0 and key < (1::bigint << 40))
);
insert into code_keys (kind, key)
select kind, floor(random() * (1::bigint << 40))::bigint from unnest(array['pledge', 'join']) kind;

create sequence pledge_code_seq minvalue 0 start 0 maxvalue 8999999 no cycle;
create sequence join_code_seq minvalue 0 start 0 maxvalue 899999 no cycle;

-- 7 digits, never a leading zero: 1,000,000 + a permutation of 0..8,999,999.
create or replace function new_pledge_code() returns text language plpgsql volatile as $$
declare
    v_key bigint := (select key from code_keys where kind = 'pledge');
    candidate text;
begin
    loop
        candidate := (1000000 + keyed_permutation(nextval('pledge_code_seq'), 24, 9000000, v_key))::text;
        exit when not exists (select 1 from pledges where code = candidate);
    end loop;
    return candidate;
end $$;

-- 6 digits: 100,000 + a permutation of 0..899,999.
create or replace function new_join_code() returns text language plpgsql volatile as $$
declare
    v_key bigint := (select key from code_keys where kind = 'join');
    candidate text;
begin
    loop
        candidate := (100000 + keyed_permutation(nextval('join_code_seq'), 20, 900000, v_key))::text;
        exit when not exists (select 1 from households where join_code = candidate);
    end loop;
    return candidate;
end $$;
