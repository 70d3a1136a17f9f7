/*
 * test_presenced_subscr.c - the subscription state machine against RFC
 * 6121 Appendix A: every one of the nine states through each of the four
 * subscription presences, on the user's side (outbound, A.2/A.4 "user's
 * server") and the contact's side (inbound, A.3/A.5 "contact's server"),
 * plus pre-approval (3.4). R-BASE-1.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "pres_subscr.h"

static const char *const states[] = {"none",        "none+out", "none+in",
                                     "none+out+in", "to",       "to+in",
                                     "from",        "from+out", "both"};
#define NSTATES 9

static pres_substate_t st_of(const char *s)
{
    pres_substate_t st = {PRES_SUB_NONE, false, false, false};
    if (strncmp(s, "none", 4) == 0)
        st.sub = PRES_SUB_NONE;
    else if (strncmp(s, "to", 2) == 0)
        st.sub = PRES_SUB_TO;
    else if (strncmp(s, "from", 4) == 0)
        st.sub = PRES_SUB_FROM;
    else
        st.sub = PRES_SUB_BOTH;
    st.out = strstr(s, "+out") != NULL;
    st.in = strstr(s, "+in") != NULL || strstr(s, "+out+in") != NULL;
    return st;
}

static void name_of(const pres_substate_t *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", pres_sub_name(s->sub), s->out ? "+out" : "",
             s->in ? "+in" : "");
}

typedef struct row {
    kn_env_type_t type;
    const char *expect[NSTATES]; /* new state for each of states[] */
    bool deliver[NSTATES];
} row_t;

/* Outbound: the user's server (RFC 6121 A.2.1, A.2.2, A.4.1, A.4.2
 * and 3.1.2, 3.2.2, 3.3.2, 3.4). */
