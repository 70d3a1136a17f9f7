/*
 * test_zmq_ev.c - the ZeroMQ libev watcher: ordering over 10,000 messages,
 * the per-iteration batch bound, the edge-trigger traps (messages queued
 * before watching, a send swallowing the readable edge), multipart frames,
 * the high-water mark and ROUTER_MANDATORY on the send helper.
 *
 * Every case uses a ROUTER/DEALER pair over inproc:// in one ev loop.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_zmq_ev.h"

typedef struct pair {
    void *ctx;
    void *router;
    void *dealer;
    struct ev_loop *loop;
} pair_t;

static int endpoint_seq;

static void pair_open(pair_t *p, int hwm)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://t%d", endpoint_seq++);
    p->ctx = zmq_ctx_new();
    ck_assert_ptr_nonnull(p->ctx);
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    int mand = 1;
    ck_assert_int_eq(
        zmq_setsockopt(p->router, ZMQ_ROUTER_MANDATORY, &mand, sizeof(mand)),
        0);
    zmq_setsockopt(p->router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->dealer, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->dealer, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, "d1", 2);
    ck_assert_int_eq(zmq_bind(p->router, ep), 0);
    ck_assert_int_eq(zmq_connect(p->dealer, ep), 0);
    p->loop = ev_loop_new(EVFLAG_AUTO);
}

static void pair_close(pair_t *p)
{
    int linger = 0;
    zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
    ev_loop_destroy(p->loop);
}

static void send_seq(void *sock, uint32_t seq)
{
    kn_zmq_part_t part = {&seq, sizeof(seq)};
    ck_assert_int_eq(kn_zmq_send(sock, &part, 1), 0);
}

/* Guard against a hang: every loop run has a deadline. */
static int timed_out;
static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    timed_out = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void run_with_deadline(struct ev_loop *loop, double secs)
{
    ev_timer deadline;
    timed_out = 0;
    ev_timer_init(&deadline, on_deadline, secs, 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
}

/* ---- receiver state shared by the cases ---- */

#define MAX_ITERS 100000

typedef struct recv_state {
    uint32_t expect; /* next sequence number */
    uint32_t target; /* break when this many were received */
    unsigned iters;  /* loop iterations seen by the ev_check */
    unsigned per_iter[MAX_ITERS];
    int order_errors;
    int frame_errors;
} recv_state_t;

static recv_state_t rs;

static void on_iter(struct ev_loop *loop, ev_check *c, int revents)
{
    (void)loop;
    (void)c;
    (void)revents;
    rs.iters++;
}

static void on_seq_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    struct ev_loop *loop = arg;
    (void)w;
    if (msg->nframes != 2 || kn_zmq_frame_size(msg, 0) != 2 ||
        memcmp(kn_zmq_frame_data(msg, 0), "d1", 2) != 0 ||
        kn_zmq_frame_size(msg, 1) != sizeof(uint32_t)) {
        rs.frame_errors++;
    } else {
        uint32_t seq;
        memcpy(&seq, kn_zmq_frame_data(msg, 1), sizeof(seq));
        if (seq != rs.expect)
            rs.order_errors++;
    }
    rs.expect++;
    unsigned it = ev_iteration(loop);
    if (it < MAX_ITERS)
        rs.per_iter[it]++;
    if (rs.expect == rs.target)
        ev_break(loop, EVBREAK_ALL);
}

/* The sender runs inside the loop too: 500 messages per iteration. */
typedef struct sender {
    ev_idle idle;
    void *sock;
    uint32_t next, total;
} sender_t;

static void on_send_idle(struct ev_loop *loop, ev_idle *i, int revents)
{
    (void)revents;
    sender_t *s = i->data;
    for (int k = 0; k < 500 && s->next < s->total; k++)
        send_seq(s->sock, s->next++);
    if (s->next == s->total)
        ev_idle_stop(loop, i);
}

