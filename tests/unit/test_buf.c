/*
 * test_buf.c - the growable buffer: growth, NUL termination, consume,
 * release, XML escaping.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"

START_TEST(append_grows_and_terminates)
{
    kn_buf_t b = KN_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        kn_buf_append(&b, "abc", 3);
    ck_assert_uint_eq(b.len, 3000);
    ck_assert_uint_ge(b.cap, 3001);
    ck_assert_int_eq(b.data[3000], '\0');
    ck_assert_int_eq(memcmp(b.data + 2997, "abc", 3), 0);
    kn_buf_consume(&b, 2998);
    ck_assert_str_eq(b.data, "bc");
    kn_buf_printf(&b, "-%d-%s", 42, "x");
    ck_assert_str_eq(b.data, "bc-42-x");
    size_t len;
    char *d = kn_buf_release(&b, &len);
    ck_assert_uint_eq(len, 7);
    ck_assert_str_eq(d, "bc-42-x");
    ck_assert_ptr_null(b.data);
    free(d);
    kn_buf_free(&b);
}
END_TEST

START_TEST(xml_escaping)
{
    kn_buf_t b = KN_BUF_INIT;
    const char in[] = "a&b<c>d'e\"f]]>";
    kn_buf_append_xml_escaped(&b, in, strlen(in));
    ck_assert_str_eq(b.data, "a&amp;b&lt;c&gt;d&apos;e&quot;f]]&gt;");
    kn_buf_reset(&b);
    kn_buf_append_xml_escaped(&b, "plain", 5);
    ck_assert_str_eq(b.data, "plain");
    kn_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, append_grows_and_terminates);
    tcase_add_test(tc, xml_escaping);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
