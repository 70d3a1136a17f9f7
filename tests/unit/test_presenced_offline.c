/*
 * test_presenced_offline.c - presenced's offline handler against a real
 * PostgreSQL (KILN_TEST_PG, the test stack's kiln database with its
 * schema; the program fails when it is unset), driven with envelopes and
 * a capture sink, as the router would.
 *
 * A stale view (R-PRES-5, docs/CLUSTER.md): the router hands presenced a
 * message for a user with no available resource, but presenced still
 * counts one available (a resource came up while the message was in
 * flight, or presenced missed a session's end). It sends the message on
 * to the bare JID, marked KN_F_OFFLINE_RESENT, so the router routes it
 * like any message: with no resource for it there either, it comes back
 * to the offline handler (mark kept), or bounces, and is stored: one row,
 * and never sent on a second time. Before, it went out with
 * KN_F_NO_OFFLINE, bounced back to presenced, which dropped it: lost.
 */
#include <check.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kn_mem.h"
#include "kn_pg.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"

#define DOMAIN "off.test"

static const char *conninfo;
static struct ev_loop *loop;
static kn_pg_pool_t *pool;
static char user[64], bare[96], full[128];

typedef struct cap {
    kn_env_kind_t kind;
    kn_env_stanza_t stanza;
    kn_env_type_t type;
    uint16_t flags;
    char to[128];
    char from[128];
    char payload[2048];
    size_t len;
    kn_env_reason_t reason;
    uint64_t ack_id;
    size_t ntargets;
    uint64_t target0;
} cap_t;

static cap_t caps[256];
static int ncap;

static void cap_send(void *ud, const kn_env_t *env, const void *payload,
                     size_t len)
{
    (void)ud;
    ck_assert_int_lt(ncap, 256);
    cap_t *c = &caps[ncap++];
    memset(c, 0, sizeof(*c));
    c->kind = env->kind;
    c->stanza = env->stanza;
    c->type = env->type;
    c->flags = env->flags;
    c->reason = env->reason;
    c->ack_id = env->ack_id;
    c->ntargets = env->ntargets;
    c->target0 = env->ntargets > 0 ? kn_env_target(env, 0) : 0;
    snprintf(c->to, sizeof(c->to), "%.*s", (int)env->to_len, env->to);
    snprintf(c->from, sizeof(c->from), "%.*s", (int)env->from_len, env->from);
    ck_assert_uint_lt(len, sizeof(c->payload));
    if (len > 0)
        memcpy(c->payload, payload, len);
    c->len = len;
}

/* ---- the loop and the database ---- */

static int timed_out;
static void on_deadline(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    timed_out = 1;
    ev_break(l, EVBREAK_ALL);
}

static int idle_polls;
static kn_pg_pool_t *watched; /* the pool settle() waits for (NULL: pool) */
static void on_settle_poll(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    /* Idle twice in a row: a callback may have queued more work. */
    if (kn_pg_pool_pending(watched ? watched : pool) == 0) {
        if (++idle_polls >= 2)
            ev_break(l, EVBREAK_ALL);
    } else {
        idle_polls = 0;
    }
}

/* Run the loop until every query presenced queued (and the ones their
 * callbacks queued) has completed. */
static void settle(void)
{
    ev_timer deadline, poll;
    timed_out = 0;
    idle_polls = 0;
    ev_timer_init(&deadline, on_deadline, 20., 0.);
    ev_timer_init(&poll, on_settle_poll, 0.01, 0.01);
    ev_timer_start(loop, &deadline);
    ev_timer_start(loop, &poll);
    ev_run(loop, 0);
    ev_timer_stop(loop, &poll);
    ev_timer_stop(loop, &deadline);
    ck_assert_int_eq(timed_out, 0);
}

typedef struct sync_q {
    int done, err;
    char v0[2048], v1[4096];
} sync_q_t;

static void on_sync(const PGresult *res, int err, void *arg)
{
    sync_q_t *q = arg;
    q->done = 1;
    q->err = err;
    if (err == 0 && PQntuples(res) > 0) {
        if (PQnfields(res) > 0)
            snprintf(q->v0, sizeof(q->v0), "%s", PQgetvalue(res, 0, 0));
        if (PQnfields(res) > 1)
            snprintf(q->v1, sizeof(q->v1), "%s", PQgetvalue(res, 0, 1));
    }
    ev_break(loop, EVBREAK_ALL);
}

