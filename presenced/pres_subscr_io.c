/*
 * pres_subscr_io.c - subscription presences (RFC 6121 section 3) applied
 * to the stored rosters of both parties, on top of the pure state machine
 * in pres_subscr.c.
 *
 * A note on ordering. Each subscription stanza is a job of up to three
 * read-modify-write steps: the sender's item (outbound rules), the
 * contact's item (inbound rules), and for an automatic "subscribed" the
 * sender's item again. Jobs run one at a time, in arrival order, from
 * one FIFO (p->subq_head), so two requests crossing each other never
 * interleave their reads and writes. Subscription traffic is rare next to
 * presence and messages, so one queue is enough; a per-user queue is the
 * next step if it ever shows in a profile.
 *
 * After each write, one rule sends presence: when X's item for Y gains
 * "to", Y's available resources send their presence to X's resources;
 * when it loses "to", X's resources get unavailable from Y's (RFC 6121
 * 3.1.5, 3.1.6, 3.2.3, 3.3.3). Pending inbound requests are kept in the
 * row (pending_in, pending_status) and re-delivered at each login until
 * answered (R-PRES-4, pres_broadcast.c). The contact's side is left out
 * when the contact blocked the sender (XEP-0191: presence from a blocked
 * JID, subscriptions included, is dropped silently).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "pres.h"

typedef struct pres_subq subq_t;
typedef void (*subq_step_fn)(pres_t *p, subq_t *j);

struct pres_subq {
    kn_env_type_t type;
    char *user;      /* bare JID of the sender */
    char *contact;   /* bare JID of the addressee */
    char *status;    /* status text of the request, or NULL */
    kn_stanza_t *st; /* the original (routed outward when remote) */
    bool user_local, contact_local, skip_user;
    /* the step in progress */
    const char *owner, *peer; /* item owner's and peer's bare JIDs */
    bool inbound;
    kn_env_type_t optype;
    pres_subscr_result_t res;
    pres_substate_t old;
    subq_step_fn after;
    subq_t *next;
};

static void subq_run(pres_t *p);

static void subq_finish(pres_t *p, subq_t *j)
{
    p->subq_head = j->next;
    if (p->subq_head == NULL)
        p->subq_tail = &p->subq_head;
    free(j->user);
    free(j->contact);
    free(j->status);
    kn_stanza_unref(&j->st);
    free(j);
    p->subq_busy = false;
    subq_run(p);
}

/* ---- presence between two local users ---------------------------------- */

/* Y's available resources' presence (or unavailable) to X's resources. */
void pres_presence_flow(pres_t *p, const char *y, const char *x, bool available)
{
    pres_user_t *uy = pres_user_find(p, y);
    if (uy == NULL || pres_user_find(p, x) == NULL)
        return;
    for (pres_sess_t *s = uy->sessions; s; s = s->next) {
        if (!s->avail || s->last == NULL)
            continue;
        kn_stanza_t *st = NULL;
        if (available) {
            st = kn_stanza_ref(s->last);
        } else {
            kn_stanza_builder_t *b = p->b;
            kn_stanza_builder_reset(b);
            kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
            kn_stanza_builder_attr(b, "from", s->full);
            kn_stanza_builder_attr(b, "type", "unavailable");
            st = kn_stanza_builder_finish(b);
        }
        size_t n = pres_user_targets(p, pres_user_find(p, x), true);
        pres_multicast(p, st, p->targets, n);
        kn_stanza_unref(&st);
    }
}

/* The subscription stanza itself, to the owner's available resources. */
static void subq_deliver(pres_t *p, subq_t *j, const char *from, const char *to,
                         kn_env_type_t type, const char *status)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_reset(b);
    kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
    kn_stanza_builder_attr(b, "from", from);
    kn_stanza_builder_attr(b, "to", to);
    kn_stanza_builder_attr(b, "type", kn_env_type_name(type));
    if (status != NULL) {
        kn_stanza_builder_start(b, "status", NULL);
        kn_stanza_builder_text(b, status, strlen(status));
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    if (pres_is_local(p, to)) {
        size_t n = pres_user_targets(p, pres_user_find(p, to), true);
        pres_multicast(p, st, p->targets, n);
    } else {
        pres_send(p, st, 0);
    }
    kn_stanza_unref(&st);
    (void)j;
}

