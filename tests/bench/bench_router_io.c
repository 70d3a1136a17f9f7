/*
 * bench_router_io.c - the router with its real ZeroMQ I/O: envelopes per
 * second through router_io (decode, route, encode, send) on one thread,
 * fed by a sender DEALER and drained by a receiver DEALER on two other
 * threads, over tcp on loopback.
 *
 *   build/bin/bench_router_io [ENVELOPES] [PAYLOAD_BYTES]
 *
 * The endpoint is tcp://127.0.0.1:25999, or $KILN_BENCH_IO_ENDPOINT (two
 * runs on one machine must not share it: the second one's DEALERs would
 * join the first one's router and the run would hang).
 *
 * Prints one RESULT line. On a 2-core machine the sender and receiver
 * compete with the router for CPU, so the figure is a lower bound; the
 * router thread's own CPU time is printed too (envelopes per router CPU
 * second is the number to compare with the 1,000,000/s target).
 */
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "kn_env.h"
#include "kn_log.h"
#include "kn_proto.h"
#include "router.h"
#include "router_io.h"

#define ENDPOINT_DEFAULT "tcp://127.0.0.1:25999"

static const char *endpoint;

static struct ev_loop *rloop;
static router_io_t *rio;
static volatile int router_ready;
static double router_cpu;

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static ev_async stop_w;

static void *router_thread(void *arg)
{
    (void)arg;
    router_t *r;
    rloop = ev_loop_new(0);
    rio = router_io_new(rloop, endpoint, &r, "localhost", 42, 60.0);
    if (rio == NULL)
        exit(1);
    ev_async_init(&stop_w, on_stop);
    ev_async_start(rloop, &stop_w);
    router_ready = 1;
    double c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    ev_run(rloop, 0);
    router_cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    router_io_free(&rio);
    ev_loop_destroy(rloop);
    return NULL;
}

static void send_env(void *s, const kn_env_t *e, const void *pl, size_t len)
{
    kn_buf_t b = KN_BUF_INIT;
    kn_env_encode(e, &b);
    zmq_send(s, b.data, b.len, ZMQ_SNDMORE);
    zmq_send(s, pl, len, 0);
    kn_buf_free(&b);
}

static void recv_drop(void *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    do {
        zmq_msg_recv(&m, s, 0);
    } while (zmq_msg_more(&m));
    zmq_msg_close(&m);
}

static void *dealer(void *ctx, const char *name)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int hwm = 0;
    zmq_setsockopt(s, ZMQ_ROUTING_ID, name, strlen(name));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_connect(s, endpoint);
    kn_env_t h = {0};
    h.kind = KN_ENV_HELLO;
    h.flags = KN_F_ROLE_C2S | KN_F_FRESH;
    h.seq = 7;
    send_env(s, &h, "", 0);
    recv_drop(s); /* ACK */
    return s;
}

typedef struct {
    void *sock;
    size_t n;
    double t_last;
} recv_arg_t;

static void *receiver(void *arg)
{
    recv_arg_t *ra = arg;
    for (size_t i = 0; i < ra->n; i++)
        recv_drop(ra->sock);
    ra->t_last = now_s(CLOCK_MONOTONIC);
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    size_t plen = argc > 2 ? strtoul(argv[2], NULL, 10) : 120;
    kn_log_init("bench", KN_LOG_ERR);
    endpoint = getenv("KILN_BENCH_IO_ENDPOINT");
    if (endpoint == NULL || *endpoint == '\0')
        endpoint = ENDPOINT_DEFAULT;
    pthread_t rt;
    pthread_create(&rt, NULL, router_thread, NULL);
    while (!router_ready)
        ;
    void *ctx = zmq_ctx_new();
    void *rx = dealer(ctx, "c2s-rx");
    void *tx = dealer(ctx, "c2s-tx");
    /* The receiver node owns bob's session; its index is 1 (first HELLO). */
    kn_env_t up = {0};
    up.kind = KN_ENV_SESSION_UP;
    up.conn_id = kn_conn_make(1, 5);
    up.from = "bob@localhost/r";
    up.from_len = strlen(up.from);
    up.flags = KN_F_AVAILABLE;
    send_env(rx, &up, "", 0);
    char *payload = malloc(plen);
    memset(payload, 'x', plen);
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_CHAT;
    e.from = "alice@localhost/p";
    e.from_len = strlen(e.from);
    e.to = "bob@localhost/r";
    e.to_len = strlen(e.to);
    kn_buf_t eb = KN_BUF_INIT;
    kn_env_encode(&e, &eb);
    /* Warm-up: wait until one envelope makes it through. rx's
     * SESSION_UP and tx's message travel on two connections: until the
     * session is known the message bounces back to tx, so try again. */
    for (;;) {
        zmq_send(tx, eb.data, eb.len, ZMQ_SNDMORE);
        zmq_send(tx, payload, plen, 0);
        zmq_pollitem_t pi = {rx, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&pi, 1, 200) == 1) {
            recv_drop(rx);
            break;
        }
    }
    recv_arg_t ra = {rx, n, 0};
    pthread_t rct;
    pthread_create(&rct, NULL, receiver, &ra);
    double t0 = now_s(CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++) {
        zmq_send(tx, eb.data, eb.len, ZMQ_SNDMORE);
        zmq_send(tx, payload, plen, 0);
    }
    pthread_join(rct, NULL);
    double dt = ra.t_last - t0;
    ev_async_send(rloop, &stop_w);
    pthread_join(rt, NULL);
    printf(
        "RESULT bench=router_io envelopes=%zu payload_bytes=%zu seconds=%.3f "
        "envelopes_per_s=%.0f router_cpu_s=%.3f "
        "envelopes_per_router_cpu_s=%.0f\n",
        n, plen, dt, (double)n / dt, router_cpu,
        router_cpu > 0 ? (double)(n + 1) / router_cpu : 0.0);
    zmq_close(tx);
    zmq_close(rx);
    zmq_ctx_term(ctx);
    kn_buf_free(&eb);
    free(payload);
    return 0;
}