START_TEST(ten_thousand_in_order)
{
    pair_t p;
    pair_open(&p, 0);
    memset(&rs, 0, sizeof(rs));
    rs.target = 10000;
    int err = -1;
    kn_zmq_ev_t *w =
        kn_zmq_ev_new(p.loop, p.router, 0, on_seq_msg, p.loop, &err);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(err, 0);
    kn_zmq_ev_start(w);

    sender_t s = {.sock = p.dealer, .total = 10000};
    ev_idle_init(&s.idle, on_send_idle);
    s.idle.data = &s;
    ev_idle_start(p.loop, &s.idle);

    run_with_deadline(p.loop, 10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(rs.expect, 10000);
    ck_assert_int_eq(rs.order_errors, 0);
    ck_assert_int_eq(rs.frame_errors, 0);
    ev_idle_stop(p.loop, &s.idle);
    kn_zmq_ev_free(&w);
    ck_assert_ptr_null(w);
    pair_close(&p);
}
END_TEST

/* 10,000 messages already queued, batch_max 256: no iteration delivers
 * more than 256, and they are spread over at least 40 iterations. The
 * messages were all sent before the watcher existed, so this is also the
 * "queued while nobody watched" edge-trigger case. */
START_TEST(batch_bound_per_iteration)
{
    pair_t p;
    pair_open(&p, 0);
    memset(&rs, 0, sizeof(rs));
    rs.target = 10000;
    for (uint32_t i = 0; i < 10000; i++)
        send_seq(p.dealer, i);

    ev_check counter;
    ev_check_init(&counter, on_iter);
    ev_check_start(p.loop, &counter);
    kn_zmq_ev_t *w =
        kn_zmq_ev_new(p.loop, p.router, 256, on_seq_msg, p.loop, NULL);
    kn_zmq_ev_start(w);
    run_with_deadline(p.loop, 10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(rs.expect, 10000);
    ck_assert_int_eq(rs.order_errors, 0);

    unsigned busy = 0, max = 0;
    for (unsigned i = 0; i < MAX_ITERS; i++) {
        if (rs.per_iter[i])
            busy++;
        if (rs.per_iter[i] > max)
            max = rs.per_iter[i];
    }
    ck_assert_uint_le(max, 256);
    ck_assert_uint_eq(max, 256);
    ck_assert_uint_ge(busy, 10000 / 256);
    /* The last batch may come from the prepare hook of an iteration the
     * loop then leaves at once (ev_break), before its ev_check. */
    ck_assert_uint_ge(rs.iters + 1, busy);
    ev_check_stop(p.loop, &counter);
    kn_zmq_ev_free(&w);
    pair_close(&p);
}
END_TEST

/* Messages arrive while the watcher is stopped, and the application reads
 * ZMQ_EVENTS itself (consuming the edge) before starting it again. */
static void on_restart(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    kn_zmq_ev_t *w = t->data;
    kn_zmq_ev_start(w);
}

START_TEST(queued_while_stopped)
{
    pair_t p;
    pair_open(&p, 0);
    memset(&rs, 0, sizeof(rs));
    rs.target = 100;
    kn_zmq_ev_t *w =
        kn_zmq_ev_new(p.loop, p.router, 0, on_seq_msg, p.loop, NULL);
    kn_zmq_ev_start(w);
    ev_run(p.loop, EVRUN_NOWAIT);
    kn_zmq_ev_stop(w);
    for (uint32_t i = 0; i < 100; i++)
        send_seq(p.dealer, i);
    /* Swallow the edge the way an unrelated getsockopt would. */
    int events;
    size_t sz = sizeof(events);
    ck_assert_int_eq(zmq_getsockopt(p.router, ZMQ_EVENTS, &events, &sz), 0);
    ck_assert(events & ZMQ_POLLIN);

    ev_timer restart;
    ev_timer_init(&restart, on_restart, 0.05, 0.);
    restart.data = w;
    ev_timer_start(p.loop, &restart);
    run_with_deadline(p.loop, 5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(rs.expect, 100);
    ck_assert_int_eq(rs.order_errors, 0);
    kn_zmq_ev_free(&w);
    pair_close(&p);
}
END_TEST

/* Ping-pong: the router echoes every message on the same socket it
 * watches, the dealer answers each echo with the next message. Each send
 * can swallow the readable edge of the sending socket; without the kick in
 * kn_zmq_ev_send() this stalls. */
typedef struct pingpong {
    struct ev_loop *loop;
    kn_zmq_ev_t *rw, *dw;
    uint32_t rounds, target;
    int errors;
} pingpong_t;

static void on_router_echo(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    pingpong_t *pp = arg;
    kn_zmq_part_t parts[2];
    if (msg->nframes != 2) {
        pp->errors++;
        return;
    }
    for (size_t i = 0; i < 2; i++) {
        parts[i].data = kn_zmq_frame_data(msg, i);
        parts[i].len = kn_zmq_frame_size(msg, i);
    }
    if (kn_zmq_ev_send(w, parts, 2) != 0)
        pp->errors++;
}

static void on_dealer_echo(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    pingpong_t *pp = arg;
    uint32_t seq;
    if (msg->nframes != 1 || kn_zmq_frame_size(msg, 0) != sizeof(seq)) {
        pp->errors++;
        return;
    }
    memcpy(&seq, kn_zmq_frame_data(msg, 0), sizeof(seq));
    if (seq != pp->rounds)
        pp->errors++;
    pp->rounds++;
    if (pp->rounds == pp->target) {
        ev_break(pp->loop, EVBREAK_ALL);
        return;
    }
    /* Two in flight at times: send the next before the echo of this. */
    kn_zmq_part_t part = {&pp->rounds, sizeof(pp->rounds)};
    if (kn_zmq_ev_send(w, &part, 1) != 0)
        pp->errors++;
}

START_TEST(send_does_not_lose_edge)
{
    pair_t p;
    pair_open(&p, 1000);
    pingpong_t pp = {.loop = p.loop, .target = 2000};
    pp.rw = kn_zmq_ev_new(p.loop, p.router, 0, on_router_echo, &pp, NULL);
    pp.dw = kn_zmq_ev_new(p.loop, p.dealer, 0, on_dealer_echo, &pp, NULL);
    kn_zmq_ev_start(pp.rw);
    kn_zmq_ev_start(pp.dw);
    uint32_t zero = 0;
    kn_zmq_part_t part = {&zero, sizeof(zero)};
    ck_assert_int_eq(kn_zmq_ev_send(pp.dw, &part, 1), 0);
    run_with_deadline(p.loop, 10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(pp.errors, 0);
    ck_assert_uint_eq(pp.rounds, 2000);
    kn_zmq_ev_free(&pp.rw);
    kn_zmq_ev_free(&pp.dw);
    pair_close(&p);
}
END_TEST

/* The trap in its barest form: a message is queued on the router, then
 * the application sends on the router before the loop polls. The send
 * processes ZeroMQ's command mailbox and resets the fd, which will not
 * become readable again for that message. */
typedef struct trap {
    void *router, *dealer;
    kn_zmq_ev_t *w;
    int got;
} trap_t;

static void on_trap_msg(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    trap_t *t = arg;
    (void)w;
    (void)msg;
    t->got++;
}

static void on_trap_fire(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)revents;
    trap_t *t = tm->data;
    send_seq(t->dealer, 7);
    /* Let the ZeroMQ pipe deliver the activation command to the router. */
    int events;
    size_t sz = sizeof(events);
    for (int i = 0; i < 1000; i++) {
        zmq_getsockopt(t->router, ZMQ_EVENTS, &events, &sz);
        if (events & ZMQ_POLLIN)
            break;
    }
    kn_zmq_part_t parts[2] = {{"d1", 2}, {"x", 1}};
    ck_assert_int_eq(kn_zmq_ev_send(t->w, parts, 2), 0);
}

static void on_trap_check(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)revents;
    trap_t *t = tm->data;
    if (t->got == 1)
        ev_break(loop, EVBREAK_ALL);
}

START_TEST(send_after_arrival_kicks)
{
    pair_t p;
    pair_open(&p, 1000);
    trap_t t = {.router = p.router, .dealer = p.dealer};
    t.w = kn_zmq_ev_new(p.loop, p.router, 0, on_trap_msg, &t, NULL);
    kn_zmq_ev_start(t.w);
    ev_run(p.loop, EVRUN_NOWAIT);
    /* The dealer must be known to the router before it can be sent to. */
    send_seq(p.dealer, 0);
    run_with_deadline(p.loop, 0.2);
    ck_assert_int_eq(t.got, 1);
    t.got = 0;

    ev_timer fire, check;
    ev_timer_init(&fire, on_trap_fire, 0.01, 0.);
    fire.data = &t;
    ev_timer_init(&check, on_trap_check, 0.1, 0.1);
    check.data = &t;
    ev_timer_start(p.loop, &fire);
    ev_timer_start(p.loop, &check);
    run_with_deadline(p.loop, 3.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(t.got, 1);
    ev_timer_stop(p.loop, &check);
    kn_zmq_ev_free(&t.w);
    pair_close(&p);
}
END_TEST

/* Multipart frames arrive intact, including empty and binary frames; a
 * message with too many frames is dropped without disturbing the next. */
typedef struct mp {
    struct ev_loop *loop;
    int seen;
    int ok;
} mp_t;

static void on_multipart(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    mp_t *m = arg;
    (void)w;
    static const char bin[] = {0, 1, 2, 0, (char)0xff};
    m->seen++;
    if (m->seen == 1) {
        m->ok = msg->nframes == 5 && kn_zmq_frame_size(msg, 0) == 2 &&
                kn_zmq_frame_size(msg, 1) == 0 &&
                kn_zmq_frame_size(msg, 2) == 5 &&
                memcmp(kn_zmq_frame_data(msg, 2), "hello", 5) == 0 &&
                kn_zmq_frame_size(msg, 3) == sizeof(bin) &&
                memcmp(kn_zmq_frame_data(msg, 3), bin, sizeof(bin)) == 0 &&
                kn_zmq_frame_size(msg, 4) == 3000;
        /* Take ownership of a frame: the watcher must cope. */
        zmq_msg_t keep;
        zmq_msg_init(&keep);
        zmq_msg_move(&keep, &msg->frames[4]);
        m->ok = m->ok && zmq_msg_size(&keep) == 3000;
        zmq_msg_close(&keep);
    } else {
        m->ok = m->ok && msg->nframes == 2 && kn_zmq_frame_size(msg, 1) == 4 &&
                memcmp(kn_zmq_frame_data(msg, 1), "last", 4) == 0;
        ev_break(m->loop, EVBREAK_ALL);
    }
}

START_TEST(multipart_intact)
{
    pair_t p;
    pair_open(&p, 1000);
    static const char bin[] = {0, 1, 2, 0, (char)0xff};
    char *big = calloc(1, 3000);
    kn_zmq_part_t parts[4] = {
        {"", 0}, {"hello", 5}, {bin, sizeof(bin)}, {big, 3000}};
    ck_assert_int_eq(kn_zmq_send(p.dealer, parts, 4), 0);
    kn_zmq_part_t many[KN_ZMQ_MAX_FRAMES + 2];
    for (size_t i = 0; i < KN_ZMQ_MAX_FRAMES + 2; i++)
        many[i] = (kn_zmq_part_t){"f", 1};
    ck_assert_int_eq(kn_zmq_send(p.dealer, many, KN_ZMQ_MAX_FRAMES + 2), 0);
    kn_zmq_part_t last = {"last", 4};
    ck_assert_int_eq(kn_zmq_send(p.dealer, &last, 1), 0);

    mp_t m = {.loop = p.loop};
    kn_zmq_ev_t *w = kn_zmq_ev_new(p.loop, p.router, 0, on_multipart, &m, NULL);
    kn_zmq_ev_start(w);
    run_with_deadline(p.loop, 3.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(m.seen, 2);
    ck_assert_int_eq(m.ok, 1);
    ck_assert_uint_eq(kn_zmq_ev_dropped(w), 1);
    kn_zmq_ev_free(&w);
    free(big);
    pair_close(&p);
}
END_TEST

/* The callback frees its own watcher; nothing more is delivered. */
static void on_free_self(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    (void)msg;
    int *n = arg;
    (*n)++;
    kn_zmq_ev_free(&w);
}

START_TEST(free_from_callback)
{
    pair_t p;
    pair_open(&p, 1000);
    for (uint32_t i = 0; i < 10; i++)
        send_seq(p.dealer, i);
    int n = 0;
    kn_zmq_ev_t *w = kn_zmq_ev_new(p.loop, p.router, 0, on_free_self, &n, NULL);
    kn_zmq_ev_start(w);
    run_with_deadline(p.loop, 0.2);
    ck_assert_int_eq(n, 1);
    pair_close(&p);
}
END_TEST

/* High-water mark: the helper says -KN_EAGAIN, sends again once the peer
 * drained; ROUTER_MANDATORY with an unknown id says -KN_ENOENT. */
static void on_count(kn_zmq_ev_t *w, kn_zmq_msg_t *msg, void *arg)
{
    (void)w;
    (void)msg;
    (*(int *)arg)++;
}

START_TEST(hwm_and_unroutable)
{
    pair_t p;
    pair_open(&p, 5);
    int sent = 0, rc = 0;
    for (int i = 0; i < 1000; i++) {
        kn_zmq_part_t parts[2] = {{"a", 1}, {"b", 1}};
        rc = kn_zmq_send(p.dealer, parts, 2);
        if (rc != 0)
            break;
        sent++;
    }
    ck_assert_int_eq(rc, -KN_EAGAIN);
    ck_assert_int_gt(sent, 0);
    ck_assert_int_lt(sent, 1000);

    int got = 0;
    kn_zmq_ev_t *w = kn_zmq_ev_new(p.loop, p.router, 0, on_count, &got, NULL);
    kn_zmq_ev_start(w);
    run_with_deadline(p.loop, 0.2);
    ck_assert_int_eq(got, sent);
    kn_zmq_part_t one = {"c", 1};
    ck_assert_int_eq(kn_zmq_send(p.dealer, &one, 1), 0);

    kn_zmq_part_t nobody[2] = {{"nobody", 6}, {"x", 1}};
    ck_assert_int_eq(kn_zmq_ev_send(w, nobody, 2), -KN_ENOENT);
    kn_zmq_ev_free(&w);
    pair_close(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("zmq_ev");
    TCase *tc = tcase_create("zmq_ev");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ten_thousand_in_order);
    tcase_add_test(tc, batch_bound_per_iteration);
    tcase_add_test(tc, queued_while_stopped);
    tcase_add_test(tc, send_does_not_lose_edge);
    tcase_add_test(tc, send_after_arrival_kicks);
    tcase_add_test(tc, multipart_intact);
    tcase_add_test(tc, free_from_callback);
    tcase_add_test(tc, hwm_and_unroutable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
