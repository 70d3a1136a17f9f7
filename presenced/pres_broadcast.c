/*
 * pres_broadcast.c - presence broadcast (RFC 6121 4.2-4.5): login
 * (R-PRES-2..5), updates, logout by every path (R-DROP-1/2/3/6,
 * R-PRES-6), directed presence (R-PRES-7).
 *
 * A note on the flows. A broadcast presence (no `to`) from a session
 * arrives here from the router. Available: remember it (session + Redis,
 * R-PRES-1), then one multicast to every listening resource (below) of
 * each contact with from/both (shared-group members count as both) and to
 * all of the user's listening resources, the sender included (RFC 6121
 * 4.2.2, 4.4.2: a client waits for its own presence). The first available
 * presence of a session also runs the login flow, in this order, every
 * step to the new resource only: what the to/both contacts' resources and
 * the user's other resources have broadcast; the stored last unavailable
 * presence of the offline contacts (one query, with XEP-0203 delay);
 * pending inbound subscription requests (R-PRES-4); offline messages
 * (R-PRES-5). Everything goes out on the one router socket in that order,
 * so the client sees it in that order.
 *
 * Exactly once. The targets are computed when the fan-out runs, after an
 * asynchronous roster read, not when the presence arrives. So a
 * session's `shown` (the presence its last fan-out sent) is set by that
 * fan-out, and a resource is "listening" when it is available and has
 * `shown`. A fan-out reaches the resources listening at that moment; the
 * login flow, which runs in the same step, sends the new resource the
 * `shown` presence of the others. Fan-outs run one at a time, so of any
 * two resources exactly one ran first: the second learns the first's
 * presence from its login flow, the first the second's from the second's
 * fan-out. Before, both paths could fire for one pair (two or three
 * copies under concurrent logins).
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

/* Whether session s gets broadcasts: it is available and its own
 * availability went out (a resource whose broadcast is still to run gets
 * the others' presence from its login flow instead). */
static bool bc_listening(const pres_sess_t *s)
{
    return s->avail && s->shown != NULL;
}

/* Targets for a broadcast from the session full of user bare (self: that
 * session, NULL when it is gone): u's other listening resources, self
 * when echo (RFC 6121 4.2.2, 4.4.2, 4.5.2: the sender gets its own
 * presence too), and the listening resources of contacts with from/both. */
