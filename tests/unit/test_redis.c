/*
 * test_redis.c - the hiredis wrapper against a real Redis named by
 * KILN_TEST_REDIS ("unix:/path/redis.sock" or "tcp:host:port"; the program
 * fails when it is unset): SET/GET round trip, 10,000 pipelined INCRs,
 * fail-fast while disconnected, and a server restart (SHUTDOWN NOSAVE,
 * then started again with the same settings, read beforehand with CONFIG
 * GET) during which every pending callback fires exactly once and after
 * which the wrapper is back by itself; kn_redis_pending counts commands
 * until their callbacks ran.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_redis.h"

static const char *addr;
static struct ev_loop *loop;

static int timed_out;
static void on_deadline(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    timed_out = 1;
    ev_break(l, EVBREAK_ALL);
}

static void run_for(double secs)
{
    ev_timer deadline;
    timed_out = 0;
    ev_timer_init(&deadline, on_deadline, secs, 0.);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
}

/* State callback: break the loop on every change, remember the last. */
static int ups, downs, connected;
static void on_state(kn_redis_t *r, int up, void *arg)
{
    (void)r;
    (void)arg;
    connected = up;
    if (up)
        ups++;
    else
        downs++;
    ev_break(loop, EVBREAK_ALL);
}

static kn_redis_t *open_connected(void)
{
    kn_redis_config_t cfg = {.addr = addr};
    kn_redis_t *r = NULL;
    ups = downs = connected = 0;
    ck_assert_int_eq(kn_redis_new(loop, &cfg, on_state, NULL, &r), 0);
    ck_assert_int_eq(kn_redis_is_connected(r), 0);
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(connected, 1);
    ck_assert_int_eq(kn_redis_is_connected(r), 1);
    return r;
}

/* A reply recorder. */
typedef struct rec {
    int calls;
    int err;
    long long integer;
    char str[64];
} rec_t;

static int pending;

static void on_rec(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    rec_t *x = arg;
    x->calls++;
    x->err = err;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        x->integer = reply->integer;
    if (reply &&
        (reply->type == REDIS_REPLY_STRING ||
         reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_ERROR))
        snprintf(x->str, sizeof(x->str), "%s", reply->str);
    if (--pending == 0)
        ev_break(loop, EVBREAK_ALL);
}

START_TEST(bad_address)
{
    kn_redis_config_t cfg = {.addr = "redis://x"};
    kn_redis_t *r = NULL;
    ck_assert_int_eq(kn_redis_new(loop, &cfg, NULL, NULL, &r), -KN_EINVAL);
    ck_assert_ptr_null(r);
    cfg.addr = "tcp:host";
    ck_assert_int_eq(kn_redis_new(loop, &cfg, NULL, NULL, &r), -KN_EINVAL);
}
END_TEST

START_TEST(set_get_round_trip)
{
    kn_redis_t *r = open_connected();
    rec_t set = {0}, get = {0}, bad = {0}, argv = {0};
    static const char val[] = "v\0al";
    kn_redis_command(r, on_rec, &set, "SET kiln:test:k %b", val,
                     sizeof(val) - 1);
    kn_redis_command(r, on_rec, &get, "GET kiln:test:k");
    kn_redis_command(r, on_rec, &bad, "NOSUCHCOMMAND");
    const char *av[] = {"STRLEN", "kiln:test:k"};
    kn_redis_command_argv(r, on_rec, &argv, 2, av, NULL);
    /* What a graceful stop waits for: four commands not answered yet. */
    ck_assert_uint_eq(kn_redis_pending(r), 4);
    pending = 4;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(kn_redis_pending(r), 0);
    ck_assert_int_eq(set.err, 0);
    ck_assert_str_eq(set.str, "OK");
    ck_assert_int_eq(get.err, 0);
    ck_assert_str_eq(get.str, "v");
    ck_assert_int_eq(bad.calls, 1);
    ck_assert_int_eq(bad.err, -KN_EDB);
    ck_assert_int_eq(argv.err, 0);
    ck_assert_int_eq(argv.integer, 4);
    kn_redis_free(&r);
    ck_assert_ptr_null(r);
}
END_TEST

#define NINCR 10000
static int incr_calls[NINCR];
static int incr_bad;

static void on_incr(kn_redis_t *r, redisReply *reply, int err, void *arg)
{
    (void)r;
    long i = (long)arg;
    incr_calls[i]++;
    /* Replies come back in order: the i-th INCR answers i + 1. */
    if (err || !reply || reply->integer != i + 1)
        incr_bad++;
    if (--pending == 0)
        ev_break(loop, EVBREAK_ALL);
}

