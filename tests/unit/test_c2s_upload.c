/*
 * test_c2s_upload.c - the pure parts of XEP-0363 (c2s_upload.c): Range
 * headers, safe file names, Content-Type rules, the HMAC (RFC 4231
 * test case 2), and the URLs of a slot.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_upload.h"

START_TEST(range_headers)
{
    uint64_t a = 0, b = 0;
    ck_assert_int_eq(c2s_upload_range(NULL, 100, &a, &b), 0);
    ck_assert_int_eq(c2s_upload_range("bytes=10-19", 100, &a, &b), 1);
    ck_assert(a == 10 && b == 19);
    ck_assert_int_eq(c2s_upload_range("bytes=90-", 100, &a, &b), 1);
    ck_assert(a == 90 && b == 99);
    ck_assert_int_eq(c2s_upload_range("bytes=90-500", 100, &a, &b), 1);
    ck_assert(a == 90 && b == 99);
    ck_assert_int_eq(c2s_upload_range("bytes=-5", 100, &a, &b), 1);
    ck_assert(a == 95 && b == 99);
    ck_assert_int_eq(c2s_upload_range("bytes=-500", 100, &a, &b), 1);
    ck_assert(a == 0 && b == 99);
    ck_assert_int_eq(c2s_upload_range("bytes=100-", 100, &a, &b), -1);
    ck_assert_int_eq(c2s_upload_range("bytes=-0", 100, &a, &b), -1);
    /* several ranges, garbage, reversed: the whole file */
    ck_assert_int_eq(c2s_upload_range("bytes=0-1,5-6", 100, &a, &b), 0);
    ck_assert_int_eq(c2s_upload_range("bytes=x-1", 100, &a, &b), 0);
    ck_assert_int_eq(c2s_upload_range("bytes=5-1", 100, &a, &b), 0);
    ck_assert_int_eq(c2s_upload_range("items=0-1", 100, &a, &b), 0);
    ck_assert_int_eq(
        c2s_upload_range("bytes=99999999999999999999999-", 100, &a, &b), 0);
}
END_TEST

START_TEST(safe_names_and_types)
{
    kn_buf_t b = KN_BUF_INIT;
    c2s_upload_safe_name("../../etc/passwd", &b);
    ck_assert_str_eq(b.data, "passwd");
    c2s_upload_safe_name("a\"b;c d\r\n.png", &b);
    ck_assert_str_eq(b.data, "a_b_c_d__.png");
    c2s_upload_safe_name("..hidden", &b);
    ck_assert_str_eq(b.data, "hidden");
    c2s_upload_safe_name("dir\\", &b);
    ck_assert_str_eq(b.data, "file");
    kn_buf_free(&b);
    ck_assert(c2s_upload_type_ok("image/png"));
    ck_assert(c2s_upload_type_ok("application/vnd.ms-excel"));
    ck_assert(!c2s_upload_type_ok("text/html; charset=utf-8"));
    ck_assert(!c2s_upload_type_ok("image"));
    ck_assert(!c2s_upload_type_ok("a/b/c"));
    ck_assert(!c2s_upload_type_ok("text/\"x"));
    ck_assert(c2s_upload_type_allowed("", "text/html"));
    ck_assert(c2s_upload_type_allowed("image/*, text/plain", "image/png"));
    ck_assert(c2s_upload_type_allowed("image/*, text/plain", "text/plain"));
    ck_assert(!c2s_upload_type_allowed("image/*, text/plain", "text/html"));
    ck_assert(!c2s_upload_type_allowed("image/*", "imagex/png"));
    ck_assert(!c2s_upload_type_allowed("text/plain", "text/plainx"));
}
END_TEST

START_TEST(hmac_rfc4231)
{
    char out[65];
    const char *msg = "what do ya want for nothing?";
    c2s_upload_hmac("Jefe", msg, strlen(msg), out);
    ck_assert_str_eq(
        out,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

START_TEST(slot_urls)
{
    c2s_upload_conf_t uc = {"upload.example",
                            "/nonexistent-upload-dir",
                            "0123456789abcdef",
                            "https://up.example",
                            "image/*",
                            1000,
                            0,
                            60};
    kn_buf_t put = KN_BUF_INIT, get = KN_BUF_INIT;
    ck_assert_int_eq(c2s_upload_slot(&uc, "a@example", "my cat.png", 10,
                                     "image/png", 1000, &put, &get),
                     C2S_UPLOAD_OK);
    ck_assert(strncmp(put.data, "https://up.example/upload/", 26) == 0);
    ck_assert(strstr(put.data, "/my_cat.png?e=1060&n=10&t=image%2Fpng&s=") !=
              NULL);
    ck_assert(strstr(get.data, "/my_cat.png?s=") != NULL);
    /* the same owner part for the same account, a fresh token */
    kn_buf_t put2 = KN_BUF_INIT, get2 = KN_BUF_INIT;
    c2s_upload_slot(&uc, "a@example", "my cat.png", 10, "image/png", 1000,
                    &put2, &get2);
    ck_assert(strncmp(put.data, put2.data, 26 + 17) == 0);
    ck_assert(strcmp(put.data, put2.data) != 0);
    ck_assert_int_eq(c2s_upload_slot(&uc, "a@example", "x", 1001, "image/png",
                                     1000, &put, &get),
                     C2S_UPLOAD_TOO_LARGE);
    ck_assert_int_eq(c2s_upload_slot(&uc, "a@example", "x", 1, "text/plain",
                                     1000, &put, &get),
                     C2S_UPLOAD_TYPE);
    ck_assert_int_eq(
        c2s_upload_slot(&uc, "a@example", "x", 1, "bad type", 1000, &put, &get),
        C2S_UPLOAD_BAD_REQUEST);
    kn_buf_free(&put);
    kn_buf_free(&get);
    kn_buf_free(&put2);
    kn_buf_free(&get2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_upload");
    TCase *t = tcase_create("core");
    tcase_add_test(t, range_headers);
    tcase_add_test(t, safe_names_and_types);
    tcase_add_test(t, hmac_rfc4231);
    tcase_add_test(t, slot_urls);
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
