-- 0024_mam_owner_cache.sql - presenced decides most archive rows itself
-- (issue 11's cost target; docs/PERFORMANCE.md). It caches each owner's
-- account and preferences (presenced/pres_mam.c, "the owners'
-- preferences, cached") and writes a batch of rows it decided with a
-- plain insert, without the per-row users / mam_prefs probes and row
-- lock of 0023's statement. A batch it decided can therefore commit just
-- after its owner was removed (after the removal's trigger deleted the
-- owner's rows): presenced deletes such rows when it hears of the removal
-- (the credential cache's channel), and, should that message be lost,
-- creating an account of the same name removes whatever archive rows
-- that name still has, so a new account never sees an old one's archive.

create function mam_messages_owner_new() returns trigger
language plpgsql as $$
begin
    delete from mam_messages where username = new.username;
    return null;
end
$$;

create trigger mam_messages_owner_new after insert on users
    for each row execute function mam_messages_owner_new();
