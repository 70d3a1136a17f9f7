/*
 * muc_persist.h - what the protocol modules ask of persistence. Each call
 * queues an asynchronous write (muc_store.c) and returns at once; with no
 * store (m->store NULL, as in unit tests) it does nothing. The in-memory
 * room is always updated first by the caller: it is the truth for this
 * node, and the database catches up in order (one ordered queue).
 *
 * A room has a row when it is persistent or archived; affiliations and
 * archive rows hang off it.
 */
#ifndef MUC_PERSIST_H
#define MUC_PERSIST_H

#include <time.h>

#include "muc_types.h"

/* True if room should have a row in PostgreSQL. */
bool muc_persist_wanted(const muc_room_t *room);
/* Insert or update the room's row (configuration and subject), and, the
 * first time, every affiliation it has. A tombstone is never revived
 * here: the name comes back only through muc_lookup.c (after its
 * retirement, the tombstone is deleted first). */
void muc_persist_room(muc_t *m, muc_room_t *room);
/* Upsert (or delete, for MUC_AFF_NONE) bare's affiliation. by may be
 * NULL. */
void muc_persist_aff(muc_t *m, muc_room_t *room, const char *bare,
                     muc_aff_t aff, const char *nick, const char *by);
/* Archive one stamped groupchat message with its stanza-id. */
void muc_persist_archive(muc_t *m, muc_room_t *room, uint64_t seq, time_t at,
                         const char *nick, const char *from_jid,
                         const kn_stanza_t *msg);
/* Mark the room destroyed (tombstone: destroyed_at, and retired_until =
 * now + mucd.room_retire_days, until when the name cannot be taken again)
 * and drop its affiliations. */
void muc_persist_destroy(muc_t *m, muc_room_t *room, const char *reason);

#endif
