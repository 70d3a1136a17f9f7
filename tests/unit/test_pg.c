/*
 * test_pg.c - the libpq pool against a real PostgreSQL named by the
 * KILN_TEST_PG conninfo (the program fails when it is unset): 1000 queries
 * over a pool of 3, each answered once and in order per connection; an SQL
 * error leaves the connection usable, also inside a pipeline; the bounded
 * checkout wait (R-PERF-3); a killed backend fails its query once and the
 * pool reconnects; an unreachable server and freeing the pool still call
 * every callback exactly once; statements are prepared once per
 * connection (also when the first use fails, pipelined or not) and the
 * per-connection statement cache stays bounded. kn_pg_pool_pending counts
 * waiting and in-flight queries until their callbacks ran. Binary
 * parameters (kn_pg_query_bin) next to text ones.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_pg.h"

static const char *conninfo;
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

static kn_pg_pool_t *pool_open(const char *ci, size_t min, size_t max,
                               unsigned checkout_ms, size_t pipeline)
{
    kn_pg_config_t cfg = {.conninfo = ci,
                          .pool_min = min,
                          .pool_max = max,
                          .checkout_timeout_ms = checkout_ms,
                          .pipeline_max = pipeline};
    kn_pg_pool_t *p = NULL;
    ck_assert_int_eq(kn_pg_pool_new(loop, &cfg, &p), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Run the loop until the pool has n connections up. */
static kn_pg_pool_t *ready_pool;
static size_t ready_want;
static void on_ready_poll(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    if (kn_pg_pool_ready(ready_pool) >= ready_want)
        ev_break(l, EVBREAK_ALL);
}

static void wait_ready(kn_pg_pool_t *p, size_t n)
{
    ev_timer poll;
    ready_pool = p;
    ready_want = n;
    ev_timer_init(&poll, on_ready_poll, 0.01, 0.01);
    ev_timer_start(loop, &poll);
    run_for(10.);
    ev_timer_stop(loop, &poll);
    ck_assert_int_eq(timed_out, 0);
}

/* ---- 1000 queries over 3 connections ---- */

#define NQ     1000
#define MAXPID 16

static struct {
    int calls[NQ];
    int errors, order_errors, done;
    int pids[MAXPID];
    int last[MAXPID];
    int npids;
} mq;

static void on_many(const PGresult *res, int err, void *arg)
{
    int i = (int)(long)arg;
    mq.calls[i]++;
    if (err || PQntuples(res) != 1) {
        mq.errors++;
    } else {
        int n = atoi(PQgetvalue(res, 0, 0));
        int pid = atoi(PQgetvalue(res, 0, 1));
        if (n != i)
            mq.errors++;
        int k;
        for (k = 0; k < mq.npids && mq.pids[k] != pid; k++)
            ;
        if (k == mq.npids && k < MAXPID) {
            mq.pids[k] = pid;
            mq.last[k] = -1;
            mq.npids++;
        }
        if (k < MAXPID) {
            if (n <= mq.last[k])
                mq.order_errors++;
            mq.last[k] = n;
        }
    }
    if (++mq.done == NQ)
        ev_break(loop, EVBREAK_ALL);
}

static void many_queries(size_t pipeline)
{
    memset(&mq, 0, sizeof(mq));
    kn_pg_pool_t *p = pool_open(conninfo, 3, 3, 10000, pipeline);
    for (int i = 0; i < NQ; i++) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", i);
        const char *params[1] = {buf};
        kn_pg_query(p, "SELECT $1::int, pg_backend_pid()", 1, params, on_many,
                    (void *)(long)i);
    }
    ck_assert_uint_eq(kn_pg_pool_waiting(p), NQ);
    ck_assert_uint_eq(kn_pg_pool_pending(p), NQ);
    run_for(30.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_uint_eq(kn_pg_pool_pending(p), 0);
    /* Let any stray second callback show itself. */
    run_for(0.1);
    for (int i = 0; i < NQ; i++)
        ck_assert_int_eq(mq.calls[i], 1);
    ck_assert_int_eq(mq.errors, 0);
    ck_assert_int_eq(mq.order_errors, 0);
    ck_assert_int_ge(mq.npids, 1);
    ck_assert_int_le(mq.npids, 3);
    ck_assert_uint_eq(kn_pg_pool_ready(p), 3);
    kn_pg_pool_free(&p);
    ck_assert_ptr_null(p);
}

START_TEST(thousand_queries_pool_of_three)
{
    many_queries(1);
    many_queries(32);
}
END_TEST

/* ---- SQL errors ---- */

typedef struct rec {
    int calls;
    int err;
    int pid;
    char sqlstate[6];
} rec_t;

static int rec_pending;

