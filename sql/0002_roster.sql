-- 0002_roster.sql - rosters and subscription states (RFC 6121), owned by
-- kiln-presenced.
--
-- One row per (user, contact). subscription is the RFC state as two bits
-- (1 = to: the user sees the contact; 2 = from: the contact sees the
-- user; 3 = both); ask_out is "pending out" (ask='subscribe'), pending_in
-- "pending in" (a request the user has not answered: re-delivered at each
-- login, R-PRES-4) with the request's status text; preapproved is RFC
-- 6121 3.4. in_roster is false for a row that only holds a pending
-- inbound request (RFC 6121 3.1.3: not shown until approved). groups are
-- kept verbatim (XEP-0083 nested names such as "A::B" included).
--
-- roster_versions.version counts every change to a user's roster; each
-- row remembers the version that last changed it (XEP-0237).

create table roster_versions (
    username text primary key references users(username) on delete cascade,
    version  bigint not null default 0
);

create table rosteritems (
    username       text not null references users(username) on delete cascade,
    jid            text not null check (octet_length(jid) between 1 and 3071),
    name           text,
    groups         text[] not null default '{}',
    subscription   smallint not null default 0 check (subscription between 0 and 3),
    ask_out        boolean not null default false,
    pending_in     boolean not null default false,
    pending_status text,
    preapproved    boolean not null default false,
    in_roster      boolean not null default true,
    ver            bigint not null default 0,
    primary key (username, jid)
);
