/*
 * pres_broadcast.c - presence broadcast (RFC 6121 4.2-4.5): login
 * (R-PRES-2..5), updates, logout by every path (R-DROP-1/2/3/6,
 * R-PRES-6), directed presence (R-PRES-7).
 *
 * A note on the flows. A broadcast presence (no `to`) from a session
 * arrives here from the router. Available: remember it (session + Redis,
 * R-PRES-1), then one multicast to every available resource of each
 * contact with from/both (shared-group members count as both) and to the
 * user's other available resources. The first available presence of a
 * session also runs the login flow, in this order, every step to the new
 * resource only: presence of the to/both contacts' available resources;
 * the stored last unavailable presence of the offline ones (one query,
 * with XEP-0203 delay); the user's other resources' presence; pending
 * inbound subscription requests (R-PRES-4); offline messages (R-PRES-5).
 * Everything goes out on the one router socket in that order, so the
 * client sees it in that order.
 *
 * Unavailable, from the client or synthesized when the router tells us a
 * session ended (SESSION_DOWN, whatever the reason), runs once per
 * session: s->avail guards it, so the clean-logout case (client's own
 * unavailable, then SESSION_DOWN) is not broadcast twice. Directed
 * presence recipients get it too. When it was the user's last available
 * resource, the last unavailable presence and the time are stored
 * (R-DROP-3); when the first resource becomes available, that row goes
 * (R-PRES-6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_block.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "pres.h"

/* ---- fan-out ------------------------------------------------------------ */

/* Targets for a broadcast from user u (session self excluded): every
 * available resource of contacts with from/both, and u's other available
 * resources. */
static size_t bc_targets(pres_t *p, const char *bare, const char *self,
                         const pres_roster_t *r)
{
    size_t n = 0;
    pres_user_t *u = pres_user_find(p, bare);
    const char *me = self != NULL ? self : bare;
    size_t melen = strlen(me);
    const kn_blocklist_t *mine = u != NULL ? u->blocked : NULL;
    for (pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->avail && (self == NULL || strcmp(s->full, self) != 0))
            pres_target_add(p, &n, s->conn);
    if (!p->conf.roster_presence || r == NULL)
        return n;
    for (size_t i = 0; i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        if (!(pres_item_sub(it) & PRES_SUB_FROM))
            continue;
        pres_user_t *c = pres_user_find(p, it->jid);
        if (c == NULL || c == u)
            continue;
        /* XEP-0191: not to a session the user blocked, nor to a contact
         * who blocked the user. */
        if (kn_blocklist_match(c->blocked, me, melen))
            continue;
        for (pres_sess_t *s = c->sessions; s; s = s->next)
            if (s->avail &&
                (mine == NULL ||
                 !kn_blocklist_match(mine, s->full, strlen(s->full))))
                pres_target_add(p, &n, s->conn);
    }
    return n;
}

size_t pres_send_presences_of(pres_t *p, const char *contact, const char *to)
{
    size_t sent = 0;
    pres_user_t *c = pres_user_find(p, contact);
    for (pres_sess_t *s = c ? c->sessions : NULL; s; s = s->next) {
        if (!s->avail || s->last == NULL || strcmp(s->full, to) == 0 ||
            pres_block_between(p, s->full, to))
            continue;
        pres_send_to(p, s->last, to);
        sent++;
    }
    return sent;
}

/* ---- the login flow ----------------------------------------------------- */

typedef struct login_job {
    char *bare;
    char *full;
    char **pending; /* contacts with a pending inbound request */
    char **pending_status;
    size_t npending;
} login_job_t;

static void login_job_free(login_job_t *j)
{
    for (size_t i = 0; i < j->npending; i++) {
        free(j->pending[i]);
        free(j->pending_status[i]);
    }
    free(j->pending);
    free(j->pending_status);
    free(j->bare);
    free(j->full);
    free(j);
}