START_TEST(ten_thousand_pipelined_incr)
{
    kn_redis_t *r = open_connected();
    rec_t del = {0};
    kn_redis_command(r, on_rec, &del, "DEL kiln:test:ctr");
    memset(incr_calls, 0, sizeof(incr_calls));
    incr_bad = 0;
    for (long i = 0; i < NINCR; i++)
        kn_redis_command(r, on_incr, (void *)i, "INCR kiln:test:ctr");
    ck_assert_uint_eq(kn_redis_pending(r), NINCR + 1);
    pending = NINCR + 1;
    run_for(20.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(kn_redis_pending(r), 0);
    ck_assert_int_eq(del.calls, 1);
    for (int i = 0; i < NINCR; i++)
        ck_assert_int_eq(incr_calls[i], 1);
    ck_assert_int_eq(incr_bad, 0);
    kn_redis_free(&r);
}
END_TEST

/* Build the command line that starts the server again as it runs now. */
static char *restart_command(void)
{
    redisContext *c;
    if (strncmp(addr, "unix:", 5) == 0) {
        c = redisConnectUnix(addr + 5);
    } else {
        char host[256];
        const char *colon = strrchr(addr + 4, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - (addr + 4)),
                 addr + 4);
        c = redisConnect(host, atoi(colon + 1));
    }
    ck_assert_msg(c && !c->err, "side connection to %s failed", addr);
    static const char *keys[] = {"port", "unixsocket", "unixsocketperm",
                                 "dir",  "pidfile",    "logfile",
                                 "bind"};
    char *cmd = calloc(1, 4096);
    size_t n = (size_t)snprintf(cmd, 4096,
                                "redis-server --save '' --appendonly no "
                                "--daemonize yes");
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        redisReply *rep = redisCommand(c, "CONFIG GET %s", keys[k]);
        ck_assert_ptr_nonnull(rep);
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[1]->str && rep->element[1]->str[0]) {
            const char *v = rep->element[1]->str;
            /* bind may list several addresses: leave them unquoted. */
            const char *q = strcmp(keys[k], "bind") == 0 ? "" : "'";
            n += (size_t)snprintf(cmd + n, 4096 - n, " --%s %s%s%s", keys[k], q,
                                  v, q);
        }
        freeReplyObject(rep);
    }
    ck_assert_uint_lt(n, 4000);
    redisFree(c);
    return cmd;
}

static struct {
    char *cmd;
    int restarted;
} rs;

static void on_restart_timer(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    /* Blocking here is fine in a test: the server daemonizes. */
    int rc = system(rs.cmd);
    ck_assert_int_eq(rc, 0);
    rs.restarted = 1;
}

#define NBEFORE 100
#define NAFTER  100

/* kn_redis_subscribe: messages published on the channel reach the
 * callback with their payload (binary length included), others do not
 * (issue 15's credential invalidation channel). */
static int msgs, want_msgs;
static char last_msg[64];
static size_t last_len;
static void on_msg(kn_redis_t *r, const char *msg, size_t len, void *arg)
{
    (void)r;
    (void)arg;
    msgs++;
    last_len = len;
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
    if (msgs >= want_msgs)
        ev_break(loop, EVBREAK_ALL);
}

/* PUBLISH msg on chan; the number of receivers. */
static long long publish(kn_redis_t *pub, const char *chan, const char *msg)
{
    rec_t p = {0};
    pending = 1;
    kn_redis_command(pub, on_rec, &p, "PUBLISH %s %s", chan, msg);
    for (int i = 0; i < 10 && p.calls == 0; i++)
        run_for(1.);
    ck_assert_int_eq(p.calls, 1);
    ck_assert_int_eq(p.err, 0);
    return p.integer;
}

static void wait_msgs(int n)
{
    want_msgs = n;
    for (int i = 0; i < 10 && msgs < n; i++)
        run_for(1.);
    want_msgs = 1 << 30;
    ck_assert_int_ge(msgs, n);
}

START_TEST(subscribe_receives_messages)
{
    kn_redis_t *sub = open_connected();
    kn_redis_t *pub = open_connected();
    msgs = 0;
    want_msgs = 1 << 30;
    kn_redis_subscribe(sub, "kiln:test:chan", on_msg, NULL);
    /* Publish until the subscription is in place (PUBLISH counts the
     * receivers), bounded. */
    long long receivers = 0;
    for (int i = 0; i < 100 && receivers < 1; i++)
        receivers = publish(pub, "kiln:test:chan", "hello");
    ck_assert_int_eq(receivers, 1);
    wait_msgs(1);
    ck_assert_str_eq(last_msg, "hello");
    ck_assert_uint_eq(last_len, 5);
    /* Another channel: nothing arrives; then ours again. */
    int before = msgs;
    ck_assert_int_eq(publish(pub, "kiln:test:other", "x"), 0);
    ck_assert_int_eq(publish(pub, "kiln:test:chan", "user42"), 1);
    wait_msgs(before + 1);
    ck_assert_int_eq(msgs, before + 1);
    ck_assert_str_eq(last_msg, "user42");
    kn_redis_free(&sub);
    kn_redis_free(&pub);
}
END_TEST

