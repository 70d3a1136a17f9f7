/*
 * pres_block.c - blocking (XEP-0191): the user's block list, its IQs and
 * pushes, the presence it stops and restores, and the list c2s filters
 * deliveries with.
 *
 * A note on where the list lives. PostgreSQL (blocklist, 0006) is the
 * durable copy; presenced caches it on the pres_user_t while the user
 * has sessions (kn_blocklist_t: sorted, one allocation, NULL when
 * empty), loaded when the first session comes up. Blocking IQs that
 * arrive while the load is in flight wait for it, so the cache and the
 * table never diverge. Writes and the load go through the ordered pool
 * (one connection, FIFO): a load always sees the writes queued before it.
 *
 * A note on c2s. Stanzas to a full JID go router -> c2s without passing
 * here, so the delivery filter lives in c2s (c2s_block.c), and c2s needs
 * the list of every session: when a session comes up (SESSION_UP copy)
 * and the list is loaded, the session gets it as an iq flagged
 * KN_F_BLOCKLIST, which its c2s keeps and does not deliver; every change
 * is the block/unblock push to all the user's sessions, flagged the
 * same way, which c2s applies and delivers. Both go out on our one
 * router socket, in order. c2s holds a new session's deliveries until
 * the list arrives.
 *
 * A note on presence (XEP-0191 "User Blocks JID", "User Unblocks JID").
 * The fan-out (pres_broadcast.c) leaves out a contact's session when either
 * side blocks the other. When a block starts, each available resource of
 * the user sends unavailable to every newly blocked session of a contact
 * allowed to see its presence (subscription from/both) and to newly
 * blocked directed-presence recipients; the user's resources get
 * unavailable from the blocked contact's resources (to/both), before the
 * push, so c2s still lets it through. On unblock the same contacts get
 * the user's current presence, and the user theirs, after the push.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_block.h"
#include "kn_err.h"
#include "kn_jid.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "pres.h"

#define NS_BLOCKING "urn:xmpp:blocking"

/* A blocking IQ waiting for its user's list to load. */
typedef struct pres_block_wait {
    kn_stanza_t *iq;
    struct pres_block_wait *next;
} block_wait_t;

/* ---- matching on the cache ---------------------------------------------- */

/* Whether a and b belong to the same account (bare parts equal). */
static bool block_same_user(const char *a, const char *b)
{
    size_t al = strcspn(a, "/"), bl = strcspn(b, "/");
    return al == bl && memcmp(a, b, al) == 0;
}

bool pres_is_blocked(pres_t *p, const char *owner_bare, const char *jid)
{
    if (block_same_user(owner_bare, jid))
        return false;
    pres_user_t *u = pres_user_find(p, owner_bare);
    return u != NULL && kn_blocklist_match(u->blocked, jid, strlen(jid));
}

/* The user owning jid (full or bare), or NULL. */
static pres_user_t *block_owner(pres_t *p, const char *jid)
{
    size_t bl = strcspn(jid, "/");
    if (jid[bl] == '\0')
        return pres_user_find(p, jid);
    char bare[KN_ENV_STR_MAX + 1];
    if (bl >= sizeof(bare))
        return NULL;
    memcpy(bare, jid, bl);
    bare[bl] = '\0';
    return pres_user_find(p, bare);
}

bool pres_block_between(pres_t *p, const char *a, const char *b)
{
    if (block_same_user(a, b))
        return false;
    pres_user_t *ua = block_owner(p, a);
    if (ua != NULL && kn_blocklist_match(ua->blocked, b, strlen(b)))
        return true;
    pres_user_t *ub = block_owner(p, b);
    return ub != NULL && kn_blocklist_match(ub->blocked, a, strlen(a));
}

char *pres_block_key_params(const char *jid, size_t len, const char *keys[4])
{
    kn_block_key_t k[4];
    size_t n = kn_block_keys(jid, len, k);
    char *buf = kn_malloc(4 * (len + 1));
    for (size_t i = 0; i < 4; i++) {
        char *d = buf + i * (len + 1);
        if (n > 0) {
            const kn_block_key_t *key = &k[i < n ? i : n - 1];
            memcpy(d, jid + key->off, key->len);
            d[key->len] = '\0';
        } else {
            d[0] = '\0';
        }
        keys[i] = d;
    }
    return buf;
}

/* ---- the list to c2s ------------------------------------------------------
 */

/* <blocklist><item jid/>...</blocklist> of u into the open element of b
 * (left open: the caller ends or finishes it). */
