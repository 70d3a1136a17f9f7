-- tests/bench/mam_schema_0023.sql - mam_messages as migration 0023 leaves
-- it (no foreign key, no index on id alone, the users trigger), for
-- tests/bench/path_ab.sh KILN_AB_SQL_B after mam_schema_0022.sql ran for
-- build A on the same database.
alter table mam_messages drop constraint if exists mam_messages_username_fkey;
drop index if exists mam_messages_id;
create or replace trigger mam_messages_owner_gone after delete on users
    for each row execute function mam_messages_owner_gone();
