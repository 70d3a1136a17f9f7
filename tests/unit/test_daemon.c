/*
 * test_daemon.c - the graceful stop (common/kn_daemon.c): the drain state
 * machine on its own (first signal, second signal, nothing pending, the
 * bound), then on a real loop with real SIGTERMs: the loop keeps running
 * until the pending work is done, stops at the bound when it never is,
 * at once on a second signal, and at once with nothing pending.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>

#include "kn_daemon.h"

START_TEST(machine_first_signal_then_done)
{
    kn_drain_t d = {0};
    ck_assert_int_eq(d.state, KN_DRAIN_RUNNING);
    /* Pending work before any signal changes nothing. */
    ck_assert_int_eq(kn_drain_check(&d, 1.0, 0), KN_DRAIN_RUNNING);
    ck_assert_int_eq(kn_drain_signal(&d, 10.0, 2500), KN_DRAIN_DRAINING);
    ck_assert(d.deadline > 12.49 && d.deadline < 12.51);
    ck_assert_int_eq(kn_drain_check(&d, 10.1, 3), KN_DRAIN_DRAINING);
    ck_assert_int_eq(kn_drain_check(&d, 12.4, 1), KN_DRAIN_DRAINING);
    ck_assert_int_eq(kn_drain_check(&d, 12.4, 0), KN_DRAIN_DONE);
    /* Final: neither a check nor a signal leaves DONE. */
    ck_assert_int_eq(kn_drain_check(&d, 20.0, 5), KN_DRAIN_DONE);
    ck_assert_int_eq(kn_drain_signal(&d, 20.0, 2500), KN_DRAIN_DONE);
}
END_TEST

START_TEST(machine_bound_and_second_signal)
{
    kn_drain_t d = {0};
    kn_drain_signal(&d, 0.0, 1000);
    ck_assert_int_eq(kn_drain_check(&d, 0.999, 7), KN_DRAIN_DRAINING);
    ck_assert_int_eq(kn_drain_check(&d, 1.0, 7), KN_DRAIN_EXPIRED);
    ck_assert_int_eq(kn_drain_check(&d, 2.0, 0), KN_DRAIN_EXPIRED);

    kn_drain_t e = {0};
    kn_drain_signal(&e, 0.0, 60000);
    ck_assert_int_eq(kn_drain_signal(&e, 0.1, 60000), KN_DRAIN_EXPIRED);

    /* A zero bound: only what is already finished gets out clean. */
    kn_drain_t z = {0};
    kn_drain_signal(&z, 5.0, 0);
    ck_assert_int_eq(kn_drain_check(&z, 5.0, 1), KN_DRAIN_EXPIRED);
    kn_drain_t y = {0};
    kn_drain_signal(&y, 5.0, 0);
    ck_assert_int_eq(kn_drain_check(&y, 5.0, 0), KN_DRAIN_DONE);
}
END_TEST

/* ---- on a loop: work finished by a timer, one unit per tick ---- */

static struct ev_loop *loop;
static size_t work;    /* pending units */
static int stops;      /* ops.stop calls */
static int ticks;      /* units finished */
static bool accepting; /* cleared by ops.stop */
static ev_timer tick_w, kill_w, guard_w;
static int guard_fired;

static void on_tick(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    if (work > 0) {
        work--;
        ticks++;
    }
}

static void on_stop(void *arg)
{
    ck_assert_ptr_eq(arg, &work);
    stops++;
    accepting = false;
}

static size_t on_pending(void *arg)
{
    return *(size_t *)arg;
}

static const kn_daemon_drain_ops_t ops = {on_stop, on_pending};

static void on_kill(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)revents;
    (void)t;
    raise(SIGTERM);
}

static void on_guard(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    guard_fired = 1;
    ev_break(l, EVBREAK_ALL);
}

/* Run with `units` pending, SIGTERM after 20 ms (and again after
 * `again` s when > 0), a unit finished every `period` s; returns the
 * seconds ev_run took. A 10 s guard timer catches a loop that never
 * stops. The loop is the default loop: signals need it. */
static double run_stop(size_t units, double period, unsigned bound_ms,
                       double again)
{
    loop = EV_DEFAULT;
    work = units;
    stops = ticks = guard_fired = 0;
    accepting = true;
    kn_daemon_signals_drain(loop, &ops, &work, bound_ms);
    ev_timer_init(&tick_w, on_tick, period, period);
    ev_timer_start(loop, &tick_w);
    ev_timer_init(&kill_w, on_kill, 0.02, again);
    ev_timer_start(loop, &kill_w);
    ev_timer_init(&guard_w, on_guard, 10., 0.);
    ev_timer_start(loop, &guard_w);
    ev_now_update(loop);
    double t0 = ev_now(loop);
    ev_run(loop, 0);
    ev_now_update(loop);
    ev_timer_stop(loop, &tick_w);
    ev_timer_stop(loop, &kill_w);
    ev_timer_stop(loop, &guard_w);
    ck_assert_int_eq(guard_fired, 0);
    return ev_now(loop) - t0;
}

START_TEST(loop_runs_until_pending_work_is_done)
{
    /* 30 units at 10 ms: about 300 ms of work, well within the bound. */
    double took = run_stop(30, 0.01, 5000, 0.);
    ck_assert_int_eq(stops, 1);
    ck_assert(!accepting);
    ck_assert_uint_eq(work, 0);
    ck_assert_int_eq(ticks, 30);
    ck_assert(took < 5.0);
}
END_TEST

START_TEST(loop_stops_at_the_bound)
{
    /* Work that never ends (a unit every 100 s): the 200 ms bound. */
    double took = run_stop(5, 100., 200, 0.);
    ck_assert_int_eq(stops, 1);
    ck_assert_uint_eq(work, 5);
    ck_assert(took >= 0.2);
    ck_assert(took < 5.0);
}
END_TEST

START_TEST(loop_second_signal_stops_at_once)
{
    /* A 60 s bound, a second SIGTERM 50 ms after the first. */
    double took = run_stop(5, 100., 60000, 0.05);
    ck_assert_int_eq(stops, 1);
    ck_assert_uint_eq(work, 5);
    ck_assert(took < 5.0);
}
END_TEST

START_TEST(loop_nothing_pending_stops_at_once)
{
    double took = run_stop(0, 100., 60000, 0.);
    ck_assert_int_eq(stops, 1);
    ck_assert(took < 5.0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("drain");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, machine_first_signal_then_done);
    tcase_add_test(tc, machine_bound_and_second_signal);
    tcase_add_test(tc, loop_runs_until_pending_work_is_done);
    tcase_add_test(tc, loop_stops_at_the_bound);
    tcase_add_test(tc, loop_second_signal_stops_at_once);
    tcase_add_test(tc, loop_nothing_pending_stops_at_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
