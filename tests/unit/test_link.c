/*
 * test_link.c - the node side of the router link (kn_link.c) against a
 * ZeroMQ ROUTER socket played by the test: HELLO, the ACK, and how a
 * later resync is told apart: a REHELLO from a router with the boot id the
 * node knew means the router declared the node lost (R-DROP-6; the
 * sessions it ended must not come back), a new boot id means the router
 * restarted (re-announce them).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_link.h"
#include "kn_log.h"
#include "kn_proto.h"

#define BOOT1 0x11111111u
#define BOOT2 0x22222222u

typedef struct ready_log {
    kn_link_t *l;
    int n;
    bool resync;
    bool lost;
} ready_log_t;

static void on_message(void *ud, const kn_env_t *env, const void *payload,
                       size_t len)
{
    (void)ud;
    (void)env;
    (void)payload;
    (void)len;
}

static void on_ready(void *ud, bool resync)
{
    ready_log_t *rl = ud;
    rl->n++;
    rl->resync = resync;
    rl->lost = kn_link_declared_lost(rl->l);
    if (resync)
        kn_link_synced(rl->l);
}

static const kn_link_ops_t ops = {on_message, on_ready};

typedef struct fixture {
    void *ctx;
    void *router;
    struct ev_loop *loop;
    kn_common_conf_t cc;
    ready_log_t rl;
    char id[64];
    size_t id_len;
} fixture_t;

static void pump(fixture_t *f)
{
    ev_run(f->loop, EVRUN_NOWAIT);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

/* One envelope the node sent, decoded into *e (its strings point into
 * a buffer overwritten by the next call); the sender's identity is kept
 * in f->id. false when nothing is waiting. */
static bool router_recv(fixture_t *f, kn_env_t *e)
{
    static unsigned char buf[4096];
    zmq_msg_t id, env;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, f->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return false;
    }
    zmq_msg_init(&env);
    ck_assert_int_ge(zmq_msg_recv(&env, f->router, 0), 0);
    int more = zmq_msg_more(&env);
    while (more) {
        zmq_msg_t rest;
        zmq_msg_init(&rest);
        zmq_msg_recv(&rest, f->router, 0);
        more = zmq_msg_more(&rest);
        zmq_msg_close(&rest);
    }
    f->id_len = zmq_msg_size(&id);
    ck_assert_uint_le(f->id_len, sizeof(f->id));
    memcpy(f->id, zmq_msg_data(&id), f->id_len);
    size_t n = zmq_msg_size(&env);
    ck_assert_uint_le(n, sizeof(buf));
    memcpy(buf, zmq_msg_data(&env), n);
    zmq_msg_close(&id);
    zmq_msg_close(&env);
    ck_assert_int_eq(kn_env_decode(buf, n, e), 0);
    return true;
}

/* The next HELLO the node sends (other envelopes are skipped); 5 s. */
static kn_env_t wait_hello(fixture_t *f)
{
    for (int i = 0; i < 2500; i++) {
        pump(f);
        kn_env_t e;
        if (router_recv(f, &e) && e.kind == KN_ENV_HELLO) {
            kn_env_t out = {0};
            out.kind = e.kind;
            out.flags = e.flags;
            return out;
        }
    }
    ck_abort_msg("no HELLO from the node");
    kn_env_t none = {0};
    return none;
}

