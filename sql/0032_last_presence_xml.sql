-- 0032_last_presence_xml.sql - the rows a login reads (issue 15).
--
-- At each login presenced sends the new resource the stored unavailable
-- presence of its offline contacts; only rows with presence_xml (the
-- unavailable presence had children) are sent, most have none. This
-- index holds just those rows, so the read skips the rest instead of
-- joining the contact list with every row (0.5 ms of PostgreSQL per
-- 100-contact login with 1,505 rows, a sequential scan and a hash join).

create index last_presence_with_xml on last_presence (username)
    where presence_xml is not null;
