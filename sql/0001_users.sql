-- 0001_users.sql - accounts and their SCRAM credentials.
--
-- Migrations are applied by `kilnctl db migrate`, each file inside one
-- transaction together with its schema_migrations row: no BEGIN/COMMIT
-- here, and never edit a file once it has shipped (add a new one).
--
-- username is the nodeprep-prepared local part of the user's bare JID
-- (the domain is the cluster's configured domain). Only what RFC 5802
-- lets a server keep is stored: per hash a salt, StoredKey and ServerKey,
-- plus the shared iteration count. Never a password, plain or hashed
-- some other way. Each hash has its own salt.

create table users (
    username          text primary key
                      check (octet_length(username) between 1 and 1023),
    created_at        timestamptz not null default now(),
    iterations        integer not null
                      check (iterations between 1 and 10000000),
    sha1_salt         bytea not null
                      check (octet_length(sha1_salt) between 1 and 64),
    sha1_stored_key   bytea not null
                      check (octet_length(sha1_stored_key) = 20),
    sha1_server_key   bytea not null
                      check (octet_length(sha1_server_key) = 20),
    sha256_salt       bytea not null
                      check (octet_length(sha256_salt) between 1 and 64),
    sha256_stored_key bytea not null
                      check (octet_length(sha256_stored_key) = 32),
    sha256_server_key bytea not null
                      check (octet_length(sha256_server_key) = 32)
);
