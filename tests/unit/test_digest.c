/*
 * test_digest.c - kn_digest: the XEP-0114 handshake digest and TURN REST
 * passwords, against values computed independently (Python hashlib/hmac).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_digest.h"

START_TEST(handshake_sha1_hex_XEP_0114)
{
    char hex[KN_SHA1_HEX_LEN + 1];
    kn_sha1_hex2("3BF96D32", 8, "sekrit", 6, hex);
    ck_assert_str_eq(hex, "5547269269506c23b408f2b69c0f74efdd03b4fb");
    kn_sha1_hex2("", 0, "", 0, hex);
    ck_assert_str_eq(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}
END_TEST

START_TEST(turn_rest_password_R_AV_2)
{
    kn_buf_t b = KN_BUF_INIT;
    const char *user = "1433895918506:user";
    kn_hmac_sha1_b64("north", 5, user, strlen(user), &b);
    ck_assert_str_eq(b.data, "mN/F/CZKGYmwHVabumUxroVvUso=");
    kn_buf_free(&b);
}
END_TEST

START_TEST(constant_time_equal)
{
    ck_assert(kn_digest_equal("abc", "abc"));
    ck_assert(!kn_digest_equal("abc", "abd"));
    ck_assert(!kn_digest_equal("abc", "abcd"));
    ck_assert(kn_digest_equal("", ""));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("digest");
    tcase_add_test(tc, handshake_sha1_hex_XEP_0114);
    tcase_add_test(tc, turn_rest_password_R_AV_2);
    tcase_add_test(tc, constant_time_equal);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
