-- tests/bench/mam_schema_0022.sql - puts mam_messages back as migration
-- 0022 left it (foreign key to users, btree on id, mam_wanted()), for
-- tests/bench/path_ab.sh KILN_AB_SQL_A when build A is from before 0023.
-- The table must be empty (path_ab.sh truncates it first).
drop trigger if exists mam_messages_owner_gone on users;
alter table mam_messages drop constraint if exists mam_messages_username_fkey;
alter table mam_messages add constraint mam_messages_username_fkey
    foreign key (username) references users(username) on delete cascade;
create index if not exists mam_messages_id on mam_messages (id);
create or replace function mam_wanted(owner text, peer text, dflt text)
returns boolean language sql stable as $$
    select case
        when p.never_jids @> array[peer] then false
        when p.always_jids @> array[peer] then true
        else case coalesce(p.default_mode, dflt)
            when 'always' then true
            when 'never' then false
            else exists (select 1 from rosteritems r
                         where r.username = owner and r.jid = peer
                           and r.in_roster)
        end
    end
    from (select 1) as one
    left join mam_prefs p on p.username = owner
$$;