static void login_after_last(pres_t *p, void *arg)
{
    login_job_t *j = arg;
    if (pres_sess_find(p, j->full) == NULL) {
        login_job_free(j);
        return;
    }
    /* The user's other available resources (RFC 6121 4.2.2). */
    pres_send_presences_of(p, j->bare, j->full);
    /* R-PRES-4: pending inbound requests, at every login. */
    for (size_t i = 0; i < j->npending; i++) {
        kn_stanza_builder_t *b = p->b;
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "from", j->pending[i]);
        kn_stanza_builder_attr(b, "to", j->full);
        kn_stanza_builder_attr(b, "type", "subscribe");
        if (j->pending_status[i] != NULL) {
            kn_stanza_builder_start(b, "status", NULL);
            kn_stanza_builder_text(b, j->pending_status[i],
                                   strlen(j->pending_status[i]));
            kn_stanza_builder_end(b);
        }
        kn_stanza_t *st = kn_stanza_builder_finish(b);
        pres_send(p, st, 0);
        kn_stanza_unref(&st);
    }
    /* R-PRES-5: offline messages after the presence flood. */
    pres_offline_deliver(p, j->bare, j->full);
    login_job_free(j);
}

static void login_flow(pres_t *p, const char *bare, const char *full,
                       const pres_roster_t *r)
{
    login_job_t *j = kn_calloc(1, sizeof(*j));
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(full);
    char **offline = NULL;
    size_t noff = 0;
    for (size_t i = 0; r != NULL && i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        if (it->st.in && !it->shared) {
            j->pending =
                kn_realloc(j->pending, (j->npending + 1) * sizeof(char *));
            j->pending_status = kn_realloc(j->pending_status,
                                           (j->npending + 1) * sizeof(char *));
            j->pending[j->npending] = kn_strdup(it->jid);
            j->pending_status[j->npending] =
                it->pending_status ? kn_strdup(it->pending_status) : NULL;
            j->npending++;
        }
        if (!(pres_item_sub(it) & PRES_SUB_TO) || !p->conf.roster_presence)
            continue;
        if (pres_block_between(p, full, it->jid))
            continue;
        if (pres_send_presences_of(p, it->jid, full) == 0 &&
            pres_is_local(p, it->jid)) {
            offline = kn_realloc(offline, (noff + 1) * sizeof(char *));
            offline[noff++] = it->jid;
        }
    }
    pres_last_send_stored(p, offline, noff, full, login_after_last, j);
    free(offline);
}

/* ---- available / unavailable -------------------------------------------- */

typedef struct bc_job {
    char *bare;
    char *full;
    kn_stanza_t *st;
    bool initial;
} bc_job_t;

static void bc_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                         int err, void *arg)
{
    bc_job_t *j = arg;
    if (err != 0)
        r = NULL; /* still reach the user's own resources */
    size_t n = bc_targets(p, bare, j->full, r);
    pres_multicast(p, j->st, p->targets, n);
    p->stats.broadcasts++;
    /* Contacts elsewhere (external components, R-GW-1/R-GW-3): the
     * presence goes to their JID, so a gateway sees the user come and
     * go. */
    for (size_t i = 0; r != NULL && p->conf.roster_presence && i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        if ((pres_item_sub(it) & PRES_SUB_FROM) && !pres_is_local(p, it->jid) &&
            !pres_block_between(p, j->full, it->jid))
            pres_send_to(p, j->st, it->jid);
    }
    if (j->initial && pres_sess_find(p, j->full) != NULL)
        login_flow(p, bare, j->full, r);
    kn_stanza_unref(&j->st);
    free(j->bare);
    free(j->full);
    free(j);
}

static void bc_start(pres_t *p, const char *bare, const char *full,
                     kn_stanza_t *st, bool initial)
{
    bc_job_t *j = kn_calloc(1, sizeof(*j));
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(full);
    j->st = kn_stanza_ref(st);
    j->initial = initial;
    pres_roster_get(p, bare, bc_roster_cb, j);
}

static void sess_go_unavailable(pres_t *p, pres_sess_t *s, kn_stanza_t *st)
{
    char *bare = kn_strndup(s->full, s->bare_len);
    s->avail = false;
    kn_stanza_unref(&s->last);
    pres_sess_unstore(p, s);
    /* R-PRES-7: every directed-presence recipient learns it too. */
    for (size_t i = 0; i < s->ndir; i++)
        pres_send_to(p, st, s->dir[i]);
    if (s->ndir > 0)
        pres_sess_dir_clear(p, s);
    bool last = pres_user_navail(s->user) == 0;
    bc_start(p, bare, s->full, st, false);
    if (last)
        pres_last_store(p, bare, st); /* R-DROP-3 */
    free(bare);
}