static void sync_query(const char *sql, sync_q_t *q)
{
    memset(q, 0, sizeof(*q));
    const char *params[] = {user};
    kn_pg_query(pool, sql, 1, params, on_sync, q);
    ev_timer deadline;
    timed_out = 0;
    ev_timer_init(&deadline, on_deadline, 20., 0.);
    ev_timer_start(loop, &deadline);
    while (!q->done && !timed_out)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &deadline);
    ck_assert_int_eq(q->done, 1);
    ck_assert_int_eq(q->err, 0);
}

/* The user's stored rows: how many, and their stanzas joined by '|'. */
static int stored(char *stanzas, size_t cap)
{
    sync_q_t q;
    sync_query("select count(*), coalesce(string_agg(stanza, '|' order by"
               " id), '') from offline_messages where username = $1",
               &q);
    if (stanzas != NULL)
        snprintf(stanzas, cap, "%s", q.v1);
    return atoi(q.v0);
}

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    kn_pg_config_t cfg = {.conninfo = conninfo,
                          .pool_min = 1,
                          .pool_max = 1,
                          .checkout_timeout_ms = 10000,
                          .pipeline_max = 16};
    ck_assert_int_eq(kn_pg_pool_new(loop, &cfg, &pool), 0);
    snprintf(user, sizeof(user), "offresent%ld", (long)getpid());
    snprintf(bare, sizeof(bare), "%s@" DOMAIN, user);
    snprintf(full, sizeof(full), "%s/phone", bare);
    sync_q_t q;
    sync_query("delete from users where username = $1", &q);
    sync_query("insert into users (username, iterations, sha1_salt,"
               " sha1_stored_key, sha1_server_key, sha256_salt,"
               " sha256_stored_key, sha256_server_key) values ($1, 4096,"
               " '\\x01', decode(repeat('00', 20), 'hex'),"
               " decode(repeat('00', 20), 'hex'), '\\x01',"
               " decode(repeat('00', 32), 'hex'),"
               " decode(repeat('00', 32), 'hex'))",
               &q);
}

static void teardown(void)
{
    sync_q_t q;
    sync_query("delete from users where username = $1", &q); /* cascades */
    kn_pg_pool_free(&pool);
    ev_loop_destroy(loop);
    loop = NULL;
}

/* ---- what the router hands presenced ---- */

#define CONN (((uint64_t)3 << KN_CONN_NODE_SHIFT) | 7)

static pres_t *mk_on(kn_pg_pool_t *db)
{
    pres_conf_t conf = {0};
    conf.offline_type = PRES_OFFLINE_STORE_AND_BOUNCE;
    conf.offline_quota_bytes = 102400;
    conf.shared_poll_ms = 250;
    conf.roster_presence = 1;
    pres_sink_t sink = {cap_send, NULL};
    ncap = 0;
    return pres_new(loop, DOMAIN, &conf, &sink, db, NULL);
}

static pres_t *mk(void)
{
    return mk_on(pool);
}

/* The user logs in: its session, and its initial presence (the login
 * flow runs against the database). */
static void login(pres_t *p)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.from = full;
    e.from_len = strlen(full);
    e.conn_id = CONN;
    e.flags = KN_F_AVAILABLE;
    pres_handle(p, &e, NULL, 0);
    settle();
    char xml[256];
    snprintf(xml, sizeof(xml), "<presence xmlns='jabber:client' from='%s'/>",
             full);
    kn_env_t pe = {0};
    pe.kind = KN_ENV_STANZA;
    pe.stanza = KN_ENV_ST_PRESENCE;
    pe.type = KN_ENV_TYPE_AVAILABLE;
    pe.from = full;
    pe.from_len = strlen(full);
    pe.conn_id = CONN;
    pres_handle(p, &pe, xml, strlen(xml));
    settle();
    ck_assert_uint_eq(pres_user_navail(pres_user_find(p, bare)), 1);
}

/* The router's route_offline: a message for a user it has no available
 * resource for, handed to the offline handler. */
static void to_offline_handler_as(pres_t *p, const char *body,
                                  uint64_t handoff);

static void to_offline_handler(pres_t *p, const char *body)
{
    to_offline_handler_as(p, body, 0);
}