static void block_list_build(kn_stanza_builder_t *b, const pres_user_t *u)
{
    kn_stanza_builder_start(b, "blocklist", NS_BLOCKING);
    for (size_t i = 0; i < kn_blocklist_count(u->blocked); i++) {
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "jid",
                               kn_blocklist_item(u->blocked, i, NULL));
        kn_stanza_builder_end(b);
    }
}

/* The whole list, to session s only (KN_F_BLOCKLIST: c2s keeps it). */
static void block_send_list(pres_t *p, pres_sess_t *s)
{
    pres_user_t *u = s->user;
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "id", "kiln-blocklist");
    kn_stanza_builder_attr(b, "to", s->full);
    block_list_build(b, u);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, KN_F_BLOCKLIST);
    kn_stanza_unref(&st);
    s->block_sent = true;
}

/* ---- loading --------------------------------------------------------------
 */

static void block_iq_run(pres_t *p, pres_user_t *u, const kn_stanza_t *st);

typedef struct block_load {
    pres_t *p;
    char *bare;
} block_load_t;

static void block_loaded(const PGresult *res, int err, void *arg)
{
    block_load_t *l = arg;
    pres_t *p = l->p;
    pres_user_t *u = pres_user_find(p, l->bare);
    free(l->bare);
    free(l);
    if (u == NULL)
        return;
    block_wait_t *w = u->block_waiting;
    u->block_waiting = NULL;
    if (err != 0) {
        /* Sessions get no list: their c2s reads it itself after its wait.
         * The next session or blocking IQ loads again. */
        kn_log_warn("block list of %s not loaded: %s", u->bare,
                    kn_strerror(err));
        u->block_state = PRES_BLOCK_UNKNOWN;
        while (w != NULL) {
            block_wait_t *next = w->next;
            pres_send_error(p, w->iq, KN_STE_INTERNAL_SERVER_ERROR);
            kn_stanza_unref(&w->iq);
            free(w);
            w = next;
        }
        pres_user_maybe_free(p, u);
        return;
    }
    int n = PQntuples(res);
    const char **jids = n > 0 ? kn_calloc((size_t)n, sizeof(*jids)) : NULL;
    size_t *lens = n > 0 ? kn_calloc((size_t)n, sizeof(*lens)) : NULL;
    for (int i = 0; i < n; i++) {
        jids[i] = PQgetvalue(res, i, 0);
        lens[i] = (size_t)PQgetlength(res, i, 0);
    }
    kn_blocklist_free(&u->blocked);
    u->blocked = kn_blocklist_new(jids, lens, (size_t)n);
    free(jids);
    free(lens);
    u->block_state = PRES_BLOCK_LOADED;
    for (pres_sess_t *s = u->sessions; s; s = s->next)
        if (!s->block_sent)
            block_send_list(p, s);
    /* The IQs that waited, in arrival order. */
    u->block_busy = true;
    while (w != NULL) {
        block_wait_t *next = w->next;
        block_iq_run(p, u, w->iq);
        kn_stanza_unref(&w->iq);
        free(w);
        w = next;
    }
    u->block_busy = false;
    pres_user_maybe_free(p, u);
}

static void block_load(pres_t *p, pres_user_t *u)
{
    if (p->pg == NULL || !pres_is_local(p, u->bare)) {
        u->block_state = PRES_BLOCK_LOADED; /* nothing to load from */
        return;
    }
    u->block_state = PRES_BLOCK_LOADING;
    block_load_t *l = kn_malloc(sizeof(*l));
    l->p = p;
    l->bare = kn_strdup(u->bare);
    char *local = pres_localpart(u->bare);
    const char *params[] = {local};
    kn_pg_query(pres_pg_ordered(p),
                "select jid from blocklist where username = $1", 1, params,
                block_loaded, l);
    free(local);
}

void pres_block_session_up(pres_t *p, pres_sess_t *s)
{
    pres_user_t *u = s->user;
    if (u->block_state == PRES_BLOCK_UNKNOWN)
        block_load(p, u);
    if (u->block_state == PRES_BLOCK_LOADED && !s->block_sent)
        block_send_list(p, s);
}

void pres_block_user_free(pres_user_t *u)
{
    kn_blocklist_free(&u->blocked);
    while (u->block_waiting != NULL) {
        block_wait_t *w = u->block_waiting;
        u->block_waiting = w->next;
        kn_stanza_unref(&w->iq);
        free(w);
    }
    u->block_state = PRES_BLOCK_UNKNOWN;
}

