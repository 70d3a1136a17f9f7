/*
 * test_c2s_flood.c - connection admission under floods (c2s_flood.c,
 * issue 16): the per-address rate holds one address back while others
 * get in, the node rate holds everyone, the unauthenticated caps per
 * address and per node, counts going back down, address keys (IPv4,
 * IPv6 /64), and the collection of forgettable addresses.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_flood.h"

static void key4(const char *ip, uint8_t key[16])
{
    struct sockaddr_in in;
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
    c2s_flood_key((struct sockaddr *)&in, key);
}

START_TEST(addr_rate_one_address_only)
{
    c2s_flood_conf_t cf = {2, 5, 0, 1, 0, 0};
    c2s_flood_t *f = c2s_flood_new(&cf, 0);
    uint8_t a[16], b[16];
    key4("127.0.0.1", a);
    key4("127.0.0.2", b);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_OK);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(c2s_flood_admit(f, a, 0.1), C2S_FLOOD_ADDR_RATE);
    ck_assert_int_eq(c2s_flood_admit(f, b, 0.1), C2S_FLOOD_OK);
    /* 2 per second come back, refusals took nothing */
    ck_assert_int_eq(c2s_flood_admit(f, a, 0.6), C2S_FLOOD_OK);
    ck_assert_int_eq(c2s_flood_admit(f, a, 0.6), C2S_FLOOD_ADDR_RATE);
    c2s_flood_free(&f);
    ck_assert_ptr_null(f);
    c2s_flood_free(&f);
}
END_TEST

START_TEST(node_rate_everyone)
{
    c2s_flood_conf_t cf = {0, 1, 10, 20, 0, 0};
    c2s_flood_t *f = c2s_flood_new(&cf, 0);
    uint8_t k[16];
    char ip[32];
    int ok = 0;
    for (int i = 0; i < 40; i++) {
        snprintf(ip, sizeof(ip), "127.0.%d.%d", i / 200, 1 + i % 200);
        key4(ip, k);
        if (c2s_flood_admit(f, k, 0) == C2S_FLOOD_OK)
            ok++;
        else
            ck_assert_int_eq(c2s_flood_admit(f, k, 0), C2S_FLOOD_GLOBAL_RATE);
    }
    ck_assert_int_eq(ok, 20);
    ck_assert_int_eq(c2s_flood_admit(f, k, 1.0), C2S_FLOOD_OK);
    c2s_flood_free(&f);
}
END_TEST

START_TEST(unauth_caps)
{
    c2s_flood_conf_t cf = {0, 1, 0, 1, 3, 5};
    c2s_flood_t *f = c2s_flood_new(&cf, 0);
    uint8_t a[16], b[16], c[16];
    key4("10.0.0.1", a);
    key4("10.0.0.2", b);
    key4("10.0.0.3", c);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_OK);
        c2s_flood_unauth_add(f, a);
    }
    ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_ADDR_UNAUTH);
    ck_assert_uint_eq(c2s_flood_unauth(f, a), 3);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(c2s_flood_admit(f, b, 0), C2S_FLOOD_OK);
        c2s_flood_unauth_add(f, b);
    }
    ck_assert_uint_eq(c2s_flood_unauth_total(f), 5);
    ck_assert_int_eq(c2s_flood_admit(f, c, 0), C2S_FLOOD_GLOBAL_UNAUTH);
    /* one of a's logs in: c gets in, a is still at its cap... */
    c2s_flood_unauth_done(f, a);
    ck_assert_int_eq(c2s_flood_admit(f, c, 0), C2S_FLOOD_OK);
    c2s_flood_unauth_add(f, c);
    ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_GLOBAL_UNAUTH);
    c2s_flood_unauth_done(f, b);
    ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_OK);
    c2s_flood_unauth_add(f, a);
    ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_ADDR_UNAUTH);
    /* counts never go below zero */
    for (int i = 0; i < 10; i++)
        c2s_flood_unauth_done(f, c);
    ck_assert_uint_eq(c2s_flood_unauth(f, c), 0);
    c2s_flood_free(&f);
}
END_TEST

START_TEST(keys)
{
    uint8_t a[16], b[16];
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", &s6.sin6_addr);
    c2s_flood_key((struct sockaddr *)&s6, a);
    inet_pton(AF_INET6, "2001:db8:1:2:bbbb::7", &s6.sin6_addr);
    c2s_flood_key((struct sockaddr *)&s6, b);
    ck_assert_mem_eq(a, b, 16); /* one /64 */
    inet_pton(AF_INET6, "2001:db8:1:3::1", &s6.sin6_addr);
    c2s_flood_key((struct sockaddr *)&s6, b);
    ck_assert(memcmp(a, b, 16) != 0);
    /* IPv4 and its mapped form are one address */
    key4("192.0.2.7", a);
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
    c2s_flood_key((struct sockaddr *)&s6, b);
    ck_assert_mem_eq(a, b, 16);
    key4("192.0.2.8", b);
    ck_assert(memcmp(a, b, 16) != 0);
}
END_TEST

START_TEST(gc_forgets_only_idle_addresses)
{
    c2s_flood_conf_t cf = {1, 2, 0, 1, 0, 0};
    c2s_flood_t *f = c2s_flood_new(&cf, 0);
    uint8_t a[16], b[16], c[16];
    key4("10.0.0.1", a);
    key4("10.0.0.2", b);
    key4("10.0.0.3", c);
    ck_assert_int_eq(c2s_flood_admit(f, a, 0), C2S_FLOOD_OK);
    c2s_flood_unauth_add(f, a);
    ck_assert_int_eq(c2s_flood_admit(f, b, 0), C2S_FLOOD_OK);
    ck_assert_int_eq(c2s_flood_admit(f, b, 0), C2S_FLOOD_OK);
    ck_assert_int_eq(c2s_flood_admit(f, c, 0), C2S_FLOOD_OK);
    ck_assert_uint_eq(c2s_flood_gc(f, 0.1), 3);
    /* c's bucket is full again at 1 s, b's (two tokens) at 2 s */
    ck_assert_uint_eq(c2s_flood_gc(f, 1.0), 2);
    ck_assert_uint_eq(c2s_flood_gc(f, 2.0), 1);
    /* a stays while it has an unauthenticated connection */
    ck_assert_uint_eq(c2s_flood_gc(f, 100.0), 1);
    c2s_flood_unauth_done(f, a);
    ck_assert_uint_eq(c2s_flood_gc(f, 100.0), 0);
    /* b forgotten: a fresh full bucket */
    ck_assert_int_eq(c2s_flood_admit(f, b, 100.0), C2S_FLOOD_OK);
    ck_assert_int_eq(c2s_flood_admit(f, b, 100.0), C2S_FLOOD_OK);
    ck_assert_int_eq(c2s_flood_admit(f, b, 100.0), C2S_FLOOD_ADDR_RATE);
    ck_assert_str_eq(c2s_flood_verdict_name(C2S_FLOOD_ADDR_RATE),
                     "per-address connection rate exceeded");
    c2s_flood_free(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_flood");
    TCase *t = tcase_create("core");
    tcase_add_test(t, addr_rate_one_address_only);
    tcase_add_test(t, node_rate_everyone);
    tcase_add_test(t, unauth_caps);
    tcase_add_test(t, keys);
    tcase_add_test(t, gc_forgets_only_idle_addresses);
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
