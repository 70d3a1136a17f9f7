-- 0005_shared_groups.sql - admin-defined shared roster groups (R-ROSTER-2),
-- edited by `kilnctl group ...`, read by kiln-presenced.
--
-- visibility: nobody (not shown), everybody (every user sees the members),
-- only_group (members see each other). Members appear with subscription
-- both in group display_name. Every edit inserts a shared_group_changes
-- row in the same transaction; presenced polls that table and pushes the
-- change to online users at once (R-CACHE-3), and its max(id) is part of
-- every roster version string.

create table shared_groups (
    name         text primary key check (octet_length(name) between 1 and 1023),
    display_name text not null check (octet_length(display_name) between 1 and 1023),
    visibility   text not null default 'only_group'
                 check (visibility in ('nobody', 'everybody', 'only_group')),
    created_at   timestamptz not null default now()
);

create table shared_group_members (
    group_name text not null references shared_groups(name) on delete cascade,
    username   text not null references users(username) on delete cascade,
    primary key (group_name, username)
);
create index shared_group_members_user on shared_group_members (username);

create table shared_group_changes (
    id         bigserial primary key,
    group_name text not null,
    username   text,
    op         text not null,
    at         timestamptz not null default now()
);
