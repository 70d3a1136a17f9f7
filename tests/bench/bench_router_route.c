/*
 * bench_router_route.c - micro-benchmark of the router's routing logic
 * alone (no sockets): envelopes per second through router_handle() with a
 * table of N sessions over 8 c2s nodes, for the three hot cases: message
 * to a full JID, message to a bare JID, and a 50-target multicast.
 *
 *   build/bin/bench_router_route [SESSIONS] [ENVELOPES]
 *
 * Prints one RESULT line per case. The I/O layer (ZeroMQ) is measured by
 * the load tool end to end; this isolates the table and delivery rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kn_log.h"
#include "kn_proto.h"
#include "router.h"

static unsigned long long sent;

static void null_send(void *ud, const router_node_t *to, const kn_env_t *env,
                      const router_payload_t *pl)
{
    (void)ud;
    (void)to;
    (void)pl;
    sent += env->ntargets ? env->ntargets : 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t nsess = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nenv = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000000;
    kn_log_init("bench", KN_LOG_ERR);
    router_t *r = router_new("localhost", 1, 15.0, null_send, NULL);
    char name[32];
    uint16_t idx[8];
    for (int i = 0; i < 8; i++) {
        kn_env_t h = {0};
        h.kind = KN_ENV_HELLO;
        h.flags = KN_F_ROLE_C2S | KN_F_FRESH;
        h.seq = (uint32_t)i + 1;
        snprintf(name, sizeof(name), "c2s-%d", i);
        router_payload_t none = {NULL, 0, NULL};
        router_handle(r, name, strlen(name), &h, &none, 1.0);
        idx[i] = router_node_by_name(r, name, strlen(name))->index;
    }
    char **fulls = malloc(nsess * sizeof(*fulls));
    for (size_t i = 0; i < nsess; i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "user%zu@localhost/res", i);
        fulls[i] = strdup(buf);
        kn_env_t u = {0};
        u.kind = KN_ENV_SESSION_UP;
        u.conn_id = kn_conn_make(idx[i % 8], i);
        u.from = fulls[i];
        u.from_len = strlen(fulls[i]);
        u.flags = KN_F_AVAILABLE;
        snprintf(name, sizeof(name), "c2s-%zu", i % 8);
        router_payload_t none = {NULL, 0, NULL};
        router_handle(r, name, strlen(name), &u, &none, 1.0);
    }
    const char *payload = "<message xmlns='jabber:client' type='chat'>"
                          "<body>hello</body></message>";
    router_payload_t pl = {payload, strlen(payload), NULL};
    static const char *cases[] = {"full", "bare", "multicast50"};
    uint64_t targets[50];
    for (int c = 0; c < 3; c++) {
        size_t n = c == 2 ? nenv / 50 : nenv;
        sent = 0;
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            kn_env_t e = {0};
            const char *to = fulls[(i * 7919) % nsess];
            const char *from = fulls[i % nsess];
            e.from = from;
            e.from_len = strlen(from);
            if (c < 2) {
                e.kind = KN_ENV_STANZA;
                e.stanza = KN_ENV_ST_MESSAGE;
                e.type = KN_ENV_TYPE_CHAT;
                e.to = to;
                e.to_len = c == 0 ? strlen(to) : (size_t)(strchr(to, '/') - to);
            } else {
                e.kind = KN_ENV_MULTICAST;
                e.stanza = KN_ENV_ST_PRESENCE;
                e.type = KN_ENV_TYPE_AVAILABLE;
                for (int k = 0; k < 50; k++)
                    targets[k] = kn_conn_make(idx[(i + (size_t)k) % 8],
                                              (i + (size_t)k) % nsess);
                e.targets = targets;
                e.ntargets = 50;
            }
            const char *node = "c2s-0";
            router_handle(r, node, 5, &e, &pl, 2.0);
        }
        double dt = now_s() - t0;
        printf("RESULT bench=router_route case=%s sessions=%zu envelopes=%zu "
               "seconds=%.3f envelopes_per_s=%.0f deliveries_per_s=%.0f\n",
               cases[c], nsess, n, dt, (double)n / dt, (double)sent / dt);
    }
    router_free(&r);
    for (size_t i = 0; i < nsess; i++)
        free(fulls[i]);
    free(fulls);
    return 0;
}
