-- 0021_muc_retire.sql - how long a destroyed room's name stays retired
-- (R-GRP-7, Openfire's ofMucRoomRetiree).
--
-- A destroyed room keeps its muc_room row as a tombstone (0020). mucd sets
-- retired_until = destroyed_at + mucd.room_retire_days when it destroys a
-- room; until then neither a join (mucd answers <not-allowed/>) nor
-- `kilnctl group-room create` may take the name. After it, creating the
-- room deletes the tombstone (and the old archive with it) and starts a
-- new room. The period is fixed at destruction, so kilnctl needs no mucd
-- settings. Rooms destroyed before this migration get the default 30 days.

alter table muc_room add column retired_until timestamptz;

update muc_room set retired_until = destroyed_at + interval '30 days'
    where destroyed_at is not null;

alter table muc_room add constraint muc_room_retired_when_destroyed
    check (retired_until is null or destroyed_at is not null);
