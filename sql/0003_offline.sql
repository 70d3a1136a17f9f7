-- 0003_offline.sql - offline messages (XEP-0160, R-ARCH-3, R-PERF-6),
-- owned by kiln-presenced. One row per stored message, delivered in id
-- order after the user's initial presence and deleted once sent.
-- bytes is the stanza's size, summed against presenced.offline_quota_bytes.

create table offline_messages (
    id         bigserial primary key,
    username   text not null references users(username) on delete cascade,
    sender     text not null,
    stanza     text not null,
    bytes      integer not null check (bytes >= 0),
    created_at timestamptz not null default now()
);
create index offline_messages_user on offline_messages (username, id);
