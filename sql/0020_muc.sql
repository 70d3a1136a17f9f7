-- 0020_muc.sql - multi-user chat: rooms, affiliations (membership), the
-- room archive. Owned by kiln-mucd (and `kilnctl group-room`).
--
-- muc_room: one row per persistent or archived room, keyed by its bare
-- JID. A destroyed room keeps its row as a tombstone (destroyed_at set,
-- affiliations deleted; Openfire's ofMucRoomRetiree) so its archive
-- survives and the name is not silently reused; re-creating the room
-- revives the row.
--
-- muc_affiliation is membership, independent of presence (R-GRP-2):
-- written with idempotent upserts (insert ... on conflict do update), so
-- adding a member twice is not an error. 'none' is the absence of a row.
--
-- muc_archive: every groupchat message of an archived room, keyed by the
-- room's stanza-id (XEP-0359), a per-room counter that only grows, which
-- is also the MAM/RSM paging key (R-GRP-5).
--
-- Writers announce changes with pg_notify('kiln_muc', '<origin>|<room
-- jid>'); every mucd LISTENs and reloads the room (R-GRP-2, R-CACHE-3).

create table muc_room (
    id                    bigserial primary key,
    jid                   text not null unique
                          check (octet_length(jid) between 3 and 3071),
    node                  text not null,
    service               text not null,
    title                 text,
    description           text,
    password              text,
    persistent            boolean not null default true,
    members_only          boolean not null default false,
    moderated             boolean not null default false,
    public_room           boolean not null default true,
    change_subject        boolean not null default false,
    allow_invites         boolean not null default false,
    mam                   boolean not null default false,
    offline_delivery      boolean not null default false,
    invite_adds_member    boolean not null default false,
    is_group              boolean not null default false,
    whois                 text not null default 'moderators'
                          check (whois in ('moderators', 'anyone')),
    allow_pm              text not null default 'anyone'
                          check (allow_pm in ('anyone', 'participants',
                                              'moderators', 'none')),
    history_mode          text not null default 'number'
                          check (history_mode in ('none', 'number', 'all')),
    history_max           integer not null default 25
                          check (history_max >= 0),
    max_occupants         integer not null default 0
                          check (max_occupants >= 0),
    max_occupant_presence integer not null default 0
                          check (max_occupant_presence >= 0),
    occupant_presence     boolean not null default true,
    subject               text,
    subject_from          text,
    created_at            timestamptz not null default now(),
    destroyed_at          timestamptz,
    destroy_reason        text
);

create index muc_room_service on muc_room (service) where destroyed_at is null;

create table muc_affiliation (
    room_id     bigint not null references muc_room (id) on delete cascade,
    bare_jid    text not null check (octet_length(bare_jid) between 1 and 3071),
    affiliation text not null
                check (affiliation in ('owner', 'admin', 'member', 'outcast')),
    nick        text,
    added_by    text,
    added_at    timestamptz not null default now(),
    primary key (room_id, bare_jid)
);

create index muc_affiliation_jid on muc_affiliation (bare_jid);

create table muc_archive (
    room_id  bigint not null references muc_room (id) on delete cascade,
    id       bigint not null check (id > 0),
    at       timestamptz not null default now(),
    nick     text not null,
    from_jid text,
    stanza   text not null,
    primary key (room_id, id)
);
