/*
 * test_c2s_plaincache.c - the cache of verified PLAIN passwords
 * (c2s_plaincache.c, issue 15): a hit needs the same user, password and
 * stored-credential generation; another generation drops the entry;
 * drop/clear; least-recently-used eviction at the bound; a zero-sized
 * cache holds nothing; the constant-time compare wrapper. And the users
 * row parser shared by the Redis and PostgreSQL paths (c2s_creds.c,
 * R-PERF-5).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_creds.h"
#include "c2s_plaincache.h"
#include "kn_err.h"

static kn_scram_creds_t gen(unsigned char salt0)
{
    kn_scram_creds_t c;
    memset(&c, 0, sizeof(c));
    c.hash = KN_SCRAM_SHA256;
    c.iterations = 4096;
    c.salt_len = 16;
    memset(c.salt, salt0, c.salt_len);
    memset(c.stored_key, 0x11, 32);
    memset(c.server_key, 0x22, 32);
    return c;
}

START_TEST(hit_needs_user_password_and_generation)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(10);
    ck_assert_ptr_nonnull(pc);
    kn_scram_creds_t g = gen(1);
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g));
    c2s_plaincache_put(pc, "alice", "pw", &g);
    ck_assert_uint_eq(c2s_plaincache_count(pc), 1);
    ck_assert(c2s_plaincache_check(pc, "alice", "pw", &g));
    /* a wrong password misses and leaves the entry */
    ck_assert(!c2s_plaincache_check(pc, "alice", "pW", &g));
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw ", &g));
    ck_assert(!c2s_plaincache_check(pc, "alice", "", &g));
    ck_assert_uint_eq(c2s_plaincache_count(pc), 1);
    /* another user with the same password and credentials */
    ck_assert(!c2s_plaincache_check(pc, "bob", "pw", &g));
    ck_assert(c2s_plaincache_check(pc, "alice", "pw", &g));
    ck_assert_uint_eq(c2s_plaincache_hits(pc), 2);
    ck_assert_uint_eq(c2s_plaincache_misses(pc), 5);
    c2s_plaincache_free(&pc);
    ck_assert_ptr_null(pc);
    c2s_plaincache_free(&pc); /* idempotent */
}
END_TEST

START_TEST(new_generation_drops_the_entry)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(10);
    kn_scram_creds_t g = gen(1);
    c2s_plaincache_put(pc, "alice", "pw", &g);
    /* password changed: new salt (and keys) */
    kn_scram_creds_t g2 = gen(2);
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g2));
    ck_assert_uint_eq(c2s_plaincache_count(pc), 0);
    /* ... and the old generation no longer hits either */
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g));
    /* every field counts: iterations, StoredKey, ServerKey, salt length */
    c2s_plaincache_put(pc, "alice", "pw", &g);
    kn_scram_creds_t g3 = g;
    g3.iterations = 4097;
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g3));
    c2s_plaincache_put(pc, "alice", "pw", &g);
    g3 = g;
    g3.stored_key[31] ^= 1;
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g3));
    c2s_plaincache_put(pc, "alice", "pw", &g);
    g3 = g;
    g3.server_key[0] ^= 0x80;
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g3));
    c2s_plaincache_put(pc, "alice", "pw", &g);
    g3 = g;
    g3.salt_len = 15;
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g3));
    /* put replaces: the newly verified password and generation */
    c2s_plaincache_put(pc, "alice", "pw", &g);
    c2s_plaincache_put(pc, "alice", "new", &g2);
    ck_assert_uint_eq(c2s_plaincache_count(pc), 1);
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g2));
    ck_assert(c2s_plaincache_check(pc, "alice", "new", &g2));
    c2s_plaincache_free(&pc);
}
END_TEST

START_TEST(drop_and_clear_invalidate)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(10);
    kn_scram_creds_t g = gen(1);
    c2s_plaincache_put(pc, "alice", "pw", &g);
    c2s_plaincache_put(pc, "bob", "pw", &g);
    c2s_plaincache_drop(pc, "alice");
    c2s_plaincache_drop(pc, "nobody");
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g));
    ck_assert(c2s_plaincache_check(pc, "bob", "pw", &g));
    c2s_plaincache_clear(pc);
    ck_assert_uint_eq(c2s_plaincache_count(pc), 0);
    ck_assert(!c2s_plaincache_check(pc, "bob", "pw", &g));
    c2s_plaincache_free(&pc);
}
END_TEST

START_TEST(bounded_lru_eviction)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(3);
    kn_scram_creds_t g = gen(1);
    c2s_plaincache_put(pc, "u1", "p", &g);
    c2s_plaincache_put(pc, "u2", "p", &g);
    c2s_plaincache_put(pc, "u3", "p", &g);
    /* u1 used: u2 is now the least recently used */
    ck_assert(c2s_plaincache_check(pc, "u1", "p", &g));
    c2s_plaincache_put(pc, "u4", "p", &g);
    ck_assert_uint_eq(c2s_plaincache_count(pc), 3);
    ck_assert_uint_eq(c2s_plaincache_evictions(pc), 1);
    ck_assert(!c2s_plaincache_check(pc, "u2", "p", &g));
    ck_assert(c2s_plaincache_check(pc, "u1", "p", &g));
    ck_assert(c2s_plaincache_check(pc, "u3", "p", &g));
    ck_assert(c2s_plaincache_check(pc, "u4", "p", &g));
    /* many more: never above the bound */
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "x%d", i);
        c2s_plaincache_put(pc, name, "p", &g);
        ck_assert_uint_le(c2s_plaincache_count(pc), 3);
    }
    ck_assert(c2s_plaincache_check(pc, "x999", "p", &g));
    ck_assert(!c2s_plaincache_check(pc, "x996", "p", &g));
    c2s_plaincache_free(&pc);
}
END_TEST

