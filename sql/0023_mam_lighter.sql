-- 0023_mam_lighter.sql - a cheaper one-to-one archive insert (issue 11's
-- cost target; measurements in docs/PERFORMANCE.md). Same rows, same
-- queries; what each archived row costs PostgreSQL goes down:
--
-- - No foreign key from mam_messages to users. The key's trigger ran one
--   lookup + row lock per inserted row. presenced's batched insert joins
--   users itself and takes FOR KEY SHARE on each owner once per batch, so
--   an account removed meanwhile waits for the batch's commit; the trigger
--   below then removes the account's archive (what ON DELETE CASCADE did).
-- - mam_messages_id (a btree on id, used only by retention's id < cutoff)
--   is dropped: retention walks the accounts and takes each one's expired
--   rows from the primary key (username, id) instead (presenced/pres_mam.c
--   SQL_EXPIRE: one index probe per account per run, every
--   presenced.mam_expire_interval_ms). The primary key also serves queries
--   without `with` and the ON CONFLICT of a copy sent twice;
--   mam_messages_with (username, with_jid, id) serves queries with `with`.
-- - presenced no longer calls mam_wanted(): a SQL function with a FROM
--   clause is not inlined, so it ran as a separate executor call per row.
--   presenced's insert (presenced/pres_mam.c SQL_INSERT) evaluates the
--   same rule in the statement: a never JID, then an always JID, then the
--   user's default or presenced.mam_default (roster: the other party is
--   an item of the owner's roster). The function stays, so that a
--   presenced from before this migration still writes while the nodes are
--   upgraded one by one.

alter table mam_messages drop constraint mam_messages_username_fkey;

drop index mam_messages_id;

create function mam_messages_owner_gone() returns trigger
language plpgsql as $$
begin
    delete from mam_messages where username = old.username;
    return null;
end
$$;

create trigger mam_messages_owner_gone after delete on users
    for each row execute function mam_messages_owner_gone();