static void on_rec(const PGresult *res, int err, void *arg)
{
    rec_t *r = arg;
    r->calls++;
    r->err = err;
    if (res && !err && PQnfields(res) >= 1 && PQntuples(res) == 1)
        r->pid = atoi(PQgetvalue(res, 0, 0));
    if (res && err == -KN_EDB) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", st ? st : "");
    }
    if (--rec_pending == 0)
        ev_break(loop, EVBREAK_ALL);
}

START_TEST(syntax_error_keeps_connection)
{
    kn_pg_pool_t *p = pool_open(conninfo, 1, 1, 5000, 8);
    rec_t a = {0}, bad = {0}, b = {0};
    /* Queued before the connection is up: all three go out pipelined. */
    kn_pg_query(p, "SELECT pg_backend_pid()", 0, NULL, on_rec, &a);
    kn_pg_query(p, "SELEC 1", 0, NULL, on_rec, &bad);
    kn_pg_query(p, "SELECT pg_backend_pid()", 0, NULL, on_rec, &b);
    rec_pending = 3;
    run_for(10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(bad.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_int_eq(a.err, 0);
    ck_assert_int_eq(bad.err, -KN_EDB);
    ck_assert_str_eq(bad.sqlstate, "42601");
    ck_assert_int_eq(b.err, 0);
    ck_assert_int_eq(a.pid, b.pid);

    /* And again one at a time, with a parameter type error. */
    rec_t bad2 = {0}, c = {0};
    const char *params[1] = {"not-a-number"};
    kn_pg_query(p, "SELECT $1::int", 1, params, on_rec, &bad2);
    rec_pending = 1;
    run_for(5.);
    ck_assert_int_eq(bad2.err, -KN_EDB);
    ck_assert_str_eq(bad2.sqlstate, "22P02");
    kn_pg_query(p, "SELECT pg_backend_pid()", 0, NULL, on_rec, &c);
    rec_pending = 1;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.err, 0);
    ck_assert_int_eq(c.pid, a.pid);
    kn_pg_pool_free(&p);
}
END_TEST

/* ---- named statements ---- */

static void on_value(const PGresult *res, int err, void *arg)
{
    rec_t *r = arg;
    r->calls++;
    r->err = err;
    /* pid doubles as "the first column as an int" here */
    if (res && !err && PQntuples(res) == 1)
        r->pid = atoi(PQgetvalue(res, 0, 0));
    if (--rec_pending == 0)
        ev_break(loop, EVBREAK_ALL);
}

static int prepared_count(kn_pg_pool_t *p)
{
    rec_t r = {0};
    kn_pg_query(p, "SELECT count(*) FROM pg_prepared_statements", 0, NULL,
                on_value, &r);
    rec_pending = 1;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(r.err, 0);
    return r.pid;
}

START_TEST(statements_prepared_once_and_bounded)
{
    kn_pg_pool_t *p = pool_open(conninfo, 1, 1, 5000, 8);
    rec_t v[5], bad[3];
    memset(v, 0, sizeof(v));
    memset(bad, 0, sizeof(bad));
    /* Queued before the connection is up, so they go out pipelined: the
     * first use prepares, the others reuse the name in the same batch;
     * the broken text fails for both of its pipelined uses. */
    for (int i = 0; i < 5; i++) {
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", i);
        const char *params[1] = {buf};
        kn_pg_query(p, "SELECT $1::int + 10", 1, params, on_value, &v[i]);
        if (i == 1 || i == 2)
            kn_pg_query(p, "SELEC 2", 0, NULL, on_value, &bad[i - 1]);
    }
    rec_pending = 7;
    run_for(10.);
    ck_assert_int_eq(timed_out, 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(v[i].calls, 1);
        ck_assert_int_eq(v[i].err, 0);
        ck_assert_int_eq(v[i].pid, 10 + i);
    }
    ck_assert_int_eq(bad[0].err, -KN_EDB);
    ck_assert_int_eq(bad[1].err, -KN_EDB);
    /* A failed Parse is forgotten: the next use parses again (and fails
     * with the syntax error, not "no such statement"). */
    kn_pg_query(p, "SELEC 2", 0, NULL, on_rec, &bad[2]);
    rec_pending = 1;
    run_for(5.);
    ck_assert_int_eq(bad[2].err, -KN_EDB);
    ck_assert_str_eq(bad[2].sqlstate, "42601");
    /* "+ 10" and the count itself. */
    ck_assert_int_eq(prepared_count(p), 2);

    /* 300 distinct texts: all answered, the cache stops at 256. */
    static rec_t many[300];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 300; i++) {
        char sql[32];
        snprintf(sql, sizeof(sql), "SELECT %d", i);
        kn_pg_query(p, sql, 0, NULL, on_value, &many[i]);
    }
    rec_pending = 300;
    run_for(20.);
    ck_assert_int_eq(timed_out, 0);
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(many[i].err, 0);
        ck_assert_int_eq(many[i].pid, i);
    }
    ck_assert_int_eq(prepared_count(p), 256);
    kn_pg_pool_free(&p);
}
END_TEST