static size_t bc_targets(pres_t *p, const char *bare, const char *full,
                         const pres_sess_t *self, bool echo,
                         const pres_roster_t *r)
{
    size_t n = 0;
    pres_user_t *u = pres_user_find(p, bare);
    size_t melen = strlen(full);
    const kn_blocklist_t *mine = u != NULL ? u->blocked : NULL;
    for (pres_sess_t *s = u ? u->sessions : NULL; s; s = s->next)
        if (s == self ? echo : bc_listening(s) && strcmp(s->full, full) != 0)
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
        if (kn_blocklist_match(c->blocked, full, melen))
            continue;
        for (pres_sess_t *s = c->sessions; s; s = s->next)
            if (bc_listening(s) &&
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

/* For a login: what each resource of contact has broadcast (its shown
 * presence) to the new resource full. A resource whose broadcast has not
 * run yet sends its presence to full itself when it runs, since full is
 * listening by then. */
static size_t send_shown_of(pres_t *p, const char *contact, const char *full)
{
    size_t sent = 0;
    pres_user_t *c = pres_user_find(p, contact);
    for (pres_sess_t *s = c ? c->sessions : NULL; s; s = s->next) {
        if (s->shown == NULL || strcmp(s->full, full) == 0 ||
            pres_block_between(p, s->full, full))
            continue;
        pres_bundle_add_to(p, s->shown, full);
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

/* Runs right after the new resource's own broadcast, in the same
 * callback: everything it must learn from others that is already out.
 * The contacts' presences go to the session's connection conn in one
 * bundle (pres_out.c). */
static void login_flow(pres_t *p, const char *bare, const char *full,
                       uint64_t conn, const pres_roster_t *r)
{
    login_job_t *j = kn_calloc(1, sizeof(*j));
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(full);
    char **offline = NULL;
    size_t noff = 0;
    pres_bundle_begin(p, conn);
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
        if (send_shown_of(p, it->jid, full) == 0 && pres_is_local(p, it->jid)) {
            offline = kn_realloc(offline, (noff + 1) * sizeof(char *));
            offline[noff++] = it->jid;
        }
    }
    /* The user's other available resources (RFC 6121 4.2.2), now: later
     * the ones that broadcast after this point would be sent twice. */
    send_shown_of(p, bare, full);
    pres_bundle_end(p);
    pres_last_send_stored(p, offline, noff, full, login_after_last, j);
    free(offline);
}

/* ---- available / unavailable -------------------------------------------- */

typedef struct pres_bc_job {
    struct pres_bc_job *next; /* in user->bc_parked */
    char *bare;
    char *full;
    uint64_t conn; /* the session's: a later one of the same full JID is
                      another session */
    kn_stanza_t *st;
    bool available;
    bool initial;
    bool echo; /* to the sender too (not when its session ended) */
} bc_job_t;

static void bc_job_free(bc_job_t *j)
{
    kn_stanza_unref(&j->st);
    free(j->bare);
    free(j->full);
    free(j);
}

static void bc_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                         int err, void *arg)
{
    bc_job_t *j = arg;
    if (err != 0)
        r = NULL; /* still reach the user's own resources */
    pres_sess_t *self = pres_sess_find(p, j->full);
    if (self != NULL && self->conn != j->conn)
        self = NULL;
    if (self != NULL) {
        kn_stanza_unref(&self->shown);
        if (j->available)
            self->shown = kn_stanza_ref(j->st);
    }
    /* Available: echoed while the sender still is (an unavailable of its
     * own follows otherwise); unavailable: echoed when the client sent it. */
    bool echo = self != NULL && j->echo && (!j->available || self->avail);
    size_t n = bc_targets(p, bare, j->full, self, echo, r);
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
    if (j->initial && self != NULL)
        login_flow(p, bare, j->full, self->conn, r);
    bc_job_free(j);
}

/* Fan-outs of one user run in arrival order: pres_roster_get calls its
 * waiters in order, and at once when the roster is cached; a fan-out
 * parked for the avatar hash holds the later ones behind it.
 *
 * Why park: an available presence sent before the user's hash is known
 * carries an empty vcard-temp:x:update (XEP-0153: not ready), and the
 * hash, once loaded, would go out in a second presence to everyone. The
 * load starts at SESSION_UP, so it is usually done before the presence;
 * when it is not, waiting for it costs one query and spares every
 * contact a second presence. */
static void bc_start(pres_t *p, const char *bare, const pres_sess_t *s,
                     kn_stanza_t *st, bool available, bool initial, bool echo)
{
    bc_job_t *j = kn_calloc(1, sizeof(*j));
    j->bare = kn_strdup(bare);
    j->full = kn_strdup(s->full);
    j->conn = s->conn;
    j->st = kn_stanza_ref(st);
    j->available = available;
    j->initial = initial;
    j->echo = echo;
    pres_user_t *u = s->user;
    if (u->bc_parked != NULL ||
        (available && u->photo == NULL && u->photo_loading)) {
        bc_job_t **pp = &u->bc_parked;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = j;
        return;
    }
    pres_roster_get(p, bare, bc_roster_cb, j);
}

void pres_broadcast_photo_known(pres_t *p, pres_user_t *u)
{
    /* Pop one at a time: the jobs left keep u alive; the last
     * pres_roster_get may free it, so u is not read after that one. */
    bool more = u->bc_parked != NULL;
    while (more) {
        bc_job_t *j = u->bc_parked;
        u->bc_parked = j->next;
        more = j->next != NULL;
        j->next = NULL;
        if (j->available && u->photo == NULL) {
            u->photo_stale = true; /* the load failed: goes out without */
        } else if (j->available) {
            kn_stanza_t *st = pres_avatar_stamp(p, j->st, u->photo);
            pres_sess_t *s = pres_sess_find(p, j->full);
            if (s != NULL && s->conn == j->conn && s->last == j->st) {
                kn_stanza_unref(&s->last);
                s->last = kn_stanza_ref(st);
                pres_sess_store(p, s);
            }
            kn_stanza_unref(&j->st);
            j->st = st;
        }
        pres_roster_get(p, j->bare, bc_roster_cb, j);
    }
}

void pres_broadcast_user_free(pres_user_t *u)
{
    while (u->bc_parked != NULL) {
        bc_job_t *j = u->bc_parked;
        u->bc_parked = j->next;
        bc_job_free(j);
    }
}

static void sess_go_unavailable(pres_t *p, pres_sess_t *s, kn_stanza_t *st,
                                bool echo)
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
    bc_start(p, bare, s, st, false, false, echo);
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
    sess_go_unavailable(p, s, st, false); /* nobody left to echo to */
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
            sess_go_unavailable(p, s, own, true);
        kn_stanza_unref(&own);
        return;
    }
    if (type != NULL) { /* error, or something we do not broadcast */
        kn_stanza_unref(&own);
        return;
    }
    /* XEP-0153: the server's avatar hash replaces the client's x. */
    pres_user_t *u = s->user;
    if (u->photo == NULL)
        pres_avatar_load(p, u);
    /* Loading: the fan-out waits for the hash (bc_start); else it goes
     * out without one and the hash follows when known. */
    if (u->photo == NULL && !u->photo_loading)
        u->photo_stale = true;
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
    bc_start(p, s->user->bare, s, own, true, initial, true);
    pres_caps_presence(p, s, own, first); /* XEP-0115, PEP last items */
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
        bc_start(p, u->bare, s, st, true, false, true);
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
