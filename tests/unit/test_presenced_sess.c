/*
 * test_presenced_sess.c - the login's account check reads the users row
 * c2s cached in Redis (kn_credcache.h) before PostgreSQL: which cached
 * values answer "enabled" without PostgreSQL (R-PERF-5).
 */
#include <check.h>
#include <string.h>

#include "pres.h"

static bool enabled(const char *v)
{
    return pres_creds_cached_enabled(v, strlen(v));
}

START_TEST(test_cached_row_enabled_R_PERF_5)
{
    ck_assert(enabled("1 4096 aa bb cc dd ee ff f"));
}
END_TEST

START_TEST(test_other_values_ask_postgres_R_PERF_5)
{
    /* disabled: PostgreSQL decides (and the session is kicked there) */
    ck_assert(!enabled("1 4096 aa bb cc dd ee ff t"));
    /* the tombstone of a change (kilnctl, XEP-0077) */
    ck_assert(!enabled("-"));
    /* another format version, truncated or empty values */
    ck_assert(!enabled("2 4096 aa bb cc dd ee ff f"));
    ck_assert(!enabled("1 f"));
    ck_assert(!enabled("1 4096 aa bb cc dd ee fff"));
    ck_assert(!enabled(""));
    ck_assert(!enabled("f"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_sess");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cached_row_enabled_R_PERF_5);
    tcase_add_test(tc, test_other_values_ask_postgres_R_PERF_5);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