/* ---- bounded checkout (R-PERF-3) ---- */

static struct {
    kn_pg_pool_t *p;
    rec_t slow, fast;
    ev_tstamp fast_sent, fast_done;
} co;

static void on_fast(const PGresult *res, int err, void *arg)
{
    co.fast_done = ev_time();
    on_rec(res, err, arg);
}

static void on_send_fast(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    co.fast_sent = ev_time();
    kn_pg_query(co.p, "SELECT 1", 0, NULL, on_fast, &co.fast);
}

START_TEST(checkout_timeout_when_exhausted)
{
    memset(&co, 0, sizeof(co));
    co.p = pool_open(conninfo, 1, 1, 300, 1);
    wait_ready(co.p, 1);
    kn_pg_query(co.p, "SELECT pg_sleep(2)", 0, NULL, on_rec, &co.slow);
    ev_timer later;
    ev_timer_init(&later, on_send_fast, 0.05, 0.);
    ev_timer_start(loop, &later);
    rec_pending = 2;
    run_for(10.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(co.fast.calls, 1);
    ck_assert_int_eq(co.fast.err, -KN_EAGAIN);
    double waited = co.fast_done - co.fast_sent;
    ck_assert_msg(waited >= 0.25 && waited < 0.7,
                  "checkout failed after %.3f s, want about 0.3", waited);
    ck_assert_int_eq(co.slow.calls, 1);
    ck_assert_int_eq(co.slow.err, 0);
    kn_pg_pool_free(&co.p);
}
END_TEST

/* ---- killed backend ---- */

static struct {
    kn_pg_pool_t *p;
    int pid;
    rec_t sleeper, after;
} kb;

static void on_after(const PGresult *res, int err, void *arg)
{
    on_rec(res, err, arg);
}

static void on_sleeper(const PGresult *res, int err, void *arg)
{
    rec_t *r = arg;
    r->calls++;
    r->err = err;
    (void)res;
    /* Submitted from the error callback: must survive the reconnect. */
    kn_pg_query(kb.p, "SELECT pg_backend_pid()", 0, NULL, on_after, &kb.after);
}

static void on_kill(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    /* A blocking side connection is fine in a test. */
    PGconn *admin = PQconnectdb(conninfo);
    ck_assert_int_eq(PQstatus(admin), CONNECTION_OK);
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", kb.pid);
    const char *params[1] = {buf};
    PGresult *res = PQexecParams(admin, "SELECT pg_terminate_backend($1)", 1,
                                 NULL, params, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    PQfinish(admin);
}

START_TEST(killed_backend_then_reconnect)
{
    memset(&kb, 0, sizeof(kb));
    kb.p = pool_open(conninfo, 1, 1, 3000, 1);
    rec_t first = {0};
    kn_pg_query(kb.p, "SELECT pg_backend_pid()", 0, NULL, on_rec, &first);
    rec_pending = 1;
    run_for(10.);
    ck_assert_int_eq(first.err, 0);
    kb.pid = first.pid;

    kn_pg_query(kb.p, "SELECT pg_sleep(10)", 0, NULL, on_sleeper, &kb.sleeper);
    ev_timer kill;
    ev_timer_init(&kill, on_kill, 0.2, 0.);
    ev_timer_start(loop, &kill);
    rec_pending = 1; /* the query sent from the sleeper's callback */
    run_for(10.);
    ck_assert_int_eq(timed_out, 0);
    run_for(0.3); /* no second callback */
    ck_assert_int_eq(kb.sleeper.calls, 1);
    ck_assert_int_ne(kb.sleeper.err, 0);
    ck_assert_int_eq(kb.after.calls, 1);
    ck_assert_int_eq(kb.after.err, 0);
    ck_assert_int_ne(kb.after.pid, kb.pid);
    ck_assert_uint_eq(kn_pg_pool_ready(kb.p), 1);
    kn_pg_pool_free(&kb.p);
}
END_TEST

/* ---- no server, and freeing the pool ---- */

START_TEST(unreachable_and_free)
{
    kn_pg_pool_t *p = pool_open(
        "host=/nonexistent/kiln-test dbname=x connect_timeout=1", 1, 2, 200, 1);
    rec_t r = {0}, w = {0};
    kn_pg_query(p, "SELECT 1", 0, NULL, on_rec, &r);
    rec_pending = 1;
    run_for(5.);
    ck_assert_int_eq(timed_out, 0);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.err, -KN_EAGAIN);
    ck_assert_uint_eq(kn_pg_pool_ready(p), 0);
    ck_assert_uint_eq(kn_pg_pool_pending(p), 0);
    /* A query still waiting when the pool is freed: called from free. */
    kn_pg_query(p, "SELECT 1", 0, NULL, on_rec, &w);
    rec_pending = 1;
    kn_pg_pool_free(&p);
    ck_assert_int_eq(w.calls, 1);
    ck_assert_int_eq(w.err, -KN_ECLOSED);

    /* In flight when the pool is freed. */
    p = pool_open(conninfo, 1, 1, 5000, 1);
    wait_ready(p, 1);
    rec_t s = {0};
    kn_pg_query(p, "SELECT pg_sleep(5)", 0, NULL, on_rec, &s);
    run_for(0.1);
    ck_assert_int_eq(s.calls, 0);
    /* In flight, not waiting: still pending for a graceful stop. */
    ck_assert_uint_eq(kn_pg_pool_waiting(p), 0);
    ck_assert_uint_eq(kn_pg_pool_pending(p), 1);
    rec_pending = 1;
    kn_pg_pool_free(&p);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(s.err, -KN_ECLOSED);
    run_for(0.1);
    ck_assert_int_eq(s.calls, 1);
}
END_TEST

/* Check forks per test: each child gets its own loop. */
static void loop_setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
}

