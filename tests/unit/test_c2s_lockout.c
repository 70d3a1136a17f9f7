/*
 * test_c2s_lockout.c - the SASL lock-out windows without Redis
 * (c2s_lock_table_*, c2s_lockout.c): N failures within W seconds lock a
 * subject for W from the failure that reached N, a window that closed
 * starts counting again, max 0 never locks, clear forgets, subjects are
 * independent; and the address key's text.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_lockout.h"

#define W 10.0

START_TEST(locks_after_n_within_window_for_a_window)
{
    c2s_lock_table_t t = {0};
    ck_assert_uint_eq(c2s_lock_table_fail(&t, "a@x", 100.0, 3, W), 1);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 100.0, 3), 0);
    ck_assert_uint_eq(c2s_lock_table_fail(&t, "a@x", 104.0, 3, W), 2);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 104.5, 3), 0);
    /* The third within the window locks, for W from now (not from 100). */
    ck_assert_uint_eq(c2s_lock_table_fail(&t, "a@x", 109.0, 3, W), 3);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 109.0, 3), 10);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 112.2, 3), 7);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 118.9, 3), 1);
    /* The window ends: unlocked, and the next failure starts at 1. */
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 119.0, 3), 0);
    ck_assert_uint_eq(c2s_lock_table_fail(&t, "a@x", 119.5, 3, W), 1);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "a@x", 119.5, 3), 0);
    c2s_lock_table_free(&t);
    ck_assert_uint_eq(c2s_lock_table_count(&t), 0);
}
END_TEST

START_TEST(failures_spread_beyond_window_never_lock)
{
    c2s_lock_table_t t = {0};
    for (int i = 0; i < 20; i++) {
        /* Two per window of 10 s, threshold 3. */
        double now = 100.0 + 5.5 * i;
        c2s_lock_table_fail(&t, "slow", now, 3, W);
        ck_assert_uint_eq(c2s_lock_table_remaining(&t, "slow", now, 3), 0);
    }
    c2s_lock_table_free(&t);
}
END_TEST

START_TEST(max_zero_counts_but_never_locks)
{
    c2s_lock_table_t t = {0};
    for (unsigned i = 1; i <= 50; i++)
        ck_assert_uint_eq(c2s_lock_table_fail(&t, "k", 1.0, 0, W), i);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "k", 1.0, 0), 0);
    c2s_lock_table_free(&t);
}
END_TEST

START_TEST(clear_and_independent_subjects)
{
    c2s_lock_table_t t = {0};
    for (int i = 0; i < 3; i++)
        c2s_lock_table_fail(&t, "victim@x", 10.0, 3, W);
    c2s_lock_table_fail(&t, "other@x", 10.0, 3, W);
    ck_assert_uint_gt(c2s_lock_table_remaining(&t, "victim@x", 10.0, 3), 0);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "other@x", 10.0, 3), 0);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "nobody@x", 10.0, 3), 0);
    c2s_lock_table_clear(&t, "victim@x");
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "victim@x", 10.0, 3), 0);
    c2s_lock_table_clear(&t, "never@x"); /* absent: nothing */
    ck_assert_uint_eq(c2s_lock_table_count(&t), 1);
    c2s_lock_table_free(&t);
}
END_TEST

START_TEST(bounded)
{
    c2s_lock_table_t t = {0};
    char key[32];
    /* Open windows only: at the bound the table starts over. */
    for (int i = 0; i < C2S_LOCK_TABLE_MAX + 5; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        c2s_lock_table_fail(&t, key, 1.0, 3, W);
    }
    ck_assert_uint_le(c2s_lock_table_count(&t), C2S_LOCK_TABLE_MAX);
    /* Closed windows are dropped first, open ones kept. */
    c2s_lock_table_free(&t);
    for (int i = 0; i < C2S_LOCK_TABLE_MAX - 1; i++) {
        snprintf(key, sizeof(key), "old%d", i);
        c2s_lock_table_fail(&t, key, 1.0, 3, W);
    }
    for (int i = 0; i < 3; i++)
        c2s_lock_table_fail(&t, "live", 50.0, 3, W);
    c2s_lock_table_fail(&t, "new", 55.0, 3, W);
    ck_assert_uint_eq(c2s_lock_table_count(&t), 2);
    ck_assert_uint_eq(c2s_lock_table_remaining(&t, "live", 55.0, 3), 5);
    c2s_lock_table_free(&t);
}
END_TEST

START_TEST(addr_text)
{
    uint8_t k[16] = {0};
    char out[64];
    k[10] = k[11] = 0xff;
    k[12] = 127;
    k[15] = 7;
    c2s_lockout_addr_text(k, out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.7");
    memset(k, 0, sizeof(k));
    k[0] = 0x20;
    k[1] = 0x01;
    k[2] = 0x0d;
    k[3] = 0xb8;
    k[7] = 2;
    c2s_lockout_addr_text(k, out, sizeof(out));
    ck_assert_str_eq(out, "2001:db8:0:2::");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_lockout");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, locks_after_n_within_window_for_a_window);
    tcase_add_test(t, failures_spread_beyond_window_never_lock);
    tcase_add_test(t, max_zero_counts_but_never_locks);
    tcase_add_test(t, clear_and_independent_subjects);
    tcase_add_test(t, bounded);
    tcase_add_test(t, addr_text);
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
