/*
 * test_c2s_idle.c - the idle policy decision (c2s_idle.c, R-DROP-4):
 * ping at T/2 once per silence for bound sessions only, close at T for
 * everything, nothing when off, and the sweep period min(T/4, 5 s).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "c2s_stream.h"

#define T 6.0

static c2s_idle_act_t dec(double silent, bool bound, bool pinged, double t,
                          bool ping, double *next)
{
    return c2s_idle_decide(1000.0 + silent, 1000.0, bound, pinged, t, ping,
                           next);
}

START_TEST(bound_ping_then_close_R_DROP_4)
{
    double next;
    ck_assert_int_eq(dec(0, true, false, T, true, &next), C2S_IDLE_NONE);
    ck_assert_double_eq_tol(next, 1003.0, 1e-9);
    ck_assert_int_eq(dec(2.9, true, false, T, true, &next), C2S_IDLE_NONE);
    ck_assert_double_eq_tol(next, 1003.0, 1e-9);
    /* Within the rounding slack of the deadline counts as reached. */
    ck_assert_int_eq(dec(2.995, true, false, T, true, &next), C2S_IDLE_PING);
    ck_assert_double_eq_tol(next, 1006.0, 1e-9);
    ck_assert_int_eq(dec(3.0, true, false, T, true, &next), C2S_IDLE_PING);
    ck_assert_double_eq_tol(next, 1006.0, 1e-9);
    /* Once per silence. */
    ck_assert_int_eq(dec(4.0, true, true, T, true, &next), C2S_IDLE_NONE);
    ck_assert_double_eq_tol(next, 1006.0, 1e-9);
    ck_assert_int_eq(dec(6.0, true, true, T, true, &next), C2S_IDLE_CLOSE);
    ck_assert(isinf(next));
    /* A sweep that missed the ping still closes at T, not pings. */
    ck_assert_int_eq(dec(7.0, true, false, T, true, &next), C2S_IDLE_CLOSE);
}
END_TEST

START_TEST(unbound_closed_without_ping_R_DROP_4)
{
    double next;
    ck_assert_int_eq(dec(3.5, false, false, T, true, &next), C2S_IDLE_NONE);
    ck_assert_double_eq_tol(next, 1006.0, 1e-9);
    ck_assert_int_eq(dec(5.9, false, false, T, true, &next), C2S_IDLE_NONE);
    ck_assert_int_eq(dec(6.0, false, false, T, true, &next), C2S_IDLE_CLOSE);
}
END_TEST

START_TEST(ping_disabled)
{
    double next;
    ck_assert_int_eq(dec(4.0, true, false, T, false, &next), C2S_IDLE_NONE);
    ck_assert_double_eq_tol(next, 1006.0, 1e-9);
    ck_assert_int_eq(dec(6.0, true, false, T, false, &next), C2S_IDLE_CLOSE);
}
END_TEST

START_TEST(off)
{
    double next = 0;
    ck_assert_int_eq(dec(1e6, true, false, -1, true, &next), C2S_IDLE_NONE);
    ck_assert(isinf(next));
    ck_assert_int_eq(dec(1e6, false, false, 0, true, &next), C2S_IDLE_NONE);
    ck_assert(isinf(next));
}
END_TEST

START_TEST(period)
{
    ck_assert_double_eq_tol(c2s_idle_period(6), 1.5, 1e-9);
    ck_assert_double_eq_tol(c2s_idle_period(20), 5.0, 1e-9);
    ck_assert_double_eq_tol(c2s_idle_period(360), 5.0, 1e-9);
    ck_assert_double_eq_tol(c2s_idle_period(-1), 5.0, 1e-9);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_idle");
    TCase *t = tcase_create("core");
    tcase_add_test(t, bound_ping_then_close_R_DROP_4);
    tcase_add_test(t, unbound_closed_without_ping_R_DROP_4);
    tcase_add_test(t, ping_disabled);
    tcase_add_test(t, off);
    tcase_add_test(t, period);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