/* ---- a check for a user who may be offline --------------------------------
 */

typedef struct block_check {
    pres_t *p;
    pres_block_cb cb;
    void *arg;
} block_check_t;

static void block_check_row(const PGresult *res, int err, void *arg)
{
    block_check_t *c = arg;
    bool blocked =
        err == 0 && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    c->cb(c->p, blocked, err, c->arg);
    free(c);
}

void pres_block_check(pres_t *p, const char *owner_bare, const char *jid,
                      pres_block_cb cb, void *arg)
{
    pres_user_t *u = pres_user_find(p, owner_bare);
    if (block_same_user(owner_bare, jid) || p->pg == NULL ||
        !pres_is_local(p, owner_bare) ||
        (u != NULL && u->block_state == PRES_BLOCK_LOADED)) {
        cb(p, pres_is_blocked(p, owner_bare, jid), 0, arg);
        return;
    }
    block_check_t *c = kn_malloc(sizeof(*c));
    c->p = p;
    c->cb = cb;
    c->arg = arg;
    const char *k[4];
    char *kb = pres_block_key_params(jid, strlen(jid), k);
    char *local = pres_localpart(owner_bare);
    const char *params[] = {local, k[0], k[1], k[2], k[3]};
    kn_pg_query(pres_pg_ordered(p),
                "select exists (select 1 from blocklist where username = $1"
                " and jid in ($2, $3, $4, $5))",
                5, params, block_check_row, c);
    free(local);
    free(kb);
}

/* ---- presence when a block starts or ends ---------------------------------
 */

typedef struct block_job {
    pres_t *p;
    char *bare;
    kn_stanza_t *iq;   /* the command, answered once the roster is known */
    kn_stanza_t *push; /* the push for the user's sessions */
    kn_blocklist_t *old, *now;
    bool block; /* a block (else an unblock) */
} block_job_t;

static bool block_newly(const block_job_t *j, const char *jid, bool blocked)
{
    size_t len = strlen(jid);
    bool was = kn_blocklist_match(j->old, jid, len);
    bool is = kn_blocklist_match(j->now, jid, len);
    return blocked ? (!was && is) : (was && !is);
}

static kn_stanza_t *block_unavailable(pres_t *p, const char *from)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", from);
    kn_stanza_builder_attr(b, "type", "unavailable");
    return kn_stanza_builder_finish(b);
}

/* Contacts' sessions -> the user (to/both): unavailable from the newly
 * blocked ones (before the push), current presence of the newly
 * unblocked ones (after it). */
static void block_flow_in(pres_t *p, const block_job_t *j, pres_user_t *u,
                          const pres_roster_t *r, bool blocked)
{
    /* The user's available sessions, once: only the blocked branch sends
     * to them, and nothing in the loop changes p->targets. */
    size_t nt = blocked ? pres_user_targets(p, u, true) : 0;
    for (size_t i = 0; r != NULL && i < r->n; i++) {
        const pres_item_t *it = &r->items[i];
        pres_user_t *c = pres_user_find(p, it->jid);
        if (c == NULL || !(pres_item_sub(it) & PRES_SUB_TO))
            continue;
        for (pres_sess_t *cs = c->sessions; cs; cs = cs->next) {
            if (!cs->avail || cs->last == NULL ||
                !block_newly(j, cs->full, blocked))
                continue;
            if (blocked) {
                kn_stanza_t *un = block_unavailable(p, cs->full);
                pres_multicast(p, un, p->targets, nt);
                kn_stanza_unref(&un);
                continue;
            }
            for (pres_sess_t *us = u->sessions; us; us = us->next)
                if (us->avail && !pres_block_between(p, cs->full, us->full))
                    pres_send_to(p, cs->last, us->full);
        }
    }
}

/* The user's available resources -> contacts allowed to see them
 * (from/both) and directed-presence recipients. */
