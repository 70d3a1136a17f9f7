-- 0030_admin.sql - operator actions from kilnctl (issue 14).
--
-- users.disabled: `kilnctl user disable` sets it; a disabled account
-- fails SASL with <account-disabled/> (RFC 6120 6.5) and its sessions
-- are ended.
--
-- admin_commands: kilnctl is not on the ZeroMQ bus, so `session kick`,
-- `user disable` and `announce` append a row here; kiln-presenced takes
-- the rows (delete ... returning) on its poll (presenced.shared_poll_ms)
-- and acts: a KICK to the router for each matching session, or a
-- headline message to every online session.

alter table users add column disabled boolean not null default false;

create table admin_commands (
    id         bigserial primary key,
    kind       text not null check (kind in ('kick', 'disable', 'announce')),
    arg        text not null check (octet_length(arg) between 1 and 65536),
    created_at timestamptz not null default now()
);