START_TEST(zero_size_and_null_hold_nothing)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(0);
    kn_scram_creds_t g = gen(1);
    c2s_plaincache_put(pc, "alice", "pw", &g);
    ck_assert_uint_eq(c2s_plaincache_count(pc), 0);
    ck_assert(!c2s_plaincache_check(pc, "alice", "pw", &g));
    c2s_plaincache_free(&pc);
    ck_assert(!c2s_plaincache_check(NULL, "alice", "pw", &g));
    c2s_plaincache_put(NULL, "alice", "pw", &g);
    c2s_plaincache_drop(NULL, "alice");
    ck_assert_uint_eq(c2s_plaincache_count(NULL), 0);
}
END_TEST

START_TEST(two_caches_have_different_secrets)
{
    /* The same password in two processes: neither entry says anything in
     * the other (a keyed hash, per-process secret). */
    c2s_plaincache_t *a = c2s_plaincache_new(4), *b = c2s_plaincache_new(4);
    kn_scram_creds_t g = gen(1);
    c2s_plaincache_put(a, "alice", "pw", &g);
    ck_assert(!c2s_plaincache_check(b, "alice", "pw", &g));
    c2s_plaincache_put(b, "alice", "pw", &g);
    ck_assert(c2s_plaincache_check(a, "alice", "pw", &g));
    ck_assert(c2s_plaincache_check(b, "alice", "pw", &g));
    c2s_plaincache_free(&a);
    c2s_plaincache_free(&b);
}
END_TEST

START_TEST(long_password)
{
    c2s_plaincache_t *pc = c2s_plaincache_new(4);
    kn_scram_creds_t g = gen(1);
    size_t n = 5000;
    char *pw = malloc(n + 1);
    memset(pw, 'a', n);
    pw[n] = '\0';
    c2s_plaincache_put(pc, "alice", pw, &g);
    ck_assert(c2s_plaincache_check(pc, "alice", pw, &g));
    pw[n - 1] = 'b';
    ck_assert(!c2s_plaincache_check(pc, "alice", pw, &g));
    free(pw);
    c2s_plaincache_free(&pc);
}
END_TEST

START_TEST(ct_equal)
{
    uint8_t a[32], b[32];
    memset(a, 7, sizeof(a));
    memset(b, 7, sizeof(b));
    ck_assert(c2s_plaincache_ct_equal(a, b, sizeof(a)));
    ck_assert(c2s_plaincache_ct_equal(a, b, 0));
    b[0] ^= 1;
    ck_assert(!c2s_plaincache_ct_equal(a, b, sizeof(a)));
    b[0] ^= 1;
    b[31] ^= 0x80;
    ck_assert(!c2s_plaincache_ct_equal(a, b, sizeof(a)));
    ck_assert(c2s_plaincache_ct_equal(a, b, 31));
}
END_TEST

#define S20 "0102030405060708090a0b0c0d0e0f10"
#define H20 "000102030405060708090a0b0c0d0e0f10111213"
#define H32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

START_TEST(users_row_parse_R_PERF_5)
{
    c2s_creds_t cr;
    const char *ok[8] = {"4096", S20, H20, H20, S20, H32, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(ok, &cr), 0);
    ck_assert_uint_eq(cr.sha1.iterations, 4096);
    ck_assert_uint_eq(cr.sha256.iterations, 4096);
    ck_assert_uint_eq(cr.sha1.salt_len, 16);
    ck_assert_int_eq(cr.sha256.hash, KN_SCRAM_SHA256);
    ck_assert_uint_eq(cr.sha256.stored_key[31], 0x1f);
    ck_assert_uint_eq(cr.sha1.server_key[19], 0x13);
    const char *dis[8] = {"4096", S20, H20, H20, S20, H32, H32, "t"};
    ck_assert_int_eq(c2s_creds_parse(dis, &cr), -KN_EAUTH);
    const char *bad_it[8] = {"40x", S20, H20, H20, S20, H32, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(bad_it, &cr), -KN_EDB);
    const char *zero_it[8] = {"0", S20, H20, H20, S20, H32, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(zero_it, &cr), -KN_EDB);
    const char *short_key[8] = {"4096", S20, H20, H20, S20, H20, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(short_key, &cr), -KN_EDB);
    const char *no_salt[8] = {"4096", "", H20, H20, S20, H32, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(no_salt, &cr), -KN_EDB);
    const char *odd[8] = {"4096", "123", H20, H20, S20, H32, H32, "f"};
    ck_assert_int_eq(c2s_creds_parse(odd, &cr), -KN_EDB);
    const char *flag[8] = {"4096", S20, H20, H20, S20, H32, H32, "x"};
    ck_assert_int_eq(c2s_creds_parse(flag, &cr), -KN_EDB);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_plaincache");
    TCase *t = tcase_create("core");
    tcase_add_test(t, hit_needs_user_password_and_generation);
    tcase_add_test(t, new_generation_drops_the_entry);
    tcase_add_test(t, drop_and_clear_invalidate);
    tcase_add_test(t, bounded_lru_eviction);
    tcase_add_test(t, zero_size_and_null_hold_nothing);
    tcase_add_test(t, two_caches_have_different_secrets);
    tcase_add_test(t, long_password);
    tcase_add_test(t, ct_equal);
    tcase_add_test(t, users_row_parse_R_PERF_5);
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
