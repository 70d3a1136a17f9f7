/*
 * test_c2s_bucket.c - the token bucket (c2s_bucket.c, issue 16): starts
 * full, refills at rate up to burst, goes into debt and says how long
 * the debt takes to pay, admission takes nothing when refused, and a
 * clock going backwards adds nothing.
 */
#include <check.h>
#include <stdlib.h>

#include "c2s_bucket.h"

START_TEST(burst_then_rate)
{
    c2s_bucket_t b;
    c2s_bucket_init(&b, 100, 10.0);
    ck_assert(c2s_bucket_take(&b, 10, 100, 60, 10.0));
    ck_assert(c2s_bucket_take(&b, 10, 100, 40, 10.0)); /* exactly empty */
    ck_assert_double_eq_tol(b.tokens, 0, 1e-9);
    ck_assert_double_eq_tol(c2s_bucket_wait(&b, 10), 0, 1e-9);
    /* one byte more: in debt, paid after 0.1 s at 10/s */
    ck_assert(!c2s_bucket_take(&b, 10, 100, 1, 10.0));
    ck_assert_double_eq_tol(c2s_bucket_wait(&b, 10), 0.1, 1e-9);
    /* 2 s later: 20 tokens came, 1 paid the debt */
    ck_assert(c2s_bucket_take(&b, 10, 100, 19, 12.0));
    ck_assert_double_eq_tol(b.tokens, 0, 1e-9);
}
END_TEST

START_TEST(refill_capped_at_burst)
{
    c2s_bucket_t b;
    c2s_bucket_init(&b, 50, 0.0);
    ck_assert(c2s_bucket_take(&b, 5, 50, 50, 0.0));
    c2s_bucket_refill(&b, 5, 50, 1000.0);
    ck_assert_double_eq_tol(b.tokens, 50, 1e-9);
    ck_assert(c2s_bucket_is_full(&b, 5, 50, 1000.0));
    ck_assert(c2s_bucket_take(&b, 5, 50, 1, 1000.0));
    ck_assert(!c2s_bucket_is_full(&b, 5, 50, 1000.0));
    ck_assert(c2s_bucket_is_full(&b, 5, 50, 1000.2));
}
END_TEST

START_TEST(deep_debt)
{
    c2s_bucket_t b;
    c2s_bucket_init(&b, 10, 0.0);
    /* a read far over the burst: the bytes are in, the debt is long */
    ck_assert(!c2s_bucket_take(&b, 10, 10, 1010, 0.0));
    ck_assert_double_eq_tol(c2s_bucket_wait(&b, 10), 100.0, 1e-9);
    ck_assert(!c2s_bucket_take(&b, 10, 10, 0, 50.0));
    ck_assert_double_eq_tol(c2s_bucket_wait(&b, 10), 50.0, 1e-9);
    ck_assert(c2s_bucket_take(&b, 10, 10, 0, 100.0));
}
END_TEST

START_TEST(admit_takes_nothing_when_refused)
{
    c2s_bucket_t b;
    c2s_bucket_init(&b, 3, 0.0);
    ck_assert(c2s_bucket_admit(&b, 1, 3, 0.0));
    ck_assert(c2s_bucket_admit(&b, 1, 3, 0.0));
    ck_assert(c2s_bucket_admit(&b, 1, 3, 0.0));
    for (int i = 0; i < 100; i++) /* a flood stays refused, no debt */
        ck_assert(!c2s_bucket_admit(&b, 1, 3, 0.5));
    ck_assert_double_eq_tol(b.tokens, 0.5, 1e-9);
    ck_assert(c2s_bucket_admit(&b, 1, 3, 1.0));
    ck_assert(!c2s_bucket_admit(&b, 1, 3, 1.0));
}
END_TEST

START_TEST(clock_backwards_and_no_rate)
{
    c2s_bucket_t b;
    c2s_bucket_init(&b, 10, 100.0);
    ck_assert(!c2s_bucket_take(&b, 1, 10, 20, 100.0));
    c2s_bucket_refill(&b, 1, 10, 50.0); /* backwards: nothing */
    ck_assert_double_eq_tol(b.tokens, -10, 1e-9);
    ck_assert_double_eq_tol(b.at, 100.0, 1e-9);
    ck_assert_double_eq_tol(c2s_bucket_wait(&b, 0), 0, 1e-9);
    c2s_bucket_refill(&b, 0, 10, 1e6); /* rate 0: nothing either */
    ck_assert_double_eq_tol(b.tokens, -10, 1e-9);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_bucket");
    TCase *t = tcase_create("core");
    tcase_add_test(t, burst_then_rate);
    tcase_add_test(t, refill_capped_at_burst);
    tcase_add_test(t, deep_debt);
    tcase_add_test(t, admit_takes_nothing_when_refused);
    tcase_add_test(t, clock_backwards_and_no_rate);
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
