/*
 * test_c2s_stop.c - a graceful stop of a c2s node (SIGTERM) against a
 * ZeroMQ ROUTER socket played by the test (issue 14, the cluster's
 * rolling restart): a stanza the router sent to a session before it read
 * that session's SESSION_DOWN reaches the stopping node afterwards; it
 * must go back to the router (KN_F_REROUTE: another resource, offline
 * storage or a bounce), not die with the process (nothing accepted is
 * lost). And the node runs until the router acknowledged
 * the stop marker it sends after its SESSION_DOWNs, so that everything
 * the router sent before reading them has been read.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "c2s_server.h"
#include "kn_buf.h"
#include "kn_env.h"
#include "kn_link.h"
#include "kn_log.h"
#include "kn_proto.h"

#define BOOT1 0x11111111u
#define INDEX 3

typedef struct fixture {
    void *ctx;
    void *router;
    struct ev_loop *loop;
    kn_common_conf_t cc;
    c2s_server_t srv;
    char id[64];
    size_t id_len;
} fixture_t;

typedef struct got {
    kn_env_kind_t kind;
    uint16_t flags;
    uint64_t conn_id;
    uint64_t link;
    size_t ntargets;
    char payload[256];
    size_t plen;
} got_t;

static void pump(fixture_t *f)
{
    ev_run(f->loop, EVRUN_NOWAIT);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

/* The next envelope of kind `kind` the node sends (others skipped); 5 s.
 * Returns false when none came. */
static bool wait_kind(fixture_t *f, kn_env_kind_t kind, got_t *out)
{
    for (int i = 0; i < 2500; i++) {
        pump(f);
        zmq_msg_t id, env;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, f->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            continue;
        }
        zmq_msg_init(&env);
        ck_assert_int_ge(zmq_msg_recv(&env, f->router, 0), 0);
        f->id_len = zmq_msg_size(&id);
        ck_assert_uint_le(f->id_len, sizeof(f->id));
        memcpy(f->id, zmq_msg_data(&id), f->id_len);
        kn_env_t e;
        ck_assert_int_eq(
            kn_env_decode(zmq_msg_data(&env), zmq_msg_size(&env), &e), 0);
        memset(out, 0, sizeof(*out));
        out->kind = e.kind;
        out->flags = e.flags;
        out->conn_id = e.conn_id;
        out->link = e.link;
        out->ntargets = e.ntargets;
        int more = zmq_msg_more(&env);
        while (more) {
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            zmq_msg_recv(&rest, f->router, 0);
            size_t n = zmq_msg_size(&rest);
            if (n < sizeof(out->payload)) {
                memcpy(out->payload, zmq_msg_data(&rest), n);
                out->plen = n;
            }
            more = zmq_msg_more(&rest);
            zmq_msg_close(&rest);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&env);
        if (e.kind == kind)
            return true;
    }
    return false;
}

static void router_send(fixture_t *f, const kn_env_t *e, const char *pl)
{
    kn_buf_t b = {0};
    ck_assert_int_ge(kn_env_encode(e, &b), 0);
    ck_assert_int_ge(zmq_send(f->router, f->id, f->id_len, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(
        zmq_send(f->router, b.data, b.len, pl != NULL ? ZMQ_SNDMORE : 0), 0);
    if (pl != NULL)
        ck_assert_int_ge(zmq_send(f->router, pl, strlen(pl), 0), 0);
    kn_buf_free(&b);
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
    f->srv.loop = f->loop;
    f->srv.reserve_fd = -1;
    f->srv.stopping = true; /* no listeners in the test: on_ready skips them */
    f->srv.link = kn_link_new(f->loop, &f->cc, "c2s-t", KN_F_ROLE_C2S,
                              &c2s_link_ops, &f->srv);
    ck_assert_ptr_nonnull(f->srv.link);
    got_t g;
    ck_assert(wait_kind(f, KN_ENV_HELLO, &g));
    kn_env_t ack = {0};
    ack.kind = KN_ENV_HELLO;
    ack.flags = KN_F_ACK;
    ack.seq = BOOT1;
    ack.conn_id = kn_conn_make(INDEX, 0);
    router_send(f, &ack, NULL);
    for (int i = 0; i < 2500 && !kn_link_ready(f->srv.link); i++)
        pump(f);
    ck_assert(kn_link_ready(f->srv.link));
    f->srv.stopping = false;
}

static void fixture_close(fixture_t *f)
{
    kn_link_free(&f->srv.link);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    ev_loop_destroy(f->loop);
    free(f->cc.router_endpoint);
}

#define MSG                                                                    \
    "<message xmlns='jabber:client' type='chat' to='u1@kiln.test/r' "          \
    "from='u2@kiln.test/r' id='m1'><body>late</body></message>"

/* A chat message for a session the stopping node has already ended. */
static void send_late_message(fixture_t *f)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.conn_id = kn_conn_make(INDEX, 5);
    e.to = "u1@kiln.test/r";
    e.to_len = strlen(e.to);
    e.from = "u2@kiln.test/r";
    e.from_len = strlen(e.from);
    router_send(f, &e, MSG);
}

START_TEST(stopping_node_reroutes_a_late_stanza)
{
    fixture_t f;
    fixture_open(&f);
    c2s_server_shutdown(&f.srv);
    ck_assert(f.srv.stopping);
    send_late_message(&f);
    got_t g;
    ck_assert_msg(wait_kind(&f, KN_ENV_STANZA, &g),
                  "a stanza that reached the stopping node was dropped");
    ck_assert(g.flags & KN_F_REROUTE);
    ck_assert_uint_eq(g.conn_id, 0);
    ck_assert_uint_eq(g.plen, strlen(MSG));
    ck_assert(memcmp(g.payload, MSG, g.plen) == 0);
    fixture_close(&f);
}
END_TEST

START_TEST(stop_waits_for_the_router_to_ack_its_marker)
{
    fixture_t f;
    fixture_open(&f);
    ck_assert_uint_eq(c2s_server_pending(&f.srv), 0);
    c2s_server_shutdown(&f.srv);
    got_t g;
    ck_assert(wait_kind(&f, KN_ENV_ACK, &g));
    ck_assert_uint_eq(g.ntargets, 0); /* routed nowhere by the router */
    ck_assert_uint_ne(g.link, 0);     /* but it has a link sequence */
    pump(&f);
    ck_assert_uint_eq(c2s_server_pending(&f.srv), 1);
    /* The router acknowledges an older sequence: still waiting. */
    uint64_t t[KN_LINK_T_COUNT] = {0, g.link - 1};
    kn_env_t hb = {0};
    hb.kind = KN_ENV_HEARTBEAT;
    hb.seq = BOOT1;
    hb.targets = t;
    hb.ntargets = KN_LINK_T_COUNT;
    router_send(&f, &hb, NULL);
    for (int i = 0; i < 50; i++)
        pump(&f);
    ck_assert_uint_eq(c2s_server_pending(&f.srv), 1);
    t[KN_LINK_T_ACKED] = g.link;
    router_send(&f, &hb, NULL);
    for (int i = 0; i < 2500 && c2s_server_pending(&f.srv) > 0; i++)
        pump(&f);
    ck_assert_uint_eq(c2s_server_pending(&f.srv), 0);
    fixture_close(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_stop");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, stopping_node_reroutes_a_late_stanza);
    tcase_add_test(tc, stop_waits_for_the_router_to_ack_its_marker);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    kn_log_init("test_c2s_stop", KN_LOG_WARN);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
