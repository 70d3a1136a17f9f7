/*
 * test_router_comp.c - external components in the router (router_comp.c),
 * driven with envelopes: registration per connection, routing to the
 * component's domain from any node, one conversation on one connection,
 * failover when a connection or its node goes, bounces when none is left
 * (R-GW-1), server disco#items (R-GW-2).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_log.h"
#include "kn_proto.h"
#include "router.h"

#define MAXOUT 256
typedef struct out {
    char node[64];
    kn_env_kind_t kind;
    uint64_t conn;
    uint32_t seq;
    char to[128];
    char payload[2048];
} out_t;

static out_t outs[MAXOUT];
static int nout;
static struct router *r;
static uint16_t ia, ib;

static void cap_send(void *ud, const router_node_t *to, const kn_env_t *env,
                     const router_payload_t *pl)
{
    (void)ud;
    ck_assert_int_lt(nout, MAXOUT);
    out_t *o = &outs[nout++];
    memset(o, 0, sizeof(*o));
    snprintf(o->node, sizeof(o->node), "%s", to->name);
    o->kind = env->kind;
    o->conn = env->conn_id;
    o->seq = env->seq;
    snprintf(o->to, sizeof(o->to), "%.*s", (int)env->to_len, env->to);
    snprintf(o->payload, sizeof(o->payload), "%.*s", (int)pl->len,
             (const char *)pl->data);
}

static void in(const char *node, const kn_env_t *env, const char *payload)
{
    router_payload_t pl = {payload, payload ? strlen(payload) : 0, NULL};
    router_handle(r, node, strlen(node), env, &pl, 100.0);
}

static uint16_t hello(const char *node, uint32_t boot)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_HELLO;
    e.flags = KN_F_ROLE_C2S | KN_F_FRESH;
    e.seq = boot;
    nout = 0;
    in(node, &e, NULL);
    ck_assert_int_eq(nout, 1);
    return kn_conn_node(outs[0].conn);
}

static void comp_reg(const char *node, uint16_t idx, uint64_t local, bool up)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_REGISTER;
    e.flags = up ? KN_REG_COMPONENT : KN_REG_COMPONENT_DOWN;
    e.node = "gw.localhost";
    e.node_len = strlen(e.node);
    e.conn_id = kn_conn_make(idx, local);
    in(node, &e, "IRC gateway");
}

static void send_to(const char *node, kn_env_stanza_t st, kn_env_type_t t,
                    const char *from, const char *to, uint64_t conn)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = st;
    e.type = t;
    e.from = from;
    e.from_len = strlen(from);
    e.to = to;
    e.to_len = strlen(to);
    e.conn_id = conn;
    if (st == KN_ENV_ST_IQ) {
        e.node = "http://jabber.org/protocol/disco#items";
        e.node_len = strlen(e.node);
    }
    nout = 0;
    in(node, &e,
       st == KN_ENV_ST_IQ ? "<iq type='get' id='d1'><query "
                            "xmlns='http://jabber.org/protocol/disco#items'/>"
                            "</iq>"
                          : "<x/>");
}

static void setup(void)
{
    r = router_new("localhost", 77, 15.0, cap_send, NULL);
    ia = hello("c2s-a", 1);
    ib = hello("c2s-b", 2);
    nout = 0;
}

static void teardown(void)
{
    router_free(&r);
}

START_TEST(unknown_domain_bounces)
{
    send_to("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
            "x@gw.localhost", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_uint_eq(outs[0].seq, KN_STE_REMOTE_SERVER_NOT_FOUND);
}
END_TEST

START_TEST(routed_to_its_connection_from_any_node_R_GW_1)
{
    comp_reg("c2s-a", ia, 0x800000000001, true);
    send_to("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
            "x@gw.localhost/res", kn_conn_make(ib, 5));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_STANZA);
    ck_assert_str_eq(outs[0].node, "c2s-a");
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 0x800000000001));
    /* The domain itself too. */
    send_to("c2s-b", KN_ENV_ST_PRESENCE, KN_ENV_TYPE_AVAILABLE, "u@localhost/r",
            "gw.localhost", kn_conn_make(ib, 5));
    ck_assert_int_eq(nout, 1);
    ck_assert_str_eq(outs[0].node, "c2s-a");
}
END_TEST

