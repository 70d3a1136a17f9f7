/*
 * muc_lookup.c - a stanza for a room that is not in memory.
 *
 * Every room with a row is loaded at start and reloaded when a writer's
 * pg_notify names it, but a notification can lag behind a client: an
 * administrator runs `kilnctl group-room create` and `add-member`, and the
 * member's join may reach mucd before the NOTIFY (R-GRP-2). Treating that
 * join as the creation of a new instant room would make the member its
 * owner and shadow the real group. A destroyed room's name is also
 * retired for a while (R-GRP-7), which only the database knows once the
 * room is gone from memory. So a stanza that would act on a room this
 * node does not hold waits for one question to PostgreSQL:
 *
 *   - the room has a live row: it is loaded (configuration,
 *     affiliations, history tail; members get their bookmark, as for any
 *     room added elsewhere), then the waiting stanzas are handled;
 *   - a tombstone still retired (retired_until in the future): the
 *     stanzas are handled with MUC_LOOKUP_RETIRED, so a join is refused
 *     with <not-allowed/>, XEP-0045's answer when room creation is
 *     restricted (10.1.1) - not <conflict/>, which a client reads as "nick
 *     in use" and would answer with another nick;
 *   - a tombstone whose retirement is over: it is deleted (its archive
 *     with it) on the ordered queue, then as for no row;
 *   - no row: MUC_LOOKUP_FREE, a join creates an instant room.
 *
 * A note on order. The question goes through the ordered store queue
 * (muc_store.c), behind this node's own writes, so it sees a destroy this
 * node queued a moment ago. While a room is being looked up, every later
 * stanza to it (a leave after a join, a message after a join) queues
 * behind the first, and all are handled in arrival order. When the
 * session of a waiting stanza ends (SESSION_DOWN), its stanzas are
 * dropped, so no join of a dead session becomes an occupant.
 *
 * Bounds: LOOKUP_MAX_ROOMS rooms looked up at once, LOOKUP_MAX_QUEUE
 * stanzas waiting per room; past either the stanza gets
 * <resource-constraint/>. Stanzas that do nothing to an unknown room
 * (leaves, errors, iq results) are not worth a question.
 */
#include "muc_lookup.h"

#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "muc_load.h"
#include "muc_out.h"
#include "muc_room.h"
#include "muc_service.h"
#include "muc_store.h"

#define LOOKUP_MAX_ROOMS 1024
#define LOOKUP_MAX_QUEUE 256
#define LOOKUP_MAX_TRIES 3

typedef struct lookup_item {
    kn_stanza_t *st;
    uint64_t conn;
    char *from;
    char *from_bare;
    char *nick;
    struct lookup_item *next;
} lookup_item_t;

struct muc_lookup {
    char *room; /* key */
    muc_t *m;
    lookup_item_t *head;
    lookup_item_t **tail;
    size_t n;
    unsigned tries;
    UT_hash_handle hh;
};

static void lookup_ask(struct muc_lookup *l);

static void lookup_item_free(lookup_item_t *it)
{
    kn_stanza_unref(&it->st);
    free(it->from);
    free(it->from_bare);
    free(it->nick);
    free(it);
}

