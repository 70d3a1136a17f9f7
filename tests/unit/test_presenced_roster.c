/*
 * test_presenced_roster.c - roster versioning (XEP-0237) and groups,
 * shared-group merge (R-ROSTER-2), and the session/presence flows driven
 * with envelopes and a capture sink, no database: broadcast to the
 * user's own resources, one unavailable per session whatever the path
 * (R-DROP-1, R-DROP-2), no double broadcast on clean logout.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_proto.h"
#include "pres.h"

/* ---- pure helpers ---- */

START_TEST(test_ver_str)
{
    char a[64], b[64];
    pres_roster_ver_str(7, 3, a, sizeof(a));
    ck_assert_str_eq(a, "7-3");
    /* A shared-group change alone changes the version. */
    pres_roster_ver_str(7, 4, b, sizeof(b));
    ck_assert_str_ne(a, b);
    pres_roster_ver_str(8, 3, b, sizeof(b));
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_groups_roundtrip)
{
    char *in[] = {"Friends", "Company::R&D::Backend", "<odd> 'name'"};
    kn_buf_t b = KN_BUF_INIT;
    pres_groups_join(in, 3, &b);
    char **out = NULL;
    size_t n = pres_groups_split(b.data, &out);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(out[i], in[i]); /* XEP-0083 names kept intact */
        free(out[i]);
    }
    free(out);
    kn_buf_free(&b);
    kn_buf_t e = KN_BUF_INIT;
    pres_groups_join(NULL, 0, &e);
    ck_assert_uint_eq(pres_groups_split(e.data, &out), 0);
    kn_buf_free(&e);
}
END_TEST

START_TEST(test_merge_shared)
{
    pres_roster_t *r = calloc(1, sizeof(*r));
    pres_roster_merge_shared(r, "c@x", "Team");
    pres_roster_merge_shared(r, "c@x", "Team");
    pres_roster_merge_shared(r, "c@x", "Ops");
    pres_roster_merge_shared(r, "d@x", "Team");
    ck_assert_uint_eq(r->n, 2);
    pres_item_t *c = pres_roster_find(r, "c@x");
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->ngroups, 2);
    ck_assert_int_eq(pres_item_sub(c), PRES_SUB_BOTH);
    ck_assert(c->in_roster);
    ck_assert_ptr_null(pres_roster_find(r, "e@x"));
    pres_roster_free(&r);
    ck_assert_ptr_null(r);
}
END_TEST

/* ---- flows with a capture sink ---- */

typedef struct cap {
    kn_env_kind_t kind;
    uint16_t flags;
    size_t ntargets;
    uint64_t targets[8];
    char to[128];
    char payload[512];
    char raw[2048]; /* the payload's bytes (a bundle holds NULs) */
    size_t rawlen;
} cap_t;

static cap_t caps[64];
static int ncap;

static void cap_send(void *ud, const kn_env_t *env, const void *payload,
                     size_t len)
{
    (void)ud;
    ck_assert_int_lt(ncap, 64);
    cap_t *c = &caps[ncap++];
    memset(c, 0, sizeof(*c));
    c->kind = env->kind;
    c->flags = env->flags;
    c->ntargets = env->ntargets;
    for (size_t i = 0; i < env->ntargets && i < 8; i++)
        c->targets[i] = kn_env_target(env, i);
    snprintf(c->to, sizeof(c->to), "%.*s", (int)env->to_len, env->to);
    snprintf(c->payload, sizeof(c->payload), "%.*s", (int)len,
             (const char *)payload);
    ck_assert_uint_le(len, sizeof(c->raw));
    memcpy(c->raw, payload, len);
    c->rawlen = len;
}

static pres_t *mk(void)
{
    pres_conf_t conf = {0, 102400, 250, 1};
    pres_sink_t sink = {cap_send, NULL};
    ncap = 0;
    return pres_new(NULL, "x", &conf, &sink, NULL, NULL);
}

static void sess(pres_t *p, kn_env_kind_t kind, const char *full, uint64_t conn,
                 kn_env_reason_t why)
{
    kn_env_t e = {0};
    e.kind = kind;
    e.from = full;
    e.from_len = strlen(full);
    e.conn_id = conn;
    e.reason = why;
    pres_handle(p, &e, NULL, 0);
}

static void presence(pres_t *p, const char *full, const char *xml)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_PRESENCE;
    e.type = strstr(xml, "unavailable") ? KN_ENV_TYPE_UNAVAILABLE
                                        : KN_ENV_TYPE_AVAILABLE;
    e.from = full;
    e.from_len = strlen(full);
    pres_handle(p, &e, xml, strlen(xml));
}

#define C1 (((uint64_t)1 << KN_CONN_NODE_SHIFT) | 1)
#define C2 (((uint64_t)2 << KN_CONN_NODE_SHIFT) | 7)

