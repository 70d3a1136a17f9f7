/*
 * test_arch.c - the batch of archive copies in one envelope (kn_arch.h,
 * XEP-0313 router -> archiver): exact bytes of a record, round trips of
 * several records, every truncation refused, field limits.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_arch.h"
#include "kn_err.h"

static kn_arch_copy_t copy(uint64_t id, const char *from, const char *to,
                           const char *st)
{
    kn_arch_copy_t c = {id, 2,          from, strlen(from),
                        to, strlen(to), st,   strlen(st)};
    return c;
}

START_TEST(exact_bytes)
{
    kn_buf_t b = KN_BUF_INIT;
    kn_arch_copy_t c = copy(0x0102030405060708ull, "a@d/r", "b@d", "<m/>");
    ck_assert(kn_arch_append(&b, &c));
    static const unsigned char want[] = {
        1,   2,   3,   4,   5,   6,   7,   8, /* id */
        2,                                    /* type */
        0,   5,   0,   3,   0,   0,   0,   4, /* lengths */
        'a', '@', 'd', '/', 'r', 'b', '@', 'd', '<', 'm', '/', '>'};
    ck_assert_uint_eq(b.len, sizeof(want));
    ck_assert_uint_eq(kn_arch_size(&c), sizeof(want));
    ck_assert_int_eq(memcmp(b.data, want, sizeof(want)), 0);
    kn_buf_free(&b);
}
END_TEST

START_TEST(round_trip_in_order)
{
    kn_buf_t b = KN_BUF_INIT;
    char st[64];
    for (uint64_t i = 1; i <= 300; i++) {
        snprintf(st, sizeof(st), "<message><body>%llu</body></message>",
                 (unsigned long long)i);
        kn_arch_copy_t c = copy(i << 16, "a@d/r", i % 2 ? "b@d" : "", st);
        ck_assert(kn_arch_append(&b, &c));
    }
    size_t off = 0;
    kn_arch_copy_t c;
    uint64_t i = 0;
    int rc;
    while ((rc = kn_arch_next(b.data, b.len, &off, &c)) == 1) {
        i++;
        snprintf(st, sizeof(st), "<message><body>%llu</body></message>",
                 (unsigned long long)i);
        ck_assert_uint_eq(c.id, i << 16);
        ck_assert_uint_eq(c.type, 2);
        ck_assert_uint_eq(c.from_len, 5);
        ck_assert_int_eq(memcmp(c.from, "a@d/r", 5), 0);
        ck_assert_uint_eq(c.to_len, i % 2 ? 3 : 0);
        ck_assert_uint_eq(c.len, strlen(st));
        ck_assert_int_eq(memcmp(c.stanza, st, c.len), 0);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(i, 300);
    ck_assert_uint_eq(off, b.len);
    kn_buf_free(&b);
}
END_TEST

/* Every cut inside a record: the records before it, then an error. */
START_TEST(truncations_refused)
{
    kn_buf_t b = KN_BUF_INIT;
    kn_arch_copy_t c1 = copy(1, "a@d/r", "b@d", "<m>1</m>");
    kn_arch_copy_t c2 = copy(2, "b@d/x", "a@d", "<m>2</m>");
    ck_assert(kn_arch_append(&b, &c1));
    size_t first = b.len;
    ck_assert(kn_arch_append(&b, &c2));
    for (size_t cut = 1; cut < b.len; cut++) {
        size_t off = 0;
        kn_arch_copy_t c;
        int n = 0, rc;
        while ((rc = kn_arch_next(b.data, cut, &off, &c)) == 1)
            n++;
        if (cut == first) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(n, 1);
        } else {
            ck_assert_int_eq(rc, -KN_EPROTO);
            ck_assert_int_eq(n, cut > first ? 1 : 0);
        }
    }
    kn_buf_free(&b);
}
END_TEST

START_TEST(limits)
{
    kn_buf_t b = KN_BUF_INIT;
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    kn_arch_copy_t c = {1, 0, big, 65535, "b@d", 3, "<m/>", 4};
    ck_assert(kn_arch_append(&b, &c));
    size_t len = b.len;
    c.from_len = 65536; /* too long for its field: nothing appended */
    ck_assert(!kn_arch_append(&b, &c));
    ck_assert_uint_eq(b.len, len);
    c.from_len = 1;
    c.to = big;
    c.to_len = 65536;
    ck_assert(!kn_arch_append(&b, &c));
    ck_assert_uint_eq(b.len, len);
    size_t off = 0;
    ck_assert_int_eq(kn_arch_next(b.data, b.len, &off, &c), 1);
    ck_assert_uint_eq(c.from_len, 65535);
    ck_assert_int_eq(kn_arch_next(b.data, b.len, &off, &c), 0);
    free(big);
    kn_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arch");
    TCase *tc = tcase_create("arch");
    tcase_add_test(tc, exact_bytes);
    tcase_add_test(tc, round_trip_in_order);
    tcase_add_test(tc, truncations_refused);
    tcase_add_test(tc, limits);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