/* Would st do something to a room that does not exist? */
static bool lookup_wanted(const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    switch (kn_stanza_kind(st)) {
    case KN_STANZA_PRESENCE:
        return type == NULL; /* a join; leaves and errors do nothing */
    case KN_STANZA_MESSAGE:
        return type == NULL || strcmp(type, "error") != 0;
    case KN_STANZA_IQ:
        return type != NULL &&
               (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
    default:
        return false;
    }
}

static void lookup_append(struct muc_lookup *l, const muc_in_t *in)
{
    lookup_item_t *it = kn_calloc(1, sizeof(*it));
    it->st = kn_stanza_ref((kn_stanza_t *)in->st);
    it->conn = in->conn;
    it->from = kn_strdup(in->from);
    it->from_bare = kn_strdup(in->from_bare);
    it->nick = in->nick ? kn_strdup(in->nick) : NULL;
    *l->tail = it;
    l->tail = &it->next;
    l->n++;
}

/* Take l out of the table; the caller frees its items and l. */
static lookup_item_t *lookup_detach(struct muc_lookup *l)
{
    muc_t *m = l->m;
    HASH_DEL(m->lookups, l);
    m->nlookups--;
    lookup_item_t *head = l->head;
    l->head = NULL;
    l->tail = &l->head;
    l->n = 0;
    return head;
}

static void lookup_free(struct muc_lookup *l)
{
    free(l->room);
    free(l);
}

/* Handle the waiting stanzas in order. Until the room exists, they carry
 * res; once it does (a join created it, or it was loaded), they go as
 * usual, and if it disappears again (destroyed by one of them) the rest
 * start a new look-up. */
static void lookup_replay(struct muc_lookup *l, muc_lookup_res_t res,
                          const char *until)
{
    muc_t *m = l->m;
    lookup_item_t *it = lookup_detach(l);
    bool seen = false;
    while (it != NULL) {
        lookup_item_t *next = it->next;
        seen = seen || muc_room_find(m, l->room) != NULL;
        muc_in_t in = {it->st,
                       it->conn,
                       it->from,
                       it->from_bare,
                       l->room,
                       it->nick,
                       seen ? MUC_LOOKUP_NONE : res,
                       until};
        muc_service_dispatch(m, &in);
        lookup_item_free(it);
        it = next;
    }
    lookup_free(l);
}

static void lookup_fail(struct muc_lookup *l, int err)
{
    muc_t *m = l->m;
    kn_log_warn("mucd: looking up room %s failed: %s", l->room,
                kn_strerror(err));
    lookup_item_t *it = lookup_detach(l);
    while (it != NULL) {
        lookup_item_t *next = it->next;
        if (lookup_wanted(it->st))
            muc_send_error(m, it->st, KN_STE_INTERNAL_SERVER_ERROR,
                           "the room could not be looked up");
        lookup_item_free(it);
        it = next;
    }
    lookup_free(l);
}

static void lookup_on_loaded(int err, void *arg)
{
    struct muc_lookup *l = arg;
    if (err < 0) {
        lookup_fail(l, err);
        return;
    }
    if (muc_room_find(l->m, l->room) != NULL) {
        lookup_replay(l, MUC_LOOKUP_NONE, NULL);
        return;
    }
    /* Destroyed between the question and the load: ask again. */
    if (++l->tries >= LOOKUP_MAX_TRIES) {
        lookup_fail(l, -KN_EAGAIN);
        return;
    }
    lookup_ask(l);
}

static void lookup_on_status(const PGresult *res, int err, void *arg)
{
    struct muc_lookup *l = arg;
    muc_t *m = l->m;
    if (err < 0) {
        lookup_fail(l, err);
        return;
    }
    if (PQntuples(res) == 0) {
        lookup_replay(l, MUC_LOOKUP_FREE, NULL);
        return;
    }
    bool live = PQgetvalue(res, 0, 0)[0] == 't';
    bool retired = PQgetvalue(res, 0, 1)[0] == 't';
    if (live) {
        kn_log_info("room %s: not in memory yet, loading it", l->room);
        muc_load_room(m, l->room, lookup_on_loaded, l);
        return;
    }
    if (retired) {
        char *until = kn_strdup(PQgetvalue(res, 0, 2));
        lookup_replay(l, MUC_LOOKUP_RETIRED, until);
        free(until);
        return;
    }
    /* The retirement is over: the old room goes for good, then the name
     * is free. The delete is queued before any write of the new room. */
    const char *params[] = {l->room};
    muc_store_query(m->store,
                    "delete from muc_room where jid = $1 and destroyed_at "
                    "is not null and (retired_until is null or "
                    "retired_until <= now())",
                    1, params, true, NULL, NULL);
    kn_log_info("room %s: retirement over, the name is free again", l->room);
    lookup_replay(l, MUC_LOOKUP_FREE, NULL);
}

static void lookup_ask(struct muc_lookup *l)
{
    const char *params[] = {l->room};
    muc_store_query(
        l->m->store,
        "select destroyed_at is null, coalesce(retired_until > now(), "
        "false), coalesce(to_char(retired_until at time zone 'UTC', "
        "'YYYY-MM-DD HH24:MI:SS \"UTC\"'), '') from muc_room where jid = $1",
        1, params, true, lookup_on_status, l);
}

bool muc_lookup_defer(muc_t *m, const muc_in_t *in)
{
    if (m->store == NULL || in->room == NULL)
        return false;
    struct muc_lookup *l = NULL;
    HASH_FIND_STR(m->lookups, in->room, l);
    if (l == NULL && muc_room_find(m, in->room) != NULL)
        return false;
    if (l == NULL && !lookup_wanted(in->st))
        return false;
    if ((l == NULL && m->nlookups >= LOOKUP_MAX_ROOMS) ||
        (l != NULL && l->n >= LOOKUP_MAX_QUEUE)) {
        if (lookup_wanted(in->st))
            muc_send_error(m, in->st, KN_STE_RESOURCE_CONSTRAINT,
                           "too many requests are waiting for rooms");
        return true;
    }
    if (l == NULL) {
        l = kn_calloc(1, sizeof(*l));
        l->room = kn_strdup(in->room);
        l->m = m;
        l->tail = &l->head;
        HASH_ADD_KEYPTR(hh, m->lookups, l->room, strlen(l->room), l);
        m->nlookups++;
        lookup_append(l, in);
        lookup_ask(l);
        return true;
    }
    lookup_append(l, in);
    return true;
}

void muc_lookup_session_down(muc_t *m, const char *full)
{
    for (struct muc_lookup *l = m->lookups; l; l = l->hh.next) {
        lookup_item_t **pp = &l->head;
        while (*pp) {
            lookup_item_t *it = *pp;
            if (strcmp(it->from, full) == 0) {
                *pp = it->next;
                lookup_item_free(it);
                l->n--;
            } else {
                pp = &it->next;
            }
        }
        l->tail = pp;
    }
}

void muc_lookup_fini(muc_t *m)
{
    struct muc_lookup *l, *tmp;
    HASH_ITER(hh, m->lookups, l, tmp)
    {
        lookup_item_t *it = lookup_detach(l);
        while (it != NULL) {
            lookup_item_t *next = it->next;
            lookup_item_free(it);
            it = next;
        }
        lookup_free(l);
    }
}