/* The same as the router hands it when it keeps a copy until we
 * acknowledge it (handoff: its id, KN_F_OFFLINE_HANDOFF; 0: without). */
static void to_offline_handler_as(pres_t *p, const char *body, uint64_t handoff)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<message xmlns='jabber:client' from='s@" DOMAIN
             "/a' to='%s' type='chat' id='%s'><body>%s</body></message>",
             bare, body, body);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "s@" DOMAIN "/a";
    e.from_len = strlen(e.from);
    e.to = bare;
    e.to_len = strlen(bare);
    if (handoff != 0) {
        e.flags = KN_F_OFFLINE_HANDOFF;
        e.ack_id = handoff;
    }
    pres_handle(p, &e, xml, strlen(xml));
}

/* The one message presenced sent on to the user's bare JID since ncap was
 * cleared, or NULL. */
static const cap_t *sent_on(void)
{
    const cap_t *m = NULL;
    for (int i = 0; i < ncap; i++) {
        if (caps[i].stanza != KN_ENV_ST_MESSAGE)
            continue;
        ck_assert_ptr_null(m); /* one at most */
        m = &caps[i];
    }
    return m;
}

/* What the router does with c when it finds no resource for the bare
 * JID (route_offline): to the offline handler with the envelope's flags,
 * or, for KN_F_NO_OFFLINE, bounced to its sender, presenced. */
static void back_from_router(pres_t *p, const cap_t *c, bool as_bounce)
{
    cap_t m = *c;
    kn_env_t e = {0};
    e.stanza = m.stanza;
    e.type = m.type;
    e.flags = m.flags;
    e.from = m.from;
    e.from_len = strlen(m.from);
    e.to = m.to;
    e.to_len = strlen(m.to);
    if (as_bounce || (m.flags & KN_F_NO_OFFLINE)) {
        e.kind = KN_ENV_BOUNCE;
        e.seq = KN_STE_SERVICE_UNAVAILABLE;
    } else {
        e.kind = KN_ENV_STANZA;
    }
    ncap = 0;
    pres_handle(p, &e, m.payload, m.len);
    settle();
}

/* The hand-off ACKs (KN_F_OFFLINE_HANDOFF) sent since ncap was cleared
 * that name id, and no message (a bounce or a resend) after one. */
/* Hand-off ids of this run (unique across runs sharing the database,
 * as the router's are). */
#define HID(n) (((uint64_t)getpid() << 20) + (n))

static int handoff_acks(uint64_t id)
{
    int n = 0;
    for (int i = 0; i < ncap; i++) {
        if (caps[i].kind == KN_ENV_ACK &&
            (caps[i].flags & KN_F_OFFLINE_HANDOFF)) {
            ck_assert_uint_eq(caps[i].ntargets, 1);
            n += caps[i].target0 == id;
        } else {
            ck_assert_int_eq(n, 0); /* what it caused goes first */
        }
    }
    return n;
}

/* Issue 14 (kill -9 of presenced): the router keeps what it hands the
 * offline handler until acknowledged and hands it again to the next
 * presenced. A presenced killed after storing a message but before its
 * ACK left: the next one is handed it again and must not store it twice
 * (the hand-off id is a unique key of the row); it acknowledges it all
 * the same, and bounces nothing. */
START_TEST(handoff_stored_once_and_acknowledged_R_PRES_5)
{
    pres_t *p = mk();
    to_offline_handler_as(p, "h1", HID(9001));
    settle();
    ck_assert_int_eq(handoff_acks(HID(9001)), 1);
    char rows[4096];
    ck_assert_int_eq(stored(rows, sizeof(rows)), 1);
    ck_assert(strstr(rows, "<body>h1</body>") != NULL);
    pres_free(&p); /* killed: the router did not see the ACK */
    p = mk();
    to_offline_handler_as(p, "h1", HID(9001)); /* handed again */
    settle();
    ck_assert_int_eq(handoff_acks(HID(9001)), 1);
    ck_assert_int_eq(stored(NULL, 0), 1);
    ck_assert_uint_eq(p->stats.offline_stored, 0);
    ck_assert_uint_eq(p->stats.offline_bounced, 0);
    ck_assert_uint_eq(p->stats.offline_dups, 1);
    for (int i = 0; i < ncap; i++)
        ck_assert_int_ne(caps[i].stanza, KN_ENV_ST_MESSAGE); /* no bounce */
    /* Another hand-off is another message. */
    ncap = 0;
    to_offline_handler_as(p, "h2", HID(9002));
    settle();
    ck_assert_int_eq(handoff_acks(HID(9002)), 1);
    ck_assert_int_eq(stored(NULL, 0), 2);
    /* One not worth storing (no body) is acknowledged too. */
    ncap = 0;
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = KN_F_OFFLINE_HANDOFF;
    e.ack_id = HID(9003);
    char xml[256];
    snprintf(xml, sizeof(xml),
             "<message xmlns='jabber:client' from='s@" DOMAIN
             "/a' to='%s' type='chat'><active/></message>",
             bare);
    pres_handle(p, &e, xml, strlen(xml));
    ck_assert_int_eq(handoff_acks(HID(9003)), 1);
    ck_assert_int_eq(stored(NULL, 0), 2);
    pres_free(&p);
}
END_TEST