static void block_flow_out(pres_t *p, const block_job_t *j, pres_user_t *u,
                           const pres_roster_t *r, bool blocked)
{
    for (pres_sess_t *us = u->sessions; us; us = us->next) {
        if (!us->avail || us->last == NULL)
            continue;
        kn_stanza_t *st =
            blocked ? block_unavailable(p, us->full) : kn_stanza_ref(us->last);
        for (size_t i = 0; r != NULL && i < r->n; i++) {
            const pres_item_t *it = &r->items[i];
            pres_user_t *c = pres_user_find(p, it->jid);
            if (c == NULL || !(pres_item_sub(it) & PRES_SUB_FROM))
                continue;
            for (pres_sess_t *cs = c->sessions; cs; cs = cs->next) {
                if (!cs->avail || !block_newly(j, cs->full, blocked))
                    continue;
                if (!blocked && pres_block_between(p, us->full, cs->full))
                    continue;
                pres_send_to(p, st, cs->full);
            }
        }
        /* R-PRES-7 recipients newly blocked: unavailable, and forgotten. */
        for (size_t d = us->ndir; blocked && d-- > 0;) {
            if (!block_newly(j, us->dir[d], true))
                continue;
            pres_send_to(p, st, us->dir[d]);
            pres_sess_dir_del(p, us, us->dir[d]);
        }
        kn_stanza_unref(&st);
    }
}

static void block_job_free(block_job_t *j)
{
    free(j->bare);
    kn_stanza_unref(&j->iq);
    kn_stanza_unref(&j->push);
    kn_blocklist_free(&j->old);
    kn_blocklist_free(&j->now);
    free(j);
}

static void block_roster_cb(pres_t *p, const char *bare, const pres_roster_t *r,
                            int err, void *arg)
{
    block_job_t *j = arg;
    (void)bare;
    if (err != 0)
        r = NULL; /* the command stands; only the presence part is lost */
    pres_user_t *u = pres_user_find(p, j->bare);
    bool blocked = j->block;
    if (u != NULL && blocked)
        block_flow_in(p, j, u, r, true);
    /* The push first: c2s applies the new list before the client sees
     * the result, so what the client sends next is already filtered
     * (both go out on our one router socket, in order). */
    if (u != NULL) {
        size_t n = pres_user_targets(p, u, false);
        pres_multicast_flags(p, j->push, p->targets, n, KN_F_BLOCKLIST);
        p->stats.pushes++;
    }
    pres_send_result(p, j->iq);
    if (u != NULL) {
        block_flow_out(p, j, u, r, blocked);
        if (!blocked)
            block_flow_in(p, j, u, r, false);
    }
    block_job_free(j);
}

/* ---- the IQs ---------------------------------------------------------------
 */

static void block_get(pres_t *p, pres_user_t *u, const kn_stanza_t *st)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, st);
    block_list_build(b, u);
    kn_stanza_builder_end(b);
    kn_stanza_t *r = kn_stanza_builder_finish(b);
    pres_send(p, r, 0);
    kn_stanza_unref(&r);
}

static void block_stored(const PGresult *res, int err, void *arg)
{
    block_job_t *j = arg;
    pres_t *p = j->p;
    (void)res;
    if (err == 0) {
        pres_roster_get(p, j->bare, block_roster_cb, j);
        return;
    }
    /* Not stored: the command failed, nobody was told of it; the cache
     * is read again from the table (blocking IQs wait for that). */
    kn_log_warn("block list of %s not written: %s", j->bare, kn_strerror(err));
    pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    pres_user_t *u = pres_user_find(p, j->bare);
    if (u != NULL && u->block_state == PRES_BLOCK_LOADED)
        block_load(p, u);
    block_job_free(j);
}

/* Write the change of job j to PostgreSQL in one statement (ordered
 * pool); items: the prepared JIDs joined with 0x01 (stringprep forbids
 * control characters in JIDs), NULL for "unblock all". */
static void block_store(pres_t *p, block_job_t *j, const char *local,
                        const char *items)
{
    if (p->pg == NULL) { /* unit tests */
        block_stored(NULL, 0, j);
        return;
    }
    const char *params[] = {local, items};
    if (j->block)
        kn_pg_query(pres_pg_ordered(p),
                    "insert into blocklist (username, jid) select $1,"
                    " unnest(string_to_array($2, E'\\x01'))"
                    " on conflict do nothing",
                    2, params, block_stored, j);
    else if (items != NULL)
        kn_pg_query(pres_pg_ordered(p),
                    "delete from blocklist where username = $1 and jid = any"
                    " (string_to_array($2, E'\\x01'))",
                    2, params, block_stored, j);
    else
        kn_pg_query(pres_pg_ordered(p),
                    "delete from blocklist where username = $1", 1, params,
                    block_stored, j);
}

/* Block or unblock: check every item first, so a bad one changes
 * nothing; then change the cache at once (stanzas handled meanwhile, and
 * the next command, see the new list) and write the table; once it is
 * stored (a block must outlive us the moment we confirm it), answer,
 * push and send presence when the roster is at hand. */
