-- 0022_mam.sql - the one-to-one message archive (XEP-0313), owned by
-- kiln-presenced (presenced/pres_mam.c).
--
-- One row per (owner, message): a message between two local users is in
-- both archives, with the same id. ids come from kiln-router
-- (router_mam.c): milliseconds since the epoch << 16 plus a counter, so
-- they order the archive and carry the message's time (start/end filters
-- and retention are id ranges). with_jid is the other party's bare JID;
-- outgoing is true in the sender's archive. stanza is the message as the
-- sender's client sent it (from stamped), without our stanza-id.
--
-- mam_prefs holds a user's XEP-0313 preferences; no row: the default of
-- presenced.mam_default. mam_wanted() is what the batched insert checks
-- per row: a never JID, then an always JID, then the default (roster: the
-- other party is an item of the owner's roster).

create table mam_messages (
    username   text not null references users(username) on delete cascade,
    id         bigint not null check (id > 0),
    with_jid   text not null,
    outgoing   boolean not null,
    stanza     text not null,
    primary key (username, id)
);
create index mam_messages_with on mam_messages (username, with_jid, id);
create index mam_messages_id on mam_messages (id);

create table mam_prefs (
    username     text primary key references users(username) on delete cascade,
    default_mode text not null check (default_mode in ('always', 'never', 'roster')),
    always_jids  text[] not null default '{}',
    never_jids   text[] not null default '{}'
);

create function mam_wanted(owner text, peer text, dflt text) returns boolean
language sql stable as $$
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
