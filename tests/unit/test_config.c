/*
 * test_config.c - the directive-table config loader: defaults, overrides,
 * node entries, and every error a mistyped file can produce.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kn_config.h"
#include "kn_err.h"
#include "kn_log.h"

typedef struct demo {
    long long port;
    int tls;
    char *cert;
    int mode;
    long long idle;
} demo_t;

static const char *const modes[] = {"store", "drop", NULL};
#define D(f) offsetof(demo_t, f)
static const kn_conf_def_t demo_defs[] = {
    {"port", KN_CONF_INT, D(port), 5222, NULL, 1, 65535, NULL, "port"},
    {"tls.enabled", KN_CONF_BOOL, D(tls), 1, NULL, 0, 0, NULL, "tls"},
    {"tls.cert", KN_CONF_STR, D(cert), 0, "/etc/cert.pem", 0, 0, NULL, "c"},
    {"mode", KN_CONF_ENUM, D(mode), 0, NULL, 0, 0, modes, "mode"},
    {"idle", KN_CONF_INT, D(idle), 360, NULL, -1, 86400, NULL, "idle"},
    {NULL, KN_CONF_END, 0, 0, NULL, 0, 0, NULL, NULL},
};

static char err[512];

static int load(const char *text, const char *section, const char *node,
                demo_t *d)
{
    kn_conf_t *cf = NULL;
    memset(d, 0, sizeof(*d));
    err[0] = '\0';
    int rc = kn_conf_open_string(&cf, text, err, sizeof(err));
    if (rc < 0)
        return rc;
    if (node != NULL)
        rc = kn_conf_apply_node(cf, section, node, demo_defs, d, err,
                                sizeof(err));
    else
        rc = kn_conf_apply(cf, section, demo_defs, d, err, sizeof(err));
    kn_conf_close(&cf);
    ck_assert_ptr_null(cf);
    return rc;
}

START_TEST(defaults_when_section_missing)
{
    demo_t d;
    ck_assert_int_eq(load("other = { x = 1; };", "c2s", NULL, &d), 0);
    ck_assert_int_eq(d.port, 5222);
    ck_assert_int_eq(d.tls, 1);
    ck_assert_str_eq(d.cert, "/etc/cert.pem");
    ck_assert_int_eq(d.mode, 0);
    ck_assert_int_eq(d.idle, 360);
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_ptr_null(d.cert);
    kn_conf_free_fields(demo_defs, &d); /* idempotent */
}
END_TEST

START_TEST(values_override_defaults)
{
    demo_t d;
    ck_assert_int_eq(load("c2s = { port = 5322; idle = -1; mode = \"drop\";"
                          " tls = { enabled = false; cert = \"/x.pem\"; }; };",
                          "c2s", NULL, &d),
                     0);
    ck_assert_int_eq(d.port, 5322);
    ck_assert_int_eq(d.idle, -1);
    ck_assert_int_eq(d.mode, 1);
    ck_assert_int_eq(d.tls, 0);
    ck_assert_str_eq(d.cert, "/x.pem");
    kn_conf_free_fields(demo_defs, &d);
}
END_TEST

START_TEST(node_entries_override_section)
{
    const char *text = "c2s = { idle = 60; nodes = ("
                       " { name = \"c2s-a\"; port = 5222; },"
                       " { name = \"c2s-b\"; port = 5322; idle = 10; } ); };";
    demo_t d;
    ck_assert_int_eq(load(text, "c2s", "c2s-b", &d), 0);
    ck_assert_int_eq(d.port, 5322);
    ck_assert_int_eq(d.idle, 10);
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load(text, "c2s", "c2s-a", &d), 0);
    ck_assert_int_eq(d.port, 5222);
    ck_assert_int_eq(d.idle, 60);
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load(text, "c2s", "c2s-z", &d), -KN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "c2s-z"));
    kn_conf_free_fields(demo_defs, &d);
}
END_TEST

START_TEST(syntax_error_names_line)
{
    demo_t d;
    ck_assert_int_eq(
        load("c2s = {\n port = 5222;\n idle = = 3; };", "c2s", NULL, &d),
        -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, ":3:"));
}
END_TEST

START_TEST(file_errors)
{
    kn_conf_t *cf = NULL;
    ck_assert_int_eq(
        kn_conf_open(&cf, "/nonexistent/kiln.conf", err, sizeof(err)),
        -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kiln.conf"));
    char path[] = "/tmp/kn_confXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *bad = "domain = \"x\";\nrouter = { bind = ; };\n";
    ck_assert_int_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    ck_assert_int_eq(kn_conf_open(&cf, path, err, sizeof(err)), -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, ":2:"));
    unlink(path);
}
END_TEST

START_TEST(type_range_enum_unknown_errors)
{
    demo_t d;
    ck_assert_int_eq(load("c2s = { port = \"x\"; };", "c2s", NULL, &d),
                     -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "c2s.port"));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load("c2s = { port = 70000; };", "c2s", NULL, &d),
                     -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load("c2s = { mode = \"keep\"; };", "c2s", NULL, &d),
                     -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "\"drop\""));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load("c2s = { prot = 1; };", "c2s", NULL, &d), -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unknown setting c2s.prot"));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(
        load("c2s = { tls = { cret = \"a\"; }; };", "c2s", NULL, &d),
        -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "tls.cret"));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(
        load("c2s = { tls = { enabled = 1; }; };", "c2s", NULL, &d),
        -KN_EINVAL);
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(load("c2s = { nodes = ( { name = \"a\"; prot = 2; } ); };",
                          "c2s", "a", &d),
                     -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "prot"));
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_eq(
        load("c2s = { nodes = ( { port = 2; } ); };", "c2s", "a", &d),
        -KN_EINVAL);
    kn_conf_free_fields(demo_defs, &d);
}
END_TEST

