/*
 * test_presenced_conf.c - presenced's config table loads into a struct
 * whatever it held before: main() passes an uninitialised stack struct,
 * and kiln-presenced crashed at start (free() of a garbage pointer in
 * the string fields' defaults) when the stack held a non-NULL word there.
 */
#include <check.h>
#include <string.h>

#include "kn_config.h"
#include "pres.h"

static void load_into_garbage(const char *text, const char *admins)
{
    char err[256];
    kn_conf_t *cf = NULL;
    ck_assert_int_eq(kn_conf_open_string(&cf, text, err, sizeof(err)), 0);
    pres_conf_t pc;
    memset(&pc, 0xA5, sizeof(pc)); /* what a stack may hold */
    ck_assert_int_eq(pres_conf_load(cf, &pc, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(pc.admins);
    ck_assert_str_eq(pc.admins, admins);
    ck_assert_int_eq(pc.mam_enabled, 1);
    pres_conf_free(&pc);
    kn_conf_close(&cf);
}

START_TEST(test_conf_loads_into_uninitialised_struct_R_BASE_1)
{
    load_into_garbage("domain = \"localhost\";", "");
    load_into_garbage("domain = \"localhost\";\n"
                      "presenced = { admins = \"a@localhost\"; };",
                      "a@localhost");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_conf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_conf_loads_into_uninitialised_struct_R_BASE_1);
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