/* ---- one read-modify-write step ----------------------------------------- */

/* The owner's roster is full: <not-allowed/> with a text to whoever sent
 * the subscription stanza (the user when its own roster is full, the
 * requester when the contact's is), then the job ends. */
static void subq_refuse_full(pres_t *p, subq_t *j, long long max)
{
    kn_log_info("subscription %s -> %s: %s's roster is full (%lld)", j->user,
                j->contact, j->owner, max);
    const char *type = j->st ? kn_stanza_type(j->st) : NULL;
    if (j->st != NULL && kn_stanza_from(j->st) != NULL &&
        (type == NULL || strcmp(type, "error") != 0)) {
        char text[128];
        snprintf(text, sizeof(text), "%s (at most %lld items)",
                 j->inbound ? "The contact's roster is full"
                            : "Your roster is full",
                 max);
        pres_send_error_text(p, j->st, KN_STE_NOT_ALLOWED, text);
    }
    subq_finish(p, j);
}

/* Always one row: the item's columns (NULL when there is none) and how
 * many rows the owner has (roster_max_items). */
static const char item_sql[] =
    "select r.subscription, r.ask_out, r.pending_in, r.preapproved,"
    " r.in_roster, c.n from (select count(*) as n from rosteritems"
    " where username = $1) c left join rosteritems r"
    " on r.username = $1 and r.jid = $2";

static const char write_sql[] =
    "with v as (insert into roster_versions (username, version)"
    " values ($1, 1) on conflict (username) do update"
    " set version = roster_versions.version + 1 returning version)"
    " insert into rosteritems (username, jid, subscription, ask_out,"
    " pending_in, preapproved, in_roster, pending_status, ver)"
    " select $1, $2, $3, $4, $5, $6, $7, $8, v.version from v"
    " on conflict (username, jid) do update set"
    " subscription = excluded.subscription, ask_out = excluded.ask_out,"
    " pending_in = excluded.pending_in, preapproved = excluded.preapproved,"
    " in_roster = rosteritems.in_roster or excluded.in_roster,"
    " pending_status = excluded.pending_status, ver = excluded.ver"
    " returning in_roster";

typedef struct step_arg {
    pres_t *p;
    subq_t *j;
} step_arg_t;

static step_arg_t *step_arg(pres_t *p, subq_t *j)
{
    step_arg_t *a = kn_malloc(sizeof(*a));
    a->p = p;
    a->j = j;
    return a;
}

static void step_written(const PGresult *res, int err, void *arg)
{
    step_arg_t *a = arg;
    pres_t *p = a->p;
    subq_t *j = a->j;
    free(a);
    if (err != 0) {
        kn_log_info("subscription %s -> %s: write failed (%s)", j->owner,
                    j->peer, kn_strerror(err));
        subq_finish(p, j);
        return;
    }
    bool in_roster = PQntuples(res) > 0 && PQgetvalue(res, 0, 0)[0] == 't';
    pres_roster_invalidate(p, j->owner);
    if (in_roster)
        pres_roster_push_jid(p, j->owner, j->peer);
    bool had_to = (j->old.sub & PRES_SUB_TO) != 0;
    bool has_to = (j->res.st.sub & PRES_SUB_TO) != 0;
    if (!had_to && has_to)
        pres_presence_flow(p, j->peer, j->owner, true);
    else if (had_to && !has_to)
        pres_presence_flow(p, j->peer, j->owner, false);
    j->after(p, j);
}