/* A message sent on to an available resource (a stale view) is
 * acknowledged after the resend, so the router's copy goes only once the
 * resend is on its way (one socket: in order). */
START_TEST(handoff_sent_on_acknowledged_after_the_resend_R_PRES_5)
{
    pres_t *p = mk();
    login(p);
    ncap = 0;
    to_offline_handler_as(p, "r1", HID(9101));
    settle();
    ck_assert_ptr_nonnull(sent_on());
    ck_assert_int_eq(handoff_acks(HID(9101)), 1);
    ck_assert_int_eq(stored(NULL, 0), 0);
    pres_free(&p);
}
END_TEST

/* Issue 14 (presenced stopped): c2s's ACK of a written row came after
 * presenced had exited, and the row was delivered again. At a stop
 * presenced tells the router (REGISTER KN_REG_OFFLINE, reason SHUTDOWN)
 * and its stop waits for the answer, after which no ACK comes. */
START_TEST(stop_tells_the_router_and_waits_for_its_answer_R_PRES_5)
{
    pres_t *p = mk();
    ck_assert_uint_eq(pres_offline_stop_pending(p), 0);
    pres_offline_stopping(p);
    ck_assert_int_eq(ncap, 1);
    ck_assert_int_eq(caps[0].kind, KN_ENV_REGISTER);
    ck_assert_uint_eq(caps[0].flags, KN_REG_OFFLINE);
    ck_assert_int_eq(caps[0].reason, KN_ENV_REASON_SHUTDOWN);
    ck_assert_uint_eq(pres_offline_stop_pending(p), 1);
    kn_env_t a = {0};
    a.kind = KN_ENV_REGISTER;
    a.flags = KN_REG_OFFLINE;
    a.reason = KN_ENV_REASON_SHUTDOWN;
    pres_handle(p, &a, NULL, 0);
    ck_assert_uint_eq(pres_offline_stop_pending(p), 0);
    pres_free(&p);
}
END_TEST

START_TEST(resent_message_with_no_resource_stored_once_R_PRES_5)
{
    pres_t *p = mk();
    login(p);
    ck_assert_int_eq(stored(NULL, 0), 0);
    /* presenced counts the user available: the message is sent on. */
    ncap = 0;
    to_offline_handler(p, "first");
    settle();
    const cap_t *c = sent_on();
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->to, bare);
    ck_assert(strstr(c->payload, "<body>first</body>") != NULL);
    ck_assert_int_eq(stored(NULL, 0), 0);
    /* The router has no resource for it either: it comes back and is
     * stored, once, and not sent on again (no loop). */
    back_from_router(p, c, false);
    ck_assert_ptr_null(sent_on());
    char rows[4096];
    ck_assert_int_eq(stored(rows, sizeof(rows)), 1);
    ck_assert(strstr(rows, "<body>first</body>") != NULL);
    ck_assert_uint_eq(p->stats.offline_stored, 1);
    pres_free(&p);
}
END_TEST

