-- One rule for the projects a conversation lists, used by USSD and SMS alike: the open
-- projects of a community, and those closed after `since` (the earliest moment a
-- conversation still running may have begun), in id order. A caller who saw "1 Bridge"
-- keeps choosing the bridge with "1" after it closes (and is told it is closed), instead
-- of choosing whatever moved up to its place.
create function listed_projects(community bigint, since timestamptz) returns setof projects
language sql stable as $$
    select * from projects
    where community_id = community and (status = 'open' or closed_at > since)
    order by id
$$;