static void step_loaded(const PGresult *res, int err, void *arg)
{
    step_arg_t *a = arg;
    pres_t *p = a->p;
    subq_t *j = a->j;
    if (err != 0) {
        free(a);
        kn_log_info("subscription %s -> %s: read failed (%s)", j->owner,
                    j->peer, kn_strerror(err));
        subq_finish(p, j);
        return;
    }
    pres_substate_t cur = {PRES_SUB_NONE, false, false, false};
    bool exists = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0);
    long long rows = PQntuples(res) > 0 ? atoll(PQgetvalue(res, 0, 5)) : 0;
    if (exists) {
        cur.sub = (pres_sub_t)(atoi(PQgetvalue(res, 0, 0)) & 3);
        cur.out = PQgetvalue(res, 0, 1)[0] == 't';
        cur.in = PQgetvalue(res, 0, 2)[0] == 't';
        cur.pre = PQgetvalue(res, 0, 3)[0] == 't';
    }
    j->old = cur;
    if (j->inbound)
        pres_subscr_inbound(j->optype, &cur, &j->res);
    else
        pres_subscr_outbound(j->optype, &cur, &j->res);
    if (!j->res.changed) {
        free(a);
        j->after(p, j);
        return;
    }
    long long max = p->conf.roster_max_items;
    if (!exists && max > 0 && rows >= max) {
        /* A new row would pass roster_max_items (issue 16): the request
         * stops here, and its sender learns why. */
        free(a);
        subq_refuse_full(p, j, max);
        return;
    }
    /* Outbound subscribe and approval put the contact in the roster
     * (RFC 6121 3.1.2, 3.1.5); a pending inbound request alone does not
     * (3.1.3). */
    bool show = !j->inbound && (j->optype == KN_ENV_TYPE_SUBSCRIBE ||
                                j->optype == KN_ENV_TYPE_SUBSCRIBED);
    if (j->res.st.sub != PRES_SUB_NONE)
        show = true;
    char sub[4];
    snprintf(sub, sizeof(sub), "%d", (int)j->res.st.sub);
    char *local = pres_localpart(j->owner);
    const char *status = j->res.st.in ? j->status : NULL;
    const char *params[] = {local,
                            j->peer,
                            sub,
                            j->res.st.out ? "t" : "f",
                            j->res.st.in ? "t" : "f",
                            j->res.st.pre ? "t" : "f",
                            show ? "t" : "f",
                            status};
    kn_pg_query(p->pg, write_sql, 8, params, step_written, a);
    free(local);
}

static void subq_step(pres_t *p, subq_t *j, const char *owner, const char *peer,
                      bool inbound, kn_env_type_t type, subq_step_fn after)
{
    j->owner = owner;
    j->peer = peer;
    j->inbound = inbound;
    j->optype = type;
    j->after = after;
    memset(&j->res, 0, sizeof(j->res));
    char *local = pres_localpart(owner);
    const char *params[] = {local, peer};
    kn_pg_query(p->pg, item_sql, 2, params, step_loaded, step_arg(p, j));
    free(local);
}

/* ---- the job's steps ----------------------------------------------------- */

static void after_autoreply(pres_t *p, subq_t *j)
{
    if (j->res.deliver)
        subq_deliver(p, j, j->contact, j->user, KN_ENV_TYPE_SUBSCRIBED, NULL);
    subq_finish(p, j);
}

static void after_contact(pres_t *p, subq_t *j)
{
    if (j->res.deliver)
        subq_deliver(p, j, j->user, j->contact, j->type,
                     j->type == KN_ENV_TYPE_SUBSCRIBE ? j->status : NULL);
    if (j->res.autoreply) {
        /* Already approved: answer for the contact (RFC 6121 3.1.3). */
        if (j->user_local) {
            subq_step(p, j, j->user, j->contact, true, KN_ENV_TYPE_SUBSCRIBED,
                      after_autoreply);
            return;
        }
        subq_deliver(p, j, j->contact, j->user, KN_ENV_TYPE_SUBSCRIBED, NULL);
    }
    subq_finish(p, j);
}