START_TEST(resent_message_bounced_stored_once_R_PRES_5)
{
    pres_t *p = mk();
    login(p);
    ncap = 0;
    to_offline_handler(p, "second");
    settle();
    const cap_t *c = sent_on();
    ck_assert_ptr_nonnull(c);
    /* A bounce of it (the router had no offline handler then): stored
     * too, once, not sent on again. */
    back_from_router(p, c, true);
    ck_assert_ptr_null(sent_on());
    char rows[4096];
    ck_assert_int_eq(stored(rows, sizeof(rows)), 1);
    ck_assert(strstr(rows, "<body>second</body>") != NULL);
    /* Another bounce, not of a message sent on by the offline handler
     * (a presence probe's answer, say): dropped, nothing stored. */
    cap_t other = {0};
    other.stanza = KN_ENV_ST_MESSAGE;
    other.type = KN_ENV_TYPE_CHAT;
    snprintf(other.from, sizeof(other.from), "%s", DOMAIN);
    snprintf(other.to, sizeof(other.to), "%s", bare);
    other.len = (size_t)snprintf(other.payload, sizeof(other.payload),
                                 "<message xmlns='jabber:client' from='%s'"
                                 " to='%s'><body>other</body></message>",
                                 DOMAIN, bare);
    back_from_router(p, &other, true);
    ck_assert_ptr_null(sent_on());
    ck_assert_int_eq(stored(NULL, 0), 1);
    pres_free(&p);
}
END_TEST

START_TEST(message_for_offline_user_stored_not_sent_on_R_PRES_5)
{
    /* No session: stored at once, as always. */
    pres_t *p = mk();
    ncap = 0;
    to_offline_handler(p, "plain");
    settle();
    ck_assert_ptr_null(sent_on());
    ck_assert_int_eq(stored(NULL, 0), 1);
    pres_free(&p);
}
END_TEST

/* The router re-announces (KN_F_REANNOUNCE) a session that sent available
 * presence (KN_F_AVAILABLE) to a presenced that never saw that presence:
 * it went to a presenced that was down (kill -9) or stopping. Its login
 * flow runs then, so the messages stored meanwhile are delivered now, not
 * at the next login (docs/CLUSTER.md, "Open"). */
static void reannounce(pres_t *p, uint16_t flags)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_UP;
    e.from = full;
    e.from_len = strlen(full);
    e.conn_id = CONN;
    e.flags = flags;
    pres_handle(p, &e, NULL, 0);
    settle();
}

/* The offline rows sent to the session since ncap was cleared. */
static int rows_sent(const char *body)
{
    int n = 0;
    for (int i = 0; i < ncap; i++)
        if (caps[i].stanza == KN_ENV_ST_MESSAGE &&
            (caps[i].flags & KN_F_ACK_WANTED) &&
            strcmp(caps[i].to, full) == 0 &&
            strstr(caps[i].payload, body) != NULL)
            n++;
    return n;
}

START_TEST(reannounced_available_session_gets_its_login_flow_R_PRES_5)
{
    pres_t *p = mk();
    to_offline_handler(p, "meanwhile"); /* no session: stored */
    settle();
    ck_assert_int_eq(stored(NULL, 0), 1);
    ncap = 0;
    reannounce(p, KN_F_REANNOUNCE | KN_F_AVAILABLE);
    ck_assert_int_eq(rows_sent("<body>meanwhile</body>"), 1);
    ck_assert_uint_eq(pres_user_navail(pres_user_find(p, bare)), 1);
    /* Re-announced again (another router restart): nothing again. */
    ncap = 0;
    reannounce(p, KN_F_REANNOUNCE | KN_F_AVAILABLE);
    ck_assert_int_eq(rows_sent("meanwhile"), 0);
    pres_free(&p);
}
END_TEST

START_TEST(new_or_unavailable_session_waits_for_its_presence_R_PRES_5)
{
    pres_t *p = mk();
    to_offline_handler(p, "later");
    settle();
    /* A new session (not re-announced): its presence follows it. */
    ncap = 0;
    reannounce(p, KN_F_AVAILABLE);
    ck_assert_int_eq(rows_sent("later"), 0);
    ck_assert_uint_eq(pres_user_navail(pres_user_find(p, bare)), 0);
    /* Re-announced without available presence: none to run. */
    reannounce(p, KN_F_REANNOUNCE);
    ck_assert_int_eq(rows_sent("later"), 0);
    ck_assert_uint_eq(pres_user_navail(pres_user_find(p, bare)), 0);
    pres_free(&p);
}
END_TEST

/* A PostgreSQL restart (tests/cluster, faults): the insert of a message
 * found no free connection within db.checkout_timeout_ms (-KN_EAGAIN:
 * never sent) and the message, accepted, was bounced to its sender and
 * not stored. It is queued again (bounded) and stored once. */
