-- 0006_user_storage.sql - per-user storage served by kiln-presenced:
-- private XML (XEP-0049), block lists (XEP-0191), vCards (XEP-0054).

create table private_storage (
    username  text not null references users(username) on delete cascade,
    namespace text not null,
    name      text not null,
    xml       text not null,
    primary key (username, namespace, name)
);

create table blocklist (
    username text not null references users(username) on delete cascade,
    jid      text not null,
    primary key (username, jid)
);

create table vcards (
    username   text primary key references users(username) on delete cascade,
    xml        text not null,
    photo_hash text,
    updated_at timestamptz not null default now()
);