START_TEST(spread_per_conversation_and_failover_R_GW_1)
{
    comp_reg("c2s-a", ia, 0x800000000001, true);
    comp_reg("c2s-b", ib, 0x800000000002, true);
    comp_reg("c2s-b", ib, 0x800000000002, true); /* re-announced: once */
    uint64_t first[32];
    int on_a = 0;
    for (int i = 0; i < 32; i++) {
        char to[64];
        snprintf(to, sizeof(to), "user%d@gw.localhost", i);
        send_to("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
                to, 0);
        ck_assert_int_eq(nout, 1);
        first[i] = outs[0].conn;
        on_a += kn_conn_node(first[i]) == ia;
        /* Again, from another resource: the same connection. */
        snprintf(to, sizeof(to), "user%d@gw.localhost/x", i);
        send_to("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r2",
                to, 0);
        ck_assert_uint_eq(outs[0].conn, first[i]);
    }
    ck_assert_int_gt(on_a, 0);
    ck_assert_int_lt(on_a, 32);
    /* One connection leaves: everything goes to the other. */
    comp_reg("c2s-b", ib, 0x800000000002, false);
    for (int i = 0; i < 32; i++) {
        char to[64];
        snprintf(to, sizeof(to), "user%d@gw.localhost", i);
        send_to("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
                to, 0);
        ck_assert_int_eq(nout, 1);
        ck_assert_uint_eq(outs[0].conn, kn_conn_make(ia, 0x800000000001));
    }
}
END_TEST

START_TEST(none_left_bounces_at_once_R_GW_1)
{
    comp_reg("c2s-a", ia, 0x800000000001, true);
    comp_reg("c2s-a", ia, 0x800000000001, false);
    send_to("c2s-b", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
            "x@gw.localhost", kn_conn_make(ib, 5));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    ck_assert_uint_eq(outs[0].seq, KN_STE_REMOTE_SERVER_NOT_FOUND);
    send_to("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "u@localhost/r",
            "x@gw.localhost", kn_conn_make(ib, 5));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_uint_eq(outs[0].seq, KN_STE_SERVICE_UNAVAILABLE);
}
END_TEST

START_TEST(node_lost_takes_its_connections)
{
    comp_reg("c2s-a", ia, 0x800000000001, true);
    comp_reg("c2s-b", ib, 0x800000000002, true);
    router_node_lost(r, r->nodes[ib], KN_ENV_REASON_NODE_LOST);
    for (int i = 0; i < 8; i++) {
        char to[64];
        snprintf(to, sizeof(to), "user%d@gw.localhost", i);
        send_to("c2s-a", KN_ENV_ST_MESSAGE, KN_ENV_TYPE_CHAT, "u@localhost/r",
                to, 0);
        ck_assert_int_eq(nout, 1);
        ck_assert_str_eq(outs[0].node, "c2s-a");
    }
}
END_TEST

START_TEST(component_sender_gets_its_bounces)
{
    comp_reg("c2s-b", ib, 0x800000000002, true);
    /* From the component to a user who is not there (iq get). */
    send_to("c2s-b", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "x@gw.localhost",
            "nobody@localhost/r", kn_conn_make(ib, 0x800000000002));
    ck_assert_int_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_BOUNCE);
    ck_assert_str_eq(outs[0].node, "c2s-b");
    ck_assert_uint_eq(outs[0].conn, kn_conn_make(ib, 0x800000000002));
}
END_TEST

START_TEST(server_disco_items_list_components_R_GW_2)
{
    send_to("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "u@localhost/r",
            "localhost", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_ptr_null(strstr(outs[0].payload, "gw.localhost"));
    comp_reg("c2s-a", ia, 0x800000000001, true);
    send_to("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "u@localhost/r",
            "localhost", kn_conn_make(ia, 1));
    ck_assert_int_eq(nout, 1);
    ck_assert_ptr_nonnull(
        strstr(outs[0].payload, "jid='gw.localhost' name='IRC gateway'"));
    comp_reg("c2s-a", ia, 0x800000000001, false);
    send_to("c2s-a", KN_ENV_ST_IQ, KN_ENV_TYPE_GET, "u@localhost/r",
            "localhost", kn_conn_make(ia, 1));
    ck_assert_ptr_null(strstr(outs[0].payload, "gw.localhost"));
}
END_TEST

int main(void)
{
    kn_log_init("test", KN_LOG_ERR);
    Suite *s = suite_create("router_comp");
    TCase *tc = tcase_create("comp");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, unknown_domain_bounces);
    tcase_add_test(tc, routed_to_its_connection_from_any_node_R_GW_1);
    tcase_add_test(tc, spread_per_conversation_and_failover_R_GW_1);
    tcase_add_test(tc, none_left_bounces_at_once_R_GW_1);
    tcase_add_test(tc, node_lost_takes_its_connections);
    tcase_add_test(tc, component_sender_gets_its_bounces);
    tcase_add_test(tc, server_disco_items_list_components_R_GW_2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
