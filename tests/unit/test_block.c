/*
 * test_block.c - XEP-0191 block lists (common/kn_block.c): the keys of a
 * JID, the four matching rules of XEP-0191 (XEP-0016 order) for each
 * form of block item against each form of JID, the sorted set (add, del,
 * dedup, the empty list as NULL) and matching against a whole list,
 * checked against the one-item rule on many pairs.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_block.h"

static bool M(const char *item, const char *jid)
{
    return kn_block_item_matches(item, strlen(item), jid, strlen(jid));
}

static void expect_keys(const char *jid, const char *const *want, size_t n)
{
    kn_block_key_t k[4];
    size_t got = kn_block_keys(jid, strlen(jid), k);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(k[i].len, strlen(want[i]));
        ck_assert_msg(memcmp(jid + k[i].off, want[i], k[i].len) == 0,
                      "key %zu of %s: %.*s, want %s", i, jid, (int)k[i].len,
                      jid + k[i].off, want[i]);
    }
}

START_TEST(keys_of_each_form)
{
    const char *full[] = {"u@d.example/r", "u@d.example", "d.example/r",
                          "d.example"};
    expect_keys("u@d.example/r", full, 4);
    const char *bare[] = {"u@d.example", "d.example"};
    expect_keys("u@d.example", bare, 2);
    const char *dres[] = {"d.example/r", "d.example"};
    expect_keys("d.example/r", dres, 2);
    const char *dom[] = {"d.example"};
    expect_keys("d.example", dom, 1);
    /* '@' and '/' inside the resource belong to the resource */
    const char *odd[] = {"a.example/b@c/d", "a.example"};
    expect_keys("a.example/b@c/d", odd, 2);
    const char *odd2[] = {"u@a.example/x@y/z", "u@a.example", "a.example/x@y/z",
                          "a.example"};
    expect_keys("u@a.example/x@y/z", odd2, 4);
    kn_block_key_t k[4];
    ck_assert_uint_eq(kn_block_keys("", 0, k), 0);
}
END_TEST

/* XEP-0191 section "JID Matching", item 1: user@domain/resource. */
START_TEST(full_item_matches_only_itself)
{
    ck_assert(M("romeo@montague.net/orchard", "romeo@montague.net/orchard"));
    ck_assert(!M("romeo@montague.net/orchard", "romeo@montague.net/garden"));
    ck_assert(!M("romeo@montague.net/orchard", "romeo@montague.net"));
    ck_assert(!M("romeo@montague.net/orchard", "montague.net/orchard"));
    ck_assert(!M("romeo@montague.net/orchard", "montague.net"));
    ck_assert(
        !M("romeo@montague.net/orchard", "benvolio@montague.net/orchard"));
    /* a resource is not a prefix match */
    ck_assert(!M("romeo@montague.net/orch", "romeo@montague.net/orchard"));
}
END_TEST

/* Item 2: user@domain, any resource. */
START_TEST(bare_item_matches_any_resource)
{
    ck_assert(M("romeo@montague.net", "romeo@montague.net"));
    ck_assert(M("romeo@montague.net", "romeo@montague.net/orchard"));
    ck_assert(M("romeo@montague.net", "romeo@montague.net/a/b@c"));
    ck_assert(!M("romeo@montague.net", "benvolio@montague.net/orchard"));
    ck_assert(!M("romeo@montague.net", "montague.net"));
    ck_assert(!M("romeo@montague.net", "montague.net/romeo"));
    ck_assert(!M("romeo@montague.net", "romeo@montague.net.evil"));
    ck_assert(!M("romeo@montague.net", "romeo@capulet.com/orchard"));
}
END_TEST

/* Item 3: domain/resource, only that resource, any user or none. */
START_TEST(domain_resource_item)
{
    ck_assert(M("chat.example/troll", "chat.example/troll"));
    ck_assert(M("chat.example/troll", "room@chat.example/troll"));
    ck_assert(M("chat.example/troll", "other@chat.example/troll"));
    ck_assert(!M("chat.example/troll", "room@chat.example/nice"));
    ck_assert(!M("chat.example/troll", "room@chat.example"));
    ck_assert(!M("chat.example/troll", "chat.example"));
    ck_assert(!M("chat.example/troll", "sub.chat.example/troll"));
}
END_TEST