static void router_send(fixture_t *f, kn_env_kind_t kind, uint16_t flags,
                        uint32_t seq)
{
    kn_env_t e = {0};
    e.kind = kind;
    e.flags = flags;
    e.seq = seq;
    e.conn_id = kn_conn_make(3, 0);
    kn_buf_t b = {0};
    ck_assert_int_ge(kn_env_encode(&e, &b), 0);
    ck_assert_int_ge(zmq_send(f->router, f->id, f->id_len, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(f->router, b.data, b.len, 0), 0);
    kn_buf_free(&b);
}

static void wait_ready(fixture_t *f, int n)
{
    for (int i = 0; i < 2500 && f->rl.n < n; i++)
        pump(f);
    ck_assert_int_eq(f->rl.n, n);
}

static void fixture_open(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    f->ctx = zmq_ctx_new();
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    ck_assert_int_eq(zmq_bind(f->router, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t eplen = sizeof(ep);
    ck_assert_int_eq(zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, ep, &eplen),
                     0);
    f->cc.router_endpoint = strdup(ep);
    f->cc.heartbeat_ms = 60000;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->rl.l =
        kn_link_new(f->loop, &f->cc, "c2s-t", KN_F_ROLE_C2S, &ops, &f->rl);
    ck_assert_ptr_nonnull(f->rl.l);
    kn_env_t h = wait_hello(f);
    ck_assert(h.flags & KN_F_FRESH);
    router_send(f, KN_ENV_HELLO, KN_F_ACK, BOOT1);
    wait_ready(f, 1);
    ck_assert(!f->rl.resync);
    ck_assert(!f->rl.lost);
}

static void fixture_close(fixture_t *f)
{
    kn_link_free(&f->rl.l);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    ev_loop_destroy(f->loop);
    free(f->cc.router_endpoint);
}

/* Issue 14 (tests/cluster, a partition of a c2s node): the router that
 * declared the node lost asks it to HELLO again with the same boot id. */
START_TEST(rehello_same_boot_is_declared_lost_R_DROP_6)
{
    fixture_t f;
    fixture_open(&f);
    router_send(&f, KN_ENV_HELLO, KN_F_REHELLO, BOOT1);
    kn_env_t h = wait_hello(&f);
    ck_assert(!(h.flags & KN_F_FRESH));
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT1);
    wait_ready(&f, 2);
    ck_assert(f.rl.resync);
    ck_assert(f.rl.lost);
    fixture_close(&f);
}
END_TEST

/* A restarted router (new boot id) lost nothing: re-announce. */
START_TEST(restarted_router_is_not_declared_lost)
{
    fixture_t f;
    fixture_open(&f);
    router_send(&f, KN_ENV_HEARTBEAT, 0, BOOT2);
    kn_env_t h = wait_hello(&f);
    ck_assert(!(h.flags & KN_F_FRESH));
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT2);
    wait_ready(&f, 2);
    ck_assert(f.rl.resync);
    ck_assert(!f.rl.lost);
    /* and a REHELLO from a router that restarted meanwhile either */
    router_send(&f, KN_ENV_HELLO, KN_F_REHELLO, BOOT2);
    wait_hello(&f);
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT1);
    wait_ready(&f, 3);
    ck_assert(f.rl.resync);
    ck_assert(!f.rl.lost);
    fixture_close(&f);
}
END_TEST

/* The stanza envelopes the node sends within about 0.2 s: their flags,
 * in order (others are skipped). */
static int collect_stanzas(fixture_t *f, uint16_t *flags, int max)
{
    int n = 0;
    for (int i = 0; i < 100; i++) {
        pump(f);
        kn_env_t e;
        while (router_recv(f, &e))
            if (e.kind == KN_ENV_STANZA && n < max)
                flags[n++] = e.flags;
    }
    return n;
}

static void node_send(fixture_t *f, uint16_t flags)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.flags = flags;
    e.from = "a@localhost/x";
    e.from_len = strlen(e.from);
    e.to = "b@localhost/y";
    e.to_len = strlen(e.to);
    ck_assert_int_eq(kn_link_send(f->rl.l, &e, "<x/>", 4), 0);
}

/* Issue 14 (the short cluster form's partition, a duplicate after the
 * heal): a session's queue rerouted by the node while it was cut off
 * (REROUTE + SM_COPY) is not sent again once the router says it had
 * declared the node lost (it rerouted its own copies then); an ordinary
 * unacknowledged stanza is. */
START_TEST(declared_lost_drops_queued_copied_reroutes_R_DROP_6)
{
    fixture_t f;
    fixture_open(&f);
    node_send(&f, 0);
    node_send(&f, KN_F_REROUTE | KN_F_SM_COPY);
    uint16_t got[8];
    ck_assert_int_eq(collect_stanzas(&f, got, 8), 2);
    /* no link ack: both stay queued; the router declared the node lost */
    router_send(&f, KN_ENV_HELLO, KN_F_REHELLO, BOOT1);
    wait_hello(&f);
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT1);
    wait_ready(&f, 2);
    ck_assert(f.rl.lost);
    int n = collect_stanzas(&f, got, 8);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(got[0] & (KN_F_REROUTE | KN_F_SM_COPY), 0);
    fixture_close(&f);
}
END_TEST

/* After a router restart (not declared lost) both are sent again. */
START_TEST(restart_resends_queued_copied_reroutes)
{
    fixture_t f;
    fixture_open(&f);
    node_send(&f, 0);
    node_send(&f, KN_F_REROUTE | KN_F_SM_COPY);
    uint16_t got[8];
    ck_assert_int_eq(collect_stanzas(&f, got, 8), 2);
    router_send(&f, KN_ENV_HEARTBEAT, 0, BOOT2);
    wait_hello(&f);
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT2);
    wait_ready(&f, 2);
    ck_assert(!f.rl.lost);
    ck_assert_int_eq(collect_stanzas(&f, got, 8), 2);
    fixture_close(&f);
}
END_TEST

