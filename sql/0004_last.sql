-- 0004_last.sql - last activity and last unavailable presence (XEP-0012,
-- R-DROP-3, R-PRES-6), owned by kiln-presenced: written when a user's
-- last session goes unavailable, deleted when the first comes back.
-- presence_xml is kept only when the unavailable presence had children.

create table last_presence (
    username     text primary key references users(username) on delete cascade,
    presence_xml text,
    status       text,
    offline_at   timestamptz not null default now()
);