/* Item 4: domain, the domain itself and everything at it. */
START_TEST(domain_item_matches_everything_at_it)
{
    ck_assert(M("evil.example", "evil.example"));
    ck_assert(M("evil.example", "evil.example/bot"));
    ck_assert(M("evil.example", "spammer@evil.example"));
    ck_assert(M("evil.example", "spammer@evil.example/laptop"));
    /* not another domain sharing a suffix or a prefix */
    ck_assert(!M("evil.example", "not-evil.example"));
    ck_assert(!M("evil.example", "sub.evil.example"));
    ck_assert(!M("evil.example", "u@evil.example.org"));
    ck_assert(!M("evil.example", "u@good.example/evil.example"));
    ck_assert(!M("evil.example", "evil.example@good.example"));
}
END_TEST

START_TEST(empty_list_is_null)
{
    kn_blocklist_t *l = NULL;
    ck_assert_uint_eq(kn_blocklist_count(l), 0);
    ck_assert(!kn_blocklist_match(l, "a@b/c", 5));
    ck_assert(!kn_blocklist_has(l, "a@b", 3));
    ck_assert(!kn_blocklist_del(&l, "a@b", 3));
    ck_assert_ptr_null(l);
    ck_assert_ptr_null(kn_blocklist_new(NULL, NULL, 0));
    ck_assert_ptr_null(kn_blocklist_dup(NULL));
    kn_blocklist_free(&l);
    kn_blocklist_free(&l); /* idempotent */
}
END_TEST

START_TEST(add_del_sorted_unique)
{
    kn_blocklist_t *l = NULL;
    ck_assert(kn_blocklist_add(&l, "m@x", 3));
    ck_assert(kn_blocklist_add(&l, "a@x", 3));
    ck_assert(kn_blocklist_add(&l, "z.example", 9));
    ck_assert(kn_blocklist_add(&l, "a@x/r", 5));
    ck_assert(!kn_blocklist_add(&l, "m@x", 3)); /* already there */
    ck_assert_uint_eq(kn_blocklist_count(l), 4);
    const char *want[] = {"a@x", "a@x/r", "m@x", "z.example"};
    for (size_t i = 0; i < 4; i++) {
        size_t len;
        const char *s = kn_blocklist_item(l, i, &len);
        ck_assert_str_eq(s, want[i]);
        ck_assert_uint_eq(len, strlen(want[i]));
    }
    ck_assert(kn_blocklist_has(l, "a@x/r", 5));
    ck_assert(!kn_blocklist_has(l, "a@x/", 4));
    kn_blocklist_t *copy = kn_blocklist_dup(l);
    ck_assert(kn_blocklist_del(&l, "a@x", 3));
    ck_assert(!kn_blocklist_del(&l, "a@x", 3));
    ck_assert(!kn_blocklist_has(l, "a@x", 3));
    ck_assert(kn_blocklist_has(copy, "a@x", 3)); /* the copy is separate */
    ck_assert(kn_blocklist_del(&l, "a@x/r", 5));
    ck_assert(kn_blocklist_del(&l, "z.example", 9));
    ck_assert(kn_blocklist_del(&l, "m@x", 3));
    ck_assert_ptr_null(l); /* emptied: back to NULL */
    ck_assert_uint_eq(kn_blocklist_count(copy), 4);
    kn_blocklist_free(&copy);
    ck_assert_ptr_null(copy);
}
END_TEST

START_TEST(new_sorts_and_dedups)
{
    const char *j[] = {"c@x", "b.example", "c@x", "a@x/r", "b.example"};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(j[i]);
    kn_blocklist_t *l = kn_blocklist_new(j, lens, 5);
    ck_assert_uint_eq(kn_blocklist_count(l), 3);
    ck_assert_str_eq(kn_blocklist_item(l, 0, NULL), "a@x/r");
    ck_assert_str_eq(kn_blocklist_item(l, 1, NULL), "b.example");
    ck_assert_str_eq(kn_blocklist_item(l, 2, NULL), "c@x");
    kn_blocklist_free(&l);
}
END_TEST