/* A pool of one connection that gives up a checkout after 100 ms (a
 * database busy or restarting); settle() waits for it. */
static kn_pg_pool_t *small_pool(void)
{
    kn_pg_config_t cfg = {.conninfo = conninfo,
                          .pool_min = 1,
                          .pool_max = 1,
                          .checkout_timeout_ms = 100,
                          .pipeline_max = 1};
    kn_pg_pool_t *small = NULL;
    ck_assert_int_eq(kn_pg_pool_new(loop, &cfg, &small), 0);
    watched = small;
    return small;
}

static void on_sleep(const PGresult *res, int err, void *arg)
{
    (void)res;
    *(int *)arg = err == 0 ? 1 : -1;
}

START_TEST(store_waits_for_a_busy_database_R_PRES_5)
{
    kn_pg_pool_t *small = small_pool();
    pres_t *p = mk_on(small);
    settle(); /* connected */
    int slept = 0;
    const char *none[] = {NULL};
    kn_pg_query(small, "select pg_sleep(0.6)", 0, none, on_sleep, &slept);
    ncap = 0;
    to_offline_handler(p, "busy"); /* waits longer than 100 ms */
    settle();
    ck_assert_int_eq(slept, 1);
    for (int i = 0; i < ncap; i++)
        ck_assert_int_ne(caps[i].type, KN_ENV_TYPE_ERROR); /* no bounce */
    char rows[4096];
    ck_assert_int_eq(stored(rows, sizeof(rows)), 1);
    ck_assert(strstr(rows, "<body>busy</body>") != NULL);
    pres_free(&p);
    watched = NULL;
    kn_pg_pool_free(&small);
}
END_TEST

/* A PostgreSQL restart: the delete of rows the client's c2s reported
 * written failed (no free connection in time, or the connection closed)
 * and the rows were delivered again at the next login. The delete is
 * idempotent: sent again (bounded); the rows stay in flight meanwhile. */
START_TEST(delete_of_written_rows_waits_for_a_busy_database_R_PRES_5)
{
    kn_pg_pool_t *small = small_pool();
    pres_t *p = mk_on(small);
    settle();
    to_offline_handler(p, "written");
    settle();
    ck_assert_int_eq(stored(NULL, 0), 1);
    sync_q_t q;
    sync_query("select id from offline_messages where username = $1", &q);
    uint64_t id = strtoull(q.v0, NULL, 10);
    int slept = 0;
    const char *none[] = {NULL};
    kn_pg_query(small, "select pg_sleep(0.6)", 0, none, on_sleep, &slept);
    kn_env_t ack = {0};
    ack.kind = KN_ENV_ACK;
    ack.targets = &id;
    ack.ntargets = 1;
    pres_handle(p, &ack, NULL, 0); /* waits longer than 100 ms */
    settle();
    ck_assert_int_eq(slept, 1);
    ck_assert_int_eq(stored(NULL, 0), 0);
    pres_free(&p);
    watched = NULL;
    kn_pg_pool_free(&small);
}
END_TEST

int main(void)
{
    conninfo = getenv("KILN_TEST_PG");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "test_presenced_offline: FAIL: KILN_TEST_PG is not "
                        "set; it must name the test stack's kiln database "
                        "(tests/run-all.sh sets it)\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("presenced_offline");
    TCase *tc = tcase_create("offline");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, resent_message_with_no_resource_stored_once_R_PRES_5);
    tcase_add_test(tc, handoff_stored_once_and_acknowledged_R_PRES_5);
    tcase_add_test(tc, handoff_sent_on_acknowledged_after_the_resend_R_PRES_5);
    tcase_add_test(tc, stop_tells_the_router_and_waits_for_its_answer_R_PRES_5);
    tcase_add_test(tc, resent_message_bounced_stored_once_R_PRES_5);
    tcase_add_test(tc, message_for_offline_user_stored_not_sent_on_R_PRES_5);
    tcase_add_test(tc,
                   reannounced_available_session_gets_its_login_flow_R_PRES_5);
    tcase_add_test(tc,
                   new_or_unavailable_session_waits_for_its_presence_R_PRES_5);
    tcase_add_test(tc, store_waits_for_a_busy_database_R_PRES_5);
    tcase_add_test(tc,
                   delete_of_written_rows_waits_for_a_busy_database_R_PRES_5);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
