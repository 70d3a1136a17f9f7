-- 0031_offline_handoff.sql - an offline message is stored once per
-- router hand-off (issue 14, R-PRES-5). The router keeps each message it
-- hands presenced (the offline handler) until presenced acknowledges it,
-- and hands what is left to the next presenced (after a kill -9); handoff
-- is the router's id for it, so a message the killed presenced stored
-- but did not acknowledge is not stored a second time. NULL for rows
-- stored without one (a router of an older build). Adding a nullable
-- column does not rewrite the table.

alter table offline_messages add column handoff bigint;
create unique index offline_messages_handoff on offline_messages (handoff)
    where handoff is not null;