START_TEST(server_restart)
{
    memset(&rs, 0, sizeof(rs));
    rs.cmd = restart_command();
    kn_redis_t *r = open_connected();

    rec_t warm[NBEFORE], before[NBEFORE], shut = {0}, after[NAFTER];
    memset(warm, 0, sizeof(warm));
    memset(before, 0, sizeof(before));
    memset(after, 0, sizeof(after));
    for (int i = 0; i < NBEFORE; i++)
        kn_redis_command(r, on_rec, &warm[i], "INCR kiln:test:r");
    pending = NBEFORE;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    for (int i = 0; i < NBEFORE; i++)
        ck_assert_int_eq(warm[i].err, 0);

    /* All pending at once. Redis exits inside SHUTDOWN without writing
     * the replies it owed for the commands before it in the same read, so
     * those may come back either way; only "exactly once" is certain. */
    for (int i = 0; i < NBEFORE; i++)
        kn_redis_command(r, on_rec, &before[i], "INCR kiln:test:r");
    kn_redis_command(r, on_rec, &shut, "SHUTDOWN NOSAVE");
    for (int i = 0; i < NAFTER; i++)
        kn_redis_command(r, on_rec, &after[i], "INCR kiln:test:r");
    pending = -1; /* the state callback breaks the loop */
    run_for(10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(downs, 1);
    ck_assert_int_eq(kn_redis_is_connected(r), 0);
    for (int i = 0; i < NBEFORE; i++) {
        ck_assert_int_eq(before[i].calls, 1);
        ck_assert(before[i].err == 0 || before[i].err == -KN_ECLOSED);
    }
    ck_assert_int_eq(shut.calls, 1);
    ck_assert_int_ne(shut.err, 0);
    for (int i = 0; i < NAFTER; i++) {
        ck_assert_int_eq(after[i].calls, 1);
        ck_assert_int_eq(after[i].err, -KN_ECLOSED);
    }

    /* While down: fail fast, once, and not from inside the call. */
    rec_t early = {0};
    kn_redis_command(r, on_rec, &early, "PING");
    ck_assert_int_eq(early.calls, 0);
    pending = 1;
    run_for(1.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(early.calls, 1);
    ck_assert_int_eq(early.err, -KN_ECLOSED);

    /* Let a few reconnect attempts fail, then start the server. */
    ev_timer restart;
    ev_timer_init(&restart, on_restart_timer, 0.5, 0.);
    ev_timer_start(loop, &restart);
    run_for(15.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(rs.restarted, 1);
    ck_assert_int_eq(ups, 2);
    ck_assert_int_eq(kn_redis_is_connected(r), 1);

    rec_t set = {0}, get = {0};
    kn_redis_command(r, on_rec, &set, "SET kiln:test:k2 back");
    kn_redis_command(r, on_rec, &get, "GET kiln:test:k2");
    pending = 2;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_str_eq(get.str, "back");

    /* Freeing with commands in flight: each called once, from free. */
    rec_t inflight[10];
    memset(inflight, 0, sizeof(inflight));
    for (int i = 0; i < 10; i++)
        kn_redis_command(r, on_rec, &inflight[i], "PING");
    pending = -1;
    kn_redis_free(&r);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(inflight[i].calls, 1);
        ck_assert_int_eq(inflight[i].err, -KN_ECLOSED);
    }
    free(rs.cmd);
}
END_TEST

static void loop_setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
}

static void loop_teardown(void)
{
    ev_loop_destroy(loop);
    loop = NULL;
}

int main(void)
{
    addr = getenv("KILN_TEST_REDIS");
    if (!addr || !*addr) {
        fprintf(stderr, "test_redis: FAIL: KILN_TEST_REDIS is not set; it "
                        "must name a test server, e.g. "
                        "\"unix:/tmp/x/redis.sock\" or "
                        "\"tcp:127.0.0.1:6379\"\n");
        return EXIT_FAILURE;
    }
    if (strncmp(addr, "unix:", 5) != 0 &&
        (strncmp(addr, "tcp:", 4) != 0 || !strrchr(addr + 4, ':'))) {
        fprintf(stderr,
                "test_redis: FAIL: KILN_TEST_REDIS=\"%s\" is "
                "neither unix:PATH nor tcp:HOST:PORT\n",
                addr);
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, bad_address);
    tcase_add_test(tc, set_get_round_trip);
    tcase_add_test(tc, ten_thousand_pipelined_incr);
    tcase_add_test(tc, subscribe_receives_messages);
    tcase_add_test(tc, server_restart);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