void pres_broadcast_session_end(pres_t *p, pres_sess_t *s)
{
    if (!s->avail) {
        if (s->ndir > 0)
            pres_sess_dir_clear(p, s);
        return;
    }
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", s->full);
    kn_stanza_builder_attr(b, "type", "unavailable");
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    sess_go_unavailable(p, s, st);
    kn_stanza_unref(&st);
}

void pres_broadcast_handle(pres_t *p, const kn_stanza_t *st, const char *from)
{
    pres_sess_t *s = pres_sess_find(p, from);
    if (s == NULL) {
        kn_log_debug("presence from %s without a session: dropped", from);
        return;
    }
    const char *type = kn_stanza_type(st);
    kn_stanza_t *own = NULL;
    if (kn_stanza_from(st) == NULL || strcmp(kn_stanza_from(st), from) != 0)
        own = kn_stanza_with_attr(st, 0, "from", from);
    else
        own = kn_stanza_ref((kn_stanza_t *)st);
    if (type != NULL && strcmp(type, "unavailable") == 0) {
        if (s->avail)
            sess_go_unavailable(p, s, own);
        kn_stanza_unref(&own);
        return;
    }
    if (type != NULL) { /* error, or something we do not broadcast */
        kn_stanza_unref(&own);
        return;
    }
    /* XEP-0153: the server's avatar hash replaces the client's x. */
    pres_user_t *u = s->user;
    if (u->photo == NULL) {
        u->photo_stale = true;
        pres_avatar_load(p, u);
    }
    kn_stanza_t *stamped = pres_avatar_stamp(p, own, u->photo);
    kn_stanza_unref(&own);
    own = stamped;
    bool first = !s->avail;
    int pr = kn_stanza_child(own, 0, "priority", NULL);
    if (pr >= 0)
        s->prio = (int16_t)atoi(kn_stanza_cdata(own, pr, NULL));
    kn_stanza_unref(&s->last);
    s->last = kn_stanza_ref(own);
    s->avail = true;
    pres_sess_store(p, s);
    if (first && pres_user_navail(s->user) == 1)
        pres_last_clear(p, s->user->bare); /* R-PRES-6 */
    bool initial = first && !s->initial_done;
    if (initial)
        s->initial_done = true;
    bc_start(p, s->user->bare, s->full, own, initial);
    kn_stanza_unref(&own);
}

void pres_broadcast_avatar(pres_t *p, pres_user_t *u)
{
    for (pres_sess_t *s = u->sessions; s; s = s->next) {
        if (!s->avail || s->last == NULL)
            continue;
        kn_stanza_t *st = pres_avatar_stamp(p, s->last, u->photo);
        kn_stanza_unref(&s->last);
        s->last = st;
        pres_sess_store(p, s);
        bc_start(p, u->bare, s->full, st, false);
    }
}

/* ---- directed presence (R-PRES-7) --------------------------------------- */

typedef struct dir_job {
    char *full;
    char *to;
    bool available;
} dir_job_t;

static void dir_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                          int err, void *arg)
{
    (void)bare;
    dir_job_t *j = arg;
    pres_sess_t *s = pres_sess_find(p, j->full);
    char *tobare = pres_bare_of(j->to);
    const pres_item_t *it = err == 0 ? pres_roster_find(r, tobare) : NULL;
    bool subscribed = it != NULL && (pres_item_sub(it) & PRES_SUB_FROM);
    if (s != NULL && !subscribed) {
        if (j->available && s->avail)
            pres_sess_dir_add(p, s, j->to);
        else if (!j->available)
            pres_sess_dir_del(p, s, j->to);
    }
    free(tobare);
    free(j->full);
    free(j->to);
    free(j);
}

void pres_directed_handle(pres_t *p, const kn_stanza_t *st, const char *from,
                          const char *to)
{
    const char *type = kn_stanza_type(st);
    bool available = type == NULL;
    if (!available && strcmp(type, "unavailable") != 0)
        return;
    pres_sess_t *s = pres_sess_find(p, from);
    if (s == NULL)
        return;
    dir_job_t *j = kn_calloc(1, sizeof(*j));
    j->full = kn_strdup(from);
    j->to = kn_strdup(to);
    j->available = available;
    pres_roster_get(p, s->user->bare, dir_roster_cb, j);
}
