-- 0007_pep.sql - Personal Eventing Protocol (XEP-0163 on XEP-0060), owned
-- by kiln-presenced.
--
-- One row in pep_nodes per node of a user (the node is the user's bare
-- JID plus its name), created on first publish (auto-create) or by an
-- explicit create, with the three settings we honour: access model,
-- whether items persist, how many are kept. send_last is stored so that
-- publish-options that name it can be compared, nothing more.
-- pep_items holds the payloads (one serialized XML element each); the item
-- id is unique per node, a publish with an existing id replaces the row
-- and gives it a new seq, so "the N most recent" is "the N highest seq".

create table pep_nodes (
    username      text not null references users(username) on delete cascade,
    node          text not null check (octet_length(node) between 1 and 1023),
    access_model  text not null default 'presence'
                  check (access_model in ('open', 'presence', 'whitelist')),
    persist_items boolean not null default true,
    max_items     integer not null default 1 check (max_items >= 1),
    send_last     text not null default 'on_sub_and_presence'
                  check (send_last in ('never', 'on_sub',
                                       'on_sub_and_presence')),
    created_at    timestamptz not null default now(),
    primary key (username, node)
);

create sequence pep_items_seq;

create table pep_items (
    username   text not null,
    node       text not null,
    item_id    text not null check (octet_length(item_id) between 1 and 1023),
    payload    text not null,
    publisher  text not null,
    seq        bigint not null default nextval('pep_items_seq'),
    updated_at timestamptz not null default now(),
    primary key (username, node, item_id),
    foreign key (username, node) references pep_nodes (username, node)
        on delete cascade
);
create index pep_items_seq_idx on pep_items (username, node, seq);