static void subq_contact_checked(pres_t *p, bool blocked, int err, void *arg)
{
    subq_t *j = arg;
    if (blocked || err != 0) {
        /* XEP-0191: a subscription presence from a JID the contact
         * blocked is dropped without an answer. */
        if (err != 0)
            kn_log_info("subscription %s -> %s: block check failed (%s)",
                        j->user, j->contact, kn_strerror(err));
        subq_finish(p, j);
        return;
    }
    subq_step(p, j, j->contact, j->user, true, j->type, after_contact);
}

static void subq_contact_side(pres_t *p, subq_t *j)
{
    if (!j->contact_local) {
        /* Another domain (a component, R-GW-1): route it there. */
        if (j->st != NULL) {
            kn_stanza_t *t = kn_stanza_with_attr(j->st, 0, "from", j->user);
            pres_send_to(p, t, j->contact);
            kn_stanza_unref(&t);
        }
        subq_finish(p, j);
        return;
    }
    pres_block_check(p, j->contact, j->user, subq_contact_checked, j);
}

static void after_user(pres_t *p, subq_t *j)
{
    if (!j->res.deliver) {
        subq_finish(p, j);
        return;
    }
    subq_contact_side(p, j);
}

static void subq_run(pres_t *p)
{
    if (p->subq_busy || p->subq_head == NULL)
        return;
    p->subq_busy = true;
    subq_t *j = p->subq_head;
    if (j->user_local && !j->skip_user)
        subq_step(p, j, j->user, j->contact, false, j->type, after_user);
    else
        subq_contact_side(p, j);
}

static void subq_push(pres_t *p, subq_t *j)
{
    j->user_local = pres_is_local(p, j->user);
    j->contact_local = pres_is_local(p, j->contact);
    *p->subq_tail = j;
    p->subq_tail = &j->next;
    subq_run(p);
}

void pres_subscr_handle(pres_t *p, const kn_env_t *env, const kn_stanza_t *st,
                        const char *from, const char *to)
{
    if (p->pg == NULL || from == NULL || to == NULL)
        return;
    subq_t *j = kn_calloc(1, sizeof(*j));
    j->type = env->type;
    j->user = pres_bare_of(from);
    j->contact = pres_bare_of(to);
    if (strcmp(j->user, j->contact) == 0) {
        free(j->user);
        free(j->contact);
        free(j);
        return;
    }
    int s = kn_stanza_child(st, 0, "status", NULL);
    if (s >= 0) {
        kn_buf_t t = KN_BUF_INIT;
        kn_stanza_text(st, s, &t);
        j->status = t.data ? kn_buf_release(&t, NULL) : NULL;
        kn_buf_free(&t);
    }
    j->st = kn_stanza_ref((kn_stanza_t *)st);
    subq_push(p, j);
}

void pres_subscr_cancel_on_remove(pres_t *p, const char *user_bare,
                                  const char *contact, pres_sub_t sub, bool out,
                                  bool in)
{
    kn_env_type_t types[2];
    size_t n = 0;
    if ((sub & PRES_SUB_FROM) || in)
        types[n++] = KN_ENV_TYPE_UNSUBSCRIBED;
    if ((sub & PRES_SUB_TO) || out)
        types[n++] = KN_ENV_TYPE_UNSUBSCRIBE;
    for (size_t i = 0; i < n; i++) {
        subq_t *j = kn_calloc(1, sizeof(*j));
        j->type = types[i];
        j->user = kn_strdup(user_bare);
        j->contact = kn_strdup(contact);
        j->skip_user = true;
        kn_stanza_builder_t *b = p->b;
        kn_stanza_builder_reset(b);
        kn_stanza_builder_start(b, "presence", KN_NS_CLIENT);
        kn_stanza_builder_attr(b, "type", kn_env_type_name(types[i]));
        j->st = kn_stanza_builder_finish(b);
        subq_push(p, j);
    }
}