START_TEST(common_conf)
{
    kn_conf_t *cf = NULL;
    ck_assert_int_eq(
        kn_conf_open_string(&cf,
                            "domain = \"example.org\"; log_level = \"debug\";\n"
                            "db = { conninfo = \"host=/x\"; pool_max = 3;"
                            " pool_min = 1; };\n"
                            "redis = { address = \"unix:/r.sock\"; };\n"
                            "router = { endpoint = \"tcp://10.0.0.1:5270\";"
                            " own_key = 1; };\n"
                            "c2s = { anything = 1; };",
                            err, sizeof(err)),
        0);
    kn_common_conf_t cc;
    ck_assert_int_eq(kn_common_conf_load(cf, &cc, err, sizeof(err)), 0);
    ck_assert_str_eq(cc.domain, "example.org");
    ck_assert_int_eq(cc.log_level, KN_LOG_DEBUG);
    ck_assert_str_eq(cc.db_conninfo, "host=/x");
    ck_assert_int_eq(cc.db_pool_max, 3);
    ck_assert_int_eq(cc.db_checkout_timeout_ms, 1000);
    ck_assert_str_eq(cc.redis_address, "unix:/r.sock");
    ck_assert_str_eq(cc.router_endpoint, "tcp://10.0.0.1:5270");
    ck_assert_int_eq(cc.node_timeout_ms, 15000);
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);

    ck_assert_int_eq(kn_conf_open_string(&cf, "db = { conninf = \"x\"; };", err,
                                         sizeof(err)),
                     0);
    ck_assert_int_eq(kn_common_conf_load(cf, &cc, err, sizeof(err)),
                     -KN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "db.conninf"));
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);

    ck_assert_int_eq(
        kn_conf_open_string(&cf, "domian = \"x\";", err, sizeof(err)), 0);
    ck_assert_int_eq(kn_common_conf_load(cf, &cc, err, sizeof(err)),
                     -KN_EINVAL);
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);

    ck_assert_int_eq(
        kn_conf_open_string(&cf, "db = { pool_min = 9; pool_max = 3; };", err,
                            sizeof(err)),
        0);
    ck_assert_int_eq(kn_common_conf_load(cf, &cc, err, sizeof(err)),
                     -KN_EINVAL);
    kn_common_conf_free(&cc);
    kn_conf_close(&cf);
}
END_TEST

START_TEST(peek_other_section)
{
    kn_conf_t *cf = NULL;
    ck_assert_int_eq(kn_conf_open_string(&cf,
                                         "mucd = { service = \"muc.x\"; "
                                         "history_hard_max = 5; };",
                                         err, sizeof(err)),
                     0);
    ck_assert_str_eq(kn_conf_peek_str(cf, "mucd.service"), "muc.x");
    /* not a string, absent key, absent section */
    ck_assert_ptr_null(kn_conf_peek_str(cf, "mucd.history_hard_max"));
    ck_assert_ptr_null(kn_conf_peek_str(cf, "mucd.nothing"));
    ck_assert_ptr_null(kn_conf_peek_str(cf, "c2s.service"));
    kn_conf_close(&cf);
}
END_TEST

START_TEST(list_of_groups)
{
    kn_conf_t *cf = NULL;
    ck_assert_int_eq(kn_conf_open_string(&cf,
                                         "components = ( { port = 1; }, "
                                         "{ port = 2; mode = \"drop\"; } );"
                                         "bad = ( 1, 2 ); nolist = 3;",
                                         err, sizeof(err)),
                     0);
    ck_assert_int_eq(kn_conf_list_len(cf, "components", err, sizeof(err)), 2);
    ck_assert_int_eq(kn_conf_list_len(cf, "absent", err, sizeof(err)), 0);
    ck_assert_int_lt(kn_conf_list_len(cf, "bad", err, sizeof(err)), 0);
    ck_assert_int_lt(kn_conf_list_len(cf, "nolist", err, sizeof(err)), 0);
    demo_t d;
    memset(&d, 0, sizeof(d));
    ck_assert_int_eq(kn_conf_apply_elem(cf, "components", 1, demo_defs, &d, err,
                                        sizeof(err)),
                     0);
    ck_assert_int_eq(d.port, 2);
    ck_assert_int_eq(d.mode, 1);
    ck_assert_int_eq(d.idle, 360); /* default */
    kn_conf_free_fields(demo_defs, &d);
    ck_assert_int_lt(kn_conf_apply_elem(cf, "components", 2, demo_defs, &d, err,
                                        sizeof(err)),
                     0);
    kn_conf_free_fields(demo_defs, &d);
    kn_conf_close(&cf);
    /* An unknown key in an entry is an error naming it. */
    ck_assert_int_eq(kn_conf_open_string(&cf, "components = ( { prot = 1; } );",
                                         err, sizeof(err)),
                     0);
    ck_assert_int_lt(kn_conf_apply_elem(cf, "components", 0, demo_defs, &d, err,
                                        sizeof(err)),
                     0);
    ck_assert_ptr_nonnull(strstr(err, "components[0].prot"));
    kn_conf_free_fields(demo_defs, &d);
    kn_conf_close(&cf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults_when_section_missing);
    tcase_add_test(tc, values_override_defaults);
    tcase_add_test(tc, node_entries_override_section);
    tcase_add_test(tc, syntax_error_names_line);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, type_range_enum_unknown_errors);
    tcase_add_test(tc, common_conf);
    tcase_add_test(tc, peek_other_section);
    tcase_add_test(tc, list_of_groups);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