/* ---- binary parameters (kn_pg_query_bin) ---- */

static char bin_got[3][64];
static int bin_err = -1;

static void on_bin(const PGresult *res, int err, void *arg)
{
    (void)arg;
    bin_err = err;
    if (err == 0 && PQntuples(res) == 1)
        for (int i = 0; i < 3; i++)
            snprintf(bin_got[i], sizeof(bin_got[i]), "%s",
                     PQgetisnull(res, 0, i) ? "(null)" : PQgetvalue(res, 0, i));
    ev_break(loop, EVBREAK_ALL);
}

/* A bigint[] and a text in binary (array_recv: header, then length and
 * bytes per element, -1 for NULL), next to a text parameter; the text's
 * quote and backslash arrive as they are (nothing to escape). Twice:
 * the second run uses the prepared statement. */
START_TEST(binary_parameters_next_to_text)
{
    kn_pg_pool_t *p = pool_open(conninfo, 1, 1, 10000, 4);
    static const unsigned char arr[] = {
        0,   0,   0,   1,   0, 0, 0, 1, 0, 0, 0, 20, /* 1 dim, has NULL, int8 */
        0,   0,   0,   3,   0, 0, 0, 1,              /* 3 elements from 1 */
        0,   0,   0,   8,   0, 0, 0, 0, 0, 0, 0, 7,  /* 7 */
        255, 255, 255, 255,                          /* NULL */
        0,   0,   0,   8,   0, 0, 1, 0, 0, 0, 0, 0,  /* 2^40 */
    };
    static const char txt[] = "a'b\\c\"d";
    const char *params[3] = {(const char *)arr, txt, "plain"};
    const size_t lens[3] = {sizeof(arr), strlen(txt), 0};
    const int binary[3] = {1, 1, 0};
    for (int run = 0; run < 2; run++) {
        memset(bin_got, 0, sizeof(bin_got));
        bin_err = -1;
        kn_pg_query_bin(p, "SELECT $1::bigint[]::text, $2::text, $3::text", 3,
                        params, lens, binary, on_bin, NULL);
        run_for(10.);
        ck_assert_int_eq(timed_out, 0);
        ck_assert_int_eq(bin_err, 0);
        ck_assert_str_eq(bin_got[0], "{7,NULL,1099511627776}");
        ck_assert_str_eq(bin_got[1], txt);
        ck_assert_str_eq(bin_got[2], "plain");
    }
    kn_pg_pool_free(&p);
}
END_TEST

static void loop_teardown(void)
{
    ev_loop_destroy(loop);
    loop = NULL;
}

int main(void)
{
    conninfo = getenv("KILN_TEST_PG");
    if (!conninfo || !*conninfo) {
        fprintf(stderr, "test_pg: FAIL: KILN_TEST_PG is not set; it must "
                        "hold a libpq conninfo string for a test server, "
                        "e.g. \"host=/tmp/pg user=kiln dbname=postgres\"\n");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
    tcase_add_test(tc, thousand_queries_pool_of_three);
    tcase_add_test(tc, syntax_error_keeps_connection);
    tcase_add_test(tc, statements_prepared_once_and_bounded);
    tcase_add_test(tc, checkout_timeout_when_exhausted);
    tcase_add_test(tc, killed_backend_then_reconnect);
    tcase_add_test(tc, unreachable_and_free);
    tcase_add_test(tc, binary_parameters_next_to_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