static const row_t outbound[] = {
    {KN_ENV_TYPE_SUBSCRIBE,
     {"none+out", "none+out", "none+out+in", "none+out+in", "to", "to+in",
      "from+out", "from+out", "both"},
     {1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {KN_ENV_TYPE_UNSUBSCRIBE,
     {"none", "none", "none+in", "none+in", "none", "none+in", "from", "from",
      "from"},
     {1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {KN_ENV_TYPE_SUBSCRIBED,
     {"none", "none+out", "from", "from+out", "to", "both", "from", "from+out",
      "both"},
     {0, 0, 1, 1, 0, 1, 0, 0, 0}},
    {KN_ENV_TYPE_UNSUBSCRIBED,
     {"none", "none+out", "none", "none+out", "to", "to", "none", "none+out",
      "to"},
     {0, 0, 1, 1, 0, 1, 1, 1, 1}},
};

/* Inbound: the contact's server (RFC 6121 A.3.1-A.3.4, A.5). */
static const row_t inbound[] = {
    {KN_ENV_TYPE_SUBSCRIBE,
     {"none+in", "none+out+in", "none+in", "none+out+in", "to+in", "to+in",
      "from", "from+out", "both"},
     {1, 1, 1, 1, 1, 1, 0, 0, 0}},
    {KN_ENV_TYPE_SUBSCRIBED,
     {"none", "to", "none+in", "to+in", "to", "to+in", "from", "both", "both"},
     {0, 1, 0, 1, 0, 0, 0, 1, 0}},
    {KN_ENV_TYPE_UNSUBSCRIBE,
     {"none", "none+out", "none", "none+out", "to", "to", "none", "none+out",
      "to"},
     {0, 0, 1, 1, 0, 1, 1, 1, 1}},
    {KN_ENV_TYPE_UNSUBSCRIBED,
     {"none", "none", "none+in", "none+in", "none", "none+in", "from", "from",
      "from"},
     {0, 1, 0, 1, 1, 1, 0, 1, 1}},
};

static void check_table(const row_t *rows, size_t nrows, bool in)
{
    for (size_t r = 0; r < nrows; r++) {
        for (int i = 0; i < NSTATES; i++) {
            pres_substate_t cur = st_of(states[i]);
            pres_subscr_result_t res;
            if (in)
                pres_subscr_inbound(rows[r].type, &cur, &res);
            else
                pres_subscr_outbound(rows[r].type, &cur, &res);
            char got[64];
            name_of(&res.st, got, sizeof(got));
            ck_assert_msg(strcmp(got, rows[r].expect[i]) == 0,
                          "%s %s from %s: got %s, want %s",
                          in ? "inbound" : "outbound",
                          kn_env_type_name(rows[r].type), states[i], got,
                          rows[r].expect[i]);
            ck_assert_msg(res.deliver == rows[r].deliver[i],
                          "%s %s from %s: deliver %d", in ? "in" : "out",
                          kn_env_type_name(rows[r].type), states[i],
                          res.deliver);
            ck_assert_int_eq(res.changed, !pres_substate_eq(&cur, &res.st));
            /* Invariants: out implies not to, in implies not from. */
            ck_assert(!(res.st.out && (res.st.sub & PRES_SUB_TO)));
            ck_assert(!(res.st.in && (res.st.sub & PRES_SUB_FROM)));
        }
    }
}

START_TEST(test_outbound_all_transitions)
{
    check_table(outbound, sizeof(outbound) / sizeof(outbound[0]), false);
}
END_TEST

START_TEST(test_inbound_all_transitions)
{
    check_table(inbound, sizeof(inbound) / sizeof(inbound[0]), true);
}
END_TEST

START_TEST(test_inbound_subscribe_autoreply)
{
    /* Already from/both: the contact's server answers subscribed itself. */
    const char *auto_states[] = {"from", "from+out", "both"};
    for (size_t i = 0; i < 3; i++) {
        pres_substate_t cur = st_of(auto_states[i]);
        pres_subscr_result_t res;
        pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &cur, &res);
        ck_assert(res.autoreply);
        ck_assert(!res.changed);
    }
    pres_substate_t none = st_of("none");
    pres_subscr_result_t res;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &none, &res);
    ck_assert(!res.autoreply);
}
END_TEST

START_TEST(test_preapproval)
{
    /* RFC 6121 3.4: subscribed without a pending request pre-approves;
     * the next inbound subscribe is accepted without asking the user. */
    pres_substate_t cur = st_of("none");
    pres_subscr_result_t res;
    pres_subscr_outbound(KN_ENV_TYPE_SUBSCRIBED, &cur, &res);
    ck_assert(res.st.pre);
    ck_assert(res.changed);
    ck_assert(!res.deliver);
    pres_substate_t pre = res.st;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &pre, &res);
    ck_assert_int_eq(res.st.sub, PRES_SUB_FROM);
    ck_assert(!res.st.pre && !res.st.in);
    ck_assert(res.autoreply);
    ck_assert(!res.deliver);
    /* To + pre-approved -> Both. */
    cur = st_of("to");
    cur.pre = true;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &cur, &res);
    ck_assert_int_eq(res.st.sub, PRES_SUB_BOTH);
    /* Unsubscribed withdraws a pre-approval. */
    pres_subscr_outbound(KN_ENV_TYPE_UNSUBSCRIBED, &pre, &res);
    ck_assert(!res.st.pre);
    ck_assert(res.changed);
}
END_TEST

START_TEST(test_handshake_both_sides)
{
    /* A full handshake A <-> B ends in both on both sides. */
    pres_substate_t a = st_of("none"), b = st_of("none");
    pres_subscr_result_t r;
    pres_subscr_outbound(KN_ENV_TYPE_SUBSCRIBE, &a, &r); /* A asks */
    a = r.st;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &b, &r);
    b = r.st;
    pres_subscr_outbound(KN_ENV_TYPE_SUBSCRIBED, &b, &r); /* B approves */
    b = r.st;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBED, &a, &r);
    a = r.st;
    ck_assert_int_eq(a.sub, PRES_SUB_TO);
    ck_assert_int_eq(b.sub, PRES_SUB_FROM);
    pres_subscr_outbound(KN_ENV_TYPE_SUBSCRIBE, &b, &r); /* B asks back */
    b = r.st;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBE, &a, &r);
    a = r.st;
    pres_subscr_outbound(KN_ENV_TYPE_SUBSCRIBED, &a, &r);
    a = r.st;
    pres_subscr_inbound(KN_ENV_TYPE_SUBSCRIBED, &b, &r);
    b = r.st;
    ck_assert_int_eq(a.sub, PRES_SUB_BOTH);
    ck_assert_int_eq(b.sub, PRES_SUB_BOTH);
    ck_assert(!a.out && !a.in && !b.out && !b.in);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("presenced_subscr");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_outbound_all_transitions);
    tcase_add_test(tc, test_inbound_all_transitions);
    tcase_add_test(tc, test_inbound_subscribe_autoreply);
    tcase_add_test(tc, test_preapproval);
    tcase_add_test(tc, test_handshake_both_sides);
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