START_TEST(test_broadcast_own_resources)
{
    pres_t *p = mk();
    sess(p, KN_ENV_SESSION_UP, "a@x/one", C1, 0);
    sess(p, KN_ENV_SESSION_UP, "a@x/two", C2, 0);
    /* XEP-0191: each new session gets its (empty) block list for c2s. */
    ck_assert_int_eq(ncap, 2);
    ck_assert_int_eq(caps[0].kind, KN_ENV_STANZA);
    ck_assert(caps[0].flags & KN_F_BLOCKLIST);
    ck_assert_str_eq(caps[0].to, "a@x/one");
    ck_assert_str_eq(caps[1].to, "a@x/two");
    ncap = 0;
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    /* Nobody else is available yet: only its own echo (RFC 6121 4.2.2). */
    ck_assert_int_eq(ncap, 1);
    ck_assert_int_eq(caps[0].kind, KN_ENV_MULTICAST);
    ck_assert_uint_eq(caps[0].ntargets, 1);
    ck_assert(caps[0].targets[0] == C1);
    ncap = 0;
    presence(p, "a@x/two",
             "<presence xmlns='jabber:client' from='a@x/two'>"
             "<status>hi</status></presence>");
    /* one multicast to both resources (the sender included), then the
     * other one's presence to the new one (login flow), exactly once */
    ck_assert_int_eq(ncap, 2);
    ck_assert_int_eq(caps[0].kind, KN_ENV_MULTICAST);
    ck_assert_uint_eq(caps[0].ntargets, 2);
    ck_assert(caps[0].targets[0] == C2 || caps[0].targets[1] == C2);
    ck_assert(caps[0].targets[0] == C1 || caps[0].targets[1] == C1);
    ck_assert_ptr_null(strstr(caps[0].payload, " to="));
    ck_assert_int_eq(caps[1].kind, KN_ENV_STANZA);
    ck_assert_str_eq(caps[1].to, "a@x/two");
    ck_assert_ptr_nonnull(strstr(caps[1].payload, "a@x/one"));
    pres_free(&p);
}
END_TEST

START_TEST(test_dropped_synthesizes_unavailable_once)
{
    pres_t *p = mk();
    sess(p, KN_ENV_SESSION_UP, "a@x/one", C1, 0);
    sess(p, KN_ENV_SESSION_UP, "a@x/two", C2, 0);
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    presence(p, "a@x/two", "<presence xmlns='jabber:client' from='a@x/two'/>");
    ncap = 0;
    /* R-DROP-2: dropped without unavailable -> synthesized. */
    sess(p, KN_ENV_SESSION_DOWN, "a@x/two", C2, KN_ENV_REASON_DROPPED);
    ck_assert_int_eq(ncap, 1);
    ck_assert_int_eq(caps[0].kind, KN_ENV_MULTICAST);
    ck_assert(caps[0].targets[0] == C1);
    ck_assert_ptr_nonnull(strstr(caps[0].payload, "unavailable"));
    ck_assert_ptr_nonnull(strstr(caps[0].payload, "a@x/two"));
    ck_assert_ptr_null(pres_sess_find(p, "a@x/two"));
    pres_free(&p);
}
END_TEST

START_TEST(test_clean_logout_no_double)
{
    pres_t *p = mk();
    sess(p, KN_ENV_SESSION_UP, "a@x/one", C1, 0);
    sess(p, KN_ENV_SESSION_UP, "a@x/two", C2, 0);
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    presence(p, "a@x/two", "<presence xmlns='jabber:client' from='a@x/two'/>");
    ncap = 0;
    /* R-DROP-1: the client's own unavailable, then SESSION_DOWN clean. */
    presence(p, "a@x/two",
             "<presence xmlns='jabber:client' from='a@x/two' "
             "type='unavailable'><status>bye</status></presence>");
    ck_assert_int_eq(ncap, 1);
    ck_assert_ptr_nonnull(strstr(caps[0].payload, "bye"));
    /* to the other resource and back to the sender (RFC 6121 4.5.2) */
    ck_assert_uint_eq(caps[0].ntargets, 2);
    ck_assert(caps[0].targets[0] == C2 || caps[0].targets[1] == C2);
    sess(p, KN_ENV_SESSION_DOWN, "a@x/two", C2, KN_ENV_REASON_CLEAN);
    ck_assert_int_eq(ncap, 1);
    pres_free(&p);
}
END_TEST