START_TEST(list_match)
{
    kn_blocklist_t *l = NULL;
    kn_blocklist_add(&l, "iago@shakespeare.lit", 20);
    kn_blocklist_add(&l, "evil.example", 12);
    kn_blocklist_add(&l, "romeo@montague.net/orchard", 26);
    kn_blocklist_add(&l, "chat.example/troll", 18);
#define IN(s)  ck_assert_msg(kn_blocklist_match(l, s, strlen(s)), "%s", s)
#define OUT(s) ck_assert_msg(!kn_blocklist_match(l, s, strlen(s)), "%s", s)
    IN("iago@shakespeare.lit");
    IN("iago@shakespeare.lit/phone");
    IN("evil.example");
    IN("x@evil.example/y");
    IN("romeo@montague.net/orchard");
    IN("room@chat.example/troll");
    OUT("romeo@montague.net");
    OUT("romeo@montague.net/balcony");
    OUT("juliet@shakespeare.lit/phone");
    OUT("shakespeare.lit");
    OUT("room@chat.example/ok");
    OUT("");
#undef IN
#undef OUT
    kn_blocklist_free(&l);
}
END_TEST

/* The list agrees with the one-item rule on every pair drawn from a set
 * of JIDs of every form (binary search, keys and rule in one check). */
START_TEST(list_agrees_with_rule)
{
    const char *jids[] = {
        "a@d1",   "a@d1/r", "a@d1/s", "b@d1",    "b@d1/r",   "d1",
        "d1/r",   "d1/s",   "a@d2",   "a@d2/r",  "d2",       "d2/r",
        "a@d1.x", "d1.x",   "x.d1",   "a@d1/r@", "a@d1/r/s", "d1/a@d1",
    };
    size_t n = sizeof(jids) / sizeof(jids[0]);
    for (size_t i = 0; i < n; i++) {
        kn_blocklist_t *l = NULL;
        kn_blocklist_add(&l, jids[i], strlen(jids[i]));
        /* some unrelated items around it */
        kn_blocklist_add(&l, "zz@zz", 5);
        kn_blocklist_add(&l, "0", 1);
        for (size_t k = 0; k < n; k++) {
            bool want =
                M(jids[i], jids[k]) || M("zz@zz", jids[k]) || M("0", jids[k]);
            ck_assert_msg(kn_blocklist_match(l, jids[k], strlen(jids[k])) ==
                              want,
                          "item %s, jid %s", jids[i], jids[k]);
        }
        kn_blocklist_free(&l);
    }
}
END_TEST

START_TEST(many_items)
{
    kn_blocklist_t *l = NULL;
    char buf[64];
    for (int i = 0; i < 500; i++) {
        int n = snprintf(buf, sizeof(buf), "user%03d@host%d.example", i, i % 7);
        ck_assert(kn_blocklist_add(&l, buf, (size_t)n));
    }
    ck_assert_uint_eq(kn_blocklist_count(l), 500);
    for (size_t i = 1; i < 500; i++)
        ck_assert_int_lt(strcmp(kn_blocklist_item(l, i - 1, NULL),
                                kn_blocklist_item(l, i, NULL)),
                         0);
    ck_assert(kn_blocklist_match(l, "user123@host4.example/r", 23));
    ck_assert(!kn_blocklist_match(l, "user123@host5.example/r", 23));
    for (int i = 0; i < 500; i += 2) {
        int n = snprintf(buf, sizeof(buf), "user%03d@host%d.example", i, i % 7);
        ck_assert(kn_blocklist_del(&l, buf, (size_t)n));
    }
    ck_assert_uint_eq(kn_blocklist_count(l), 250);
    ck_assert(!kn_blocklist_match(l, "user122@host3.example", 21));
    ck_assert(kn_blocklist_match(l, "user123@host4.example", 21));
    kn_blocklist_free(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("block");
    tcase_add_test(tc, keys_of_each_form);
    tcase_add_test(tc, full_item_matches_only_itself);
    tcase_add_test(tc, bare_item_matches_any_resource);
    tcase_add_test(tc, domain_resource_item);
    tcase_add_test(tc, domain_item_matches_everything_at_it);
    tcase_add_test(tc, empty_list_is_null);
    tcase_add_test(tc, add_del_sorted_unique);
    tcase_add_test(tc, new_sorts_and_dedups);
    tcase_add_test(tc, list_match);
    tcase_add_test(tc, list_agrees_with_rule);
    tcase_add_test(tc, many_items);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