/* Issue 14, scenario 5 (the failover duplicate): at a re-sync the node
 * tells the router the link ids of the data frames it received from the
 * previous one (HEARTBEAT + KN_F_DELIVERED, u64 little-endian), before
 * its SYNCED, so the new router drops their resends. */
START_TEST(resync_reports_received_link_ids_R_ARCH_2)
{
    fixture_t f;
    fixture_open(&f);
    /* two deliveries, and a carbon (from the bare JID of the session it
     * is for), which is not reported: a side copy */
    const uint64_t ids[3] = {(uint64_t)7 << KN_CONN_NODE_SHIFT | 41,
                             (uint64_t)2 << KN_CONN_NODE_SHIFT | 5,
                             (uint64_t)2 << KN_CONN_NODE_SHIFT | 6};
    for (int i = 0; i < 3; i++) {
        kn_env_t e = {0};
        e.kind = KN_ENV_STANZA;
        e.stanza = KN_ENV_ST_MESSAGE;
        e.type = KN_ENV_TYPE_CHAT;
        e.to = "c@localhost/z";
        e.to_len = strlen(e.to);
        if (i == 2) {
            e.flags = KN_F_EXTRA_COPY | KN_F_NO_OFFLINE;
            e.from = "c@localhost";
            e.from_len = strlen(e.from);
        }
        e.link = ids[i];
        kn_buf_t b = {0};
        ck_assert_int_ge(kn_env_encode(&e, &b), 0);
        ck_assert_int_ge(zmq_send(f.router, f.id, f.id_len, ZMQ_SNDMORE), 0);
        ck_assert_int_ge(zmq_send(f.router, b.data, b.len, ZMQ_SNDMORE), 0);
        ck_assert_int_ge(zmq_send(f.router, "<m/>", 4, 0), 0);
        kn_buf_free(&b);
    }
    for (int i = 0; i < 50; i++)
        pump(&f);
    router_send(&f, KN_ENV_HEARTBEAT, 0, BOOT2); /* a new router */
    wait_hello(&f);
    router_send(&f, KN_ENV_HELLO, KN_F_ACK, BOOT2);
    bool seen[3] = {false, false, false}, synced = false, reported = false;
    for (int i = 0; i < 500 && !synced; i++) {
        pump(&f);
        zmq_msg_t id, env, pl;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, f.router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            continue;
        }
        zmq_msg_init(&env);
        zmq_msg_init(&pl);
        ck_assert_int_ge(zmq_msg_recv(&env, f.router, 0), 0);
        size_t plen = 0;
        unsigned char data[256];
        if (zmq_msg_more(&env)) {
            ck_assert_int_ge(zmq_msg_recv(&pl, f.router, 0), 0);
            plen = zmq_msg_size(&pl);
            ck_assert_uint_le(plen, sizeof(data));
            memcpy(data, zmq_msg_data(&pl), plen);
        }
        kn_env_t e;
        ck_assert_int_eq(
            kn_env_decode(zmq_msg_data(&env), zmq_msg_size(&env), &e), 0);
        if (e.kind == KN_ENV_HEARTBEAT && e.flags & KN_F_DELIVERED) {
            ck_assert(!synced); /* before SYNCED */
            reported = true;
            for (size_t k = 0; k + 8 <= plen; k += 8) {
                uint64_t v = 0;
                for (int b = 7; b >= 0; b--)
                    v = v << 8 | data[k + (size_t)b];
                for (int j = 0; j < 3; j++)
                    if (v == ids[j])
                        seen[j] = true;
            }
        }
        if (e.kind == KN_ENV_HEARTBEAT && e.flags & KN_F_SYNCED)
            synced = true;
        zmq_msg_close(&id);
        zmq_msg_close(&env);
        zmq_msg_close(&pl);
    }
    ck_assert(synced);
    ck_assert(reported);
    ck_assert(seen[0] && seen[1]);
    ck_assert(!seen[2]);
    fixture_close(&f);
}
END_TEST

int main(void)
{
    kn_log_init("test", KN_LOG_ERR);
    Suite *s = suite_create("link");
    TCase *tc = tcase_create("resync");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, rehello_same_boot_is_declared_lost_R_DROP_6);
    tcase_add_test(tc, restarted_router_is_not_declared_lost);
    tcase_add_test(tc, declared_lost_drops_queued_copied_reroutes_R_DROP_6);
    tcase_add_test(tc, restart_resends_queued_copied_reroutes);
    tcase_add_test(tc, resync_reports_received_link_ids_R_ARCH_2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