START_TEST(test_stale_down_ignored)
{
    /* R-DROP-7: a SESSION_DOWN for a replaced connection is ignored. */
    pres_t *p = mk();
    sess(p, KN_ENV_SESSION_UP, "a@x/one", C1, 0);
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    sess(p, KN_ENV_SESSION_DOWN, "a@x/one", C2, KN_ENV_REASON_CONFLICT);
    ck_assert_ptr_nonnull(pres_sess_find(p, "a@x/one"));
    pres_free(&p);
}
END_TEST

START_TEST(test_node_lost_same_path)
{
    /* R-DROP-6: node_lost arrives as SESSION_DOWN and is handled alike. */
    pres_t *p = mk();
    sess(p, KN_ENV_SESSION_UP, "a@x/one", C1, 0);
    sess(p, KN_ENV_SESSION_UP, "a@x/two", C2, 0);
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    presence(p, "a@x/two", "<presence xmlns='jabber:client' from='a@x/two'/>");
    ncap = 0;
    sess(p, KN_ENV_SESSION_DOWN, "a@x/one", C1, KN_ENV_REASON_NODE_LOST);
    ck_assert_int_eq(ncap, 1);
    ck_assert(caps[0].targets[0] == C2);
    pres_free(&p);
}
END_TEST

/* Issue 15: a new resource learns the presence of the others in ONE
 * envelope, a MULTICAST bundle to its connection (KN_F_BUNDLE), each item
 * the STANZA it would have been alone; a single one stays a STANZA
 * (test_broadcast_own_resources). R-PRES-3 (RFC 6121 4.2.2). */
START_TEST(test_login_presences_in_one_bundle)
{
    pres_t *p = mk();
    const char *full[3] = {"a@x/one", "a@x/two", "a@x/three"};
    uint64_t conn[3] = {C1, C2, C1 + 1};
    for (int i = 0; i < 3; i++)
        sess(p, KN_ENV_SESSION_UP, full[i], conn[i], 0);
    presence(p, "a@x/one", "<presence xmlns='jabber:client' from='a@x/one'/>");
    presence(p, "a@x/two",
             "<presence xmlns='jabber:client' from='a@x/two'>"
             "<show>away</show></presence>");
    ncap = 0;
    presence(p, "a@x/three",
             "<presence xmlns='jabber:client' from='a@x/three'/>");
    /* the broadcast (to all three), then the bundle, nothing else */
    ck_assert_int_eq(ncap, 2);
    ck_assert_int_eq(caps[0].kind, KN_ENV_MULTICAST);
    ck_assert_uint_eq(caps[0].ntargets, 3);
    ck_assert(!(caps[0].flags & KN_F_BUNDLE));
    ck_assert_int_eq(caps[1].kind, KN_ENV_MULTICAST);
    ck_assert(caps[1].flags & KN_F_BUNDLE);
    ck_assert_uint_eq(caps[1].ntargets, 1);
    ck_assert(caps[1].targets[0] == C1 + 1);
    size_t off = 0;
    kn_env_t e;
    const void *pl;
    size_t len;
    bool seen[2] = {false, false};
    int n = 0;
    while (kn_env_bundle_next(caps[1].raw, caps[1].rawlen, &off, &e, &pl,
                              &len) > 0) {
        n++;
        ck_assert_int_eq(e.kind, KN_ENV_STANZA);
        ck_assert_int_eq(e.stanza, KN_ENV_ST_PRESENCE);
        ck_assert_uint_eq(e.to_len, strlen("a@x/three"));
        ck_assert(memcmp(e.to, "a@x/three", e.to_len) == 0);
        char xml[512];
        snprintf(xml, sizeof(xml), "%.*s", (int)len, (const char *)pl);
        ck_assert_ptr_nonnull(strstr(xml, "to='a@x/three'"));
        for (int i = 0; i < 2; i++)
            if (e.from_len == strlen(full[i]) &&
                memcmp(e.from, full[i], e.from_len) == 0) {
                ck_assert(!seen[i]);
                seen[i] = true;
                ck_assert_ptr_nonnull(strstr(xml, full[i]));
            }
    }
    ck_assert_int_eq(n, 2);
    ck_assert(seen[0] && seen[1]);
    ck_assert_uint_eq(off, caps[1].rawlen);
    ck_assert_uint_eq(p->stats.bundles, 1);
    ck_assert_uint_eq(p->stats.bundled, 2);
    pres_free(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_roster");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ver_str);
    tcase_add_test(tc, test_groups_roundtrip);
    tcase_add_test(tc, test_merge_shared);
    tcase_add_test(tc, test_broadcast_own_resources);
    tcase_add_test(tc, test_login_presences_in_one_bundle);
    tcase_add_test(tc, test_dropped_synthesizes_unavailable_once);
    tcase_add_test(tc, test_clean_logout_no_double);
    tcase_add_test(tc, test_stale_down_ignored);
    tcase_add_test(tc, test_node_lost_same_path);
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