static void block_set(pres_t *p, pres_user_t *u, const kn_stanza_t *st, int op,
                      bool block)
{
    size_t n = 0;
    for (int it = kn_stanza_first_child(st, op); it >= 0;
         it = kn_stanza_next_sibling(st, it))
        n++;
    kn_jid_t *jids = n ? kn_calloc(n, sizeof(*jids)) : NULL;
    size_t k = 0;
    for (int it = kn_stanza_first_child(st, op); it >= 0;
         it = kn_stanza_next_sibling(st, it)) {
        size_t len = 0;
        const char *jid = kn_stanza_attr(st, it, "jid", &len);
        bool item = strcmp(kn_stanza_name(st, it), "item") == 0 &&
                    strcmp(kn_stanza_ns(st, it), NS_BLOCKING) == 0;
        if (!item || jid == NULL || kn_jid_parse(&jids[k], jid, len) < 0) {
            pres_send_error(p, st,
                            item && jid != NULL ? KN_STE_JID_MALFORMED
                                                : KN_STE_BAD_REQUEST);
            goto out;
        }
        k++;
    }
    if (block && k == 0) {
        pres_send_error(p, st, KN_STE_BAD_REQUEST); /* XEP-0191 3.3 */
        goto out;
    }
    block_job_t *j = kn_calloc(1, sizeof(*j));
    j->p = p;
    j->bare = kn_strdup(u->bare);
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    j->old = kn_blocklist_dup(u->blocked);
    j->block = block;
    char *local = pres_localpart(u->bare);
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "iq", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "type", "set");
    kn_stanza_builder_attr(b, "id", "block-push");
    kn_stanza_builder_start(b, block ? "block" : "unblock", NS_BLOCKING);
    kn_buf_t list = KN_BUF_INIT;
    for (size_t i = 0; i < k; i++) {
        const char *jid = kn_jid_str(&jids[i]);
        size_t len = kn_jid_len(&jids[i]);
        if (block)
            kn_blocklist_add(&u->blocked, jid, len);
        else
            kn_blocklist_del(&u->blocked, jid, len);
        if (i > 0)
            kn_buf_append_byte(&list, 0x01);
        kn_buf_append(&list, jid, len);
        kn_stanza_builder_start(b, "item", NULL);
        kn_stanza_builder_attr(b, "jid", jid);
        kn_stanza_builder_end(b);
    }
    if (!block && k == 0) /* unblock all */
        kn_blocklist_free(&u->blocked);
    j->push = kn_stanza_builder_finish(b);
    j->now = kn_blocklist_dup(u->blocked);
    block_store(p, j, local, k > 0 ? list.data : NULL);
    kn_buf_free(&list);
    free(local);
out:
    for (size_t i = 0; i < k; i++)
        kn_jid_free(&jids[i]);
    free(jids);
}

static void block_iq_run(pres_t *p, pres_user_t *u, const kn_stanza_t *st)
{
    const char *type = kn_stanza_type(st);
    int c = kn_stanza_first_child(st, 0);
    const char *name = c >= 0 ? kn_stanza_name(st, c) : "";
    if (type != NULL && strcmp(type, "get") == 0) {
        if (strcmp(name, "blocklist") == 0)
            block_get(p, u, st);
        else
            pres_send_error(p, st, KN_STE_BAD_REQUEST);
    } else if (strcmp(name, "block") == 0 || strcmp(name, "unblock") == 0) {
        block_set(p, u, st, c, name[0] == 'b');
    } else {
        pres_send_error(p, st, KN_STE_BAD_REQUEST);
    }
}

void pres_block_iq(pres_t *p, const kn_stanza_t *st)
{
    char *bare = pres_iq_own_bare(p, st);
    if (bare == NULL) {
        pres_send_error(p, st, KN_STE_FORBIDDEN);
        return;
    }
    pres_user_t *u = pres_user_get(p, bare);
    free(bare);
    if (u->block_state == PRES_BLOCK_UNKNOWN)
        block_load(p, u);
    if (u->block_state == PRES_BLOCK_LOADED) {
        u->block_busy = true;
        block_iq_run(p, u, st);
        u->block_busy = false;
        pres_user_maybe_free(p, u);
        return;
    }
    block_wait_t *w = kn_calloc(1, sizeof(*w));
    w->iq = kn_stanza_ref((kn_stanza_t *)st);
    block_wait_t **tail = &u->block_waiting;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = w;
}
