-- 0008_push.sql - push registrations (XEP-0357), owned by kiln-presenced.
--
-- One row per app server registration of a user: the app server's JID
-- (prepared) and its node, unique per user (an enable with the same jid and
-- node replaces the row). options is the serialized publish-options data
-- form the client gave (sent with every notification), NULL when none.
-- muted holds bare JIDs (rooms or contacts) whose messages this
-- registration is not notified of (Kiln's kiln#muted enable-form field).

create table push_registrations (
    username   text not null references users(username) on delete cascade,
    jid        text not null check (octet_length(jid) between 1 and 3071),
    node       text not null check (octet_length(node) between 1 and 1023),
    options    text,
    muted      text[] not null default '{}',
    created_at timestamptz not null default now(),
    primary key (username, jid, node)
);
