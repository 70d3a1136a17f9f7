/*
 * test_mucd_rules.c - XEP-0045 affiliation and role rules (muc_aff.c),
 * the history ring and history requests (muc_history.c, R-PERF-7),
 * the configuration form (muc_config.c), when a rejoin's presence is news
 * and who an error is by (muc_out.c), as pure functions.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_xml.h"
#include "muc_aff.h"
#include "muc_config.h"
#include "muc_history.h"
#include "muc_out.h"
#include "muc_room.h"

START_TEST(names_round_trip)
{
    for (int a = MUC_AFF_OUTCAST; a <= MUC_AFF_OWNER; a++) {
        muc_aff_t back;
        ck_assert_int_eq(muc_aff_parse(muc_aff_name((muc_aff_t)a), &back), 0);
        ck_assert_int_eq(back, a);
    }
    for (int r = MUC_ROLE_NONE; r <= MUC_ROLE_MODERATOR; r++) {
        muc_role_t back;
        ck_assert_int_eq(muc_role_parse(muc_role_name((muc_role_t)r), &back),
                         0);
        ck_assert_int_eq(back, r);
    }
    muc_aff_t a;
    ck_assert_int_lt(muc_aff_parse("king", &a), 0);
    ck_assert_int_lt(muc_aff_parse(NULL, &a), 0);
}
END_TEST

START_TEST(default_roles)
{
    muc_config_t c;
    muc_config_defaults(&c);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_OWNER), MUC_ROLE_MODERATOR);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_ADMIN), MUC_ROLE_MODERATOR);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_MEMBER),
                     MUC_ROLE_PARTICIPANT);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_NONE), MUC_ROLE_PARTICIPANT);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_OUTCAST), MUC_ROLE_NONE);
    c.moderated = true;
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_NONE), MUC_ROLE_VISITOR);
    ck_assert_int_eq(muc_role_default(&c, MUC_AFF_MEMBER),
                     MUC_ROLE_PARTICIPANT);
}
END_TEST

START_TEST(affiliation_changes)
{
    /* Owners change anything. */
    ck_assert(muc_aff_can_change(MUC_AFF_OWNER, MUC_AFF_NONE, MUC_AFF_OWNER));
    ck_assert(
        muc_aff_can_change(MUC_AFF_OWNER, MUC_AFF_ADMIN, MUC_AFF_OUTCAST));
    /* Admins move users among none, member and outcast only. */
    ck_assert(muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_NONE, MUC_AFF_MEMBER));
    ck_assert(
        muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_MEMBER, MUC_AFF_OUTCAST));
    ck_assert(muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_OUTCAST, MUC_AFF_NONE));
    ck_assert(!muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_NONE, MUC_AFF_ADMIN));
    ck_assert(!muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_ADMIN, MUC_AFF_NONE));
    ck_assert(
        !muc_aff_can_change(MUC_AFF_ADMIN, MUC_AFF_OWNER, MUC_AFF_OUTCAST));
    /* Members and others: nothing. */
    ck_assert(
        !muc_aff_can_change(MUC_AFF_MEMBER, MUC_AFF_NONE, MUC_AFF_MEMBER));
    ck_assert(!muc_aff_can_change(MUC_AFF_NONE, MUC_AFF_NONE, MUC_AFF_MEMBER));
    ck_assert(!muc_aff_can_change(MUC_AFF_OUTCAST, MUC_AFF_NONE, MUC_AFF_NONE));
}
END_TEST

START_TEST(role_changes)
{
    /* A moderator kicks or mutes participants below admin. */
    ck_assert(muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_NONE,
                                  MUC_ROLE_PARTICIPANT, MUC_AFF_MEMBER,
                                  MUC_ROLE_NONE));
    ck_assert(muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_ADMIN,
                                  MUC_ROLE_PARTICIPANT, MUC_AFF_NONE,
                                  MUC_ROLE_VISITOR));
    /* ... but not an admin or an owner. */
    ck_assert(!muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_NONE,
                                   MUC_ROLE_MODERATOR, MUC_AFF_ADMIN,
                                   MUC_ROLE_NONE));
    ck_assert(!muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_ADMIN,
                                   MUC_ROLE_MODERATOR, MUC_AFF_OWNER,
                                   MUC_ROLE_NONE));
    /* Participants change nobody. */
    ck_assert(!muc_role_can_change(MUC_ROLE_PARTICIPANT, MUC_AFF_MEMBER,
                                   MUC_ROLE_PARTICIPANT, MUC_AFF_NONE,
                                   MUC_ROLE_NONE));
    /* Moderator grants: admins and owners only. */
    ck_assert(muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_ADMIN,
                                  MUC_ROLE_PARTICIPANT, MUC_AFF_MEMBER,
                                  MUC_ROLE_MODERATOR));
    ck_assert(!muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_NONE,
                                   MUC_ROLE_PARTICIPANT, MUC_AFF_MEMBER,
                                   MUC_ROLE_MODERATOR));
    /* A granted moderator (member) can be revoked by an admin, not by
     * another moderator without affiliation. */
    ck_assert(muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_OWNER,
                                  MUC_ROLE_MODERATOR, MUC_AFF_MEMBER,
                                  MUC_ROLE_PARTICIPANT));
    ck_assert(!muc_role_can_change(MUC_ROLE_MODERATOR, MUC_AFF_MEMBER,
                                   MUC_ROLE_MODERATOR, MUC_AFF_MEMBER,
                                   MUC_ROLE_NONE));
}
END_TEST

START_TEST(lists_pm_subject)
{
    muc_config_t c;
    muc_config_defaults(&c);
    ck_assert(muc_aff_can_list(&c, MUC_AFF_ADMIN, MUC_AFF_OUTCAST));
    ck_assert(muc_aff_can_list(&c, MUC_AFF_OWNER, MUC_AFF_OWNER));
    ck_assert(!muc_aff_can_list(&c, MUC_AFF_MEMBER, MUC_AFF_MEMBER));
    c.members_only = true;
    ck_assert(muc_aff_can_list(&c, MUC_AFF_MEMBER, MUC_AFF_MEMBER));
    ck_assert(!muc_aff_can_list(&c, MUC_AFF_MEMBER, MUC_AFF_OUTCAST));
    ck_assert(muc_pm_allowed(&c, MUC_ROLE_VISITOR));
    muc_config_group(&c);
    ck_assert(!muc_pm_allowed(&c, MUC_ROLE_MODERATOR));
    ck_assert(!muc_subject_allowed(&c, MUC_ROLE_PARTICIPANT));
    ck_assert(muc_subject_allowed(&c, MUC_ROLE_MODERATOR));
    c.change_subject = true;
    ck_assert(muc_subject_allowed(&c, MUC_ROLE_PARTICIPANT));
    ck_assert(!muc_subject_allowed(&c, MUC_ROLE_VISITOR));
}
END_TEST

START_TEST(group_profile_R_GRP_1)
{
    muc_config_t c;
    muc_config_defaults(&c);
    muc_config_group(&c);
    ck_assert(c.persistent && c.members_only && !c.public_room && c.mam);
    ck_assert_int_eq(c.whois, MUC_WHOIS_ANYONE);
    ck_assert_int_eq(c.allow_pm, MUC_PM_NONE);
    ck_assert(c.offline_delivery);
    ck_assert_int_eq(c.history_mode, MUC_HISTORY_NONE); /* R-GRP-9 */
}
END_TEST

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    return st;
}

START_TEST(history_ring_and_requests_R_PERF_7)
{
    muc_t m;
    muc_sink_t sink = {NULL, NULL};
    muc_init(&m, "localhost", "conference.localhost", &sink);
    muc_room_t *r = muc_room_new(&m, "room@conference.localhost");
    ck_assert_int_eq(muc_history_room_max(r, 1000), 25); /* default */
    kn_stanza_t *msg = parse("<message type='groupchat'><body>hi</body>"
                             "</message>");
    for (int i = 1; i <= 30; i++)
        muc_history_add(r, 1000, msg, 1000 + i, (uint64_t)i, 10);
    ck_assert_uint_eq(r->hist_len, 25);
    ck_assert_uint_eq(muc_history_at(r, 0)->seq, 6);
    ck_assert_uint_eq(muc_history_at(r, 24)->seq, 30);
    muc_history_req_t req = {-1, -1, -1, (time_t)-1};
    ck_assert_uint_eq(muc_history_select(r, &req, 2000), 0); /* all 25 */
    req.maxstanzas = 5;
    ck_assert_uint_eq(muc_history_select(r, &req, 2000), 20);
    req.maxstanzas = 100; /* honoured up to the room maximum */
    ck_assert_uint_eq(muc_history_select(r, &req, 2000), 0);
    req.maxstanzas = 0;
    ck_assert_uint_eq(muc_history_select(r, &req, 2000), 25);
    req.maxstanzas = -1;
    req.maxchars = 35; /* three messages of 10 */
    ck_assert_uint_eq(muc_history_select(r, &req, 2000), 22);
    req.maxchars = -1;
    req.seconds = 3; /* at 1030: 1027..1030 */
    ck_assert_uint_eq(muc_history_select(r, &req, 1030), 21);
    req.seconds = -1;
    req.since = 1029;
    ck_assert_uint_eq(muc_history_select(r, &req, 1030), 23);
    /* none: nothing kept */
    r->cfg.history_mode = MUC_HISTORY_NONE;
    muc_history_resize(r, 1000);
    ck_assert_uint_eq(r->hist_len, 0);
    /* all: bounded by the hard maximum */
    r->cfg.history_mode = MUC_HISTORY_ALL;
    for (int i = 1; i <= 60; i++)
        muc_history_add(r, 50, msg, 1000 + i, (uint64_t)i, 10);
    ck_assert_uint_eq(r->hist_len, 50);
    kn_stanza_unref(&msg);
    /* <history/> parsing */
    kn_stanza_t *p =
        parse("<presence><x xmlns='http://jabber.org/protocol/muc'>"
              "<history maxstanzas='7' seconds='60' "
              "since='1970-01-01T00:16:40Z'/></x></presence>");
    int x = kn_stanza_child(p, 0, "x", MUC_NS);
    muc_history_req_parse(p, x, &req);
    ck_assert_int_eq(req.maxstanzas, 7);
    ck_assert_int_eq(req.seconds, 60);
    ck_assert_int_eq(req.maxchars, -1);
    ck_assert_int_eq((long)req.since, 1000);
    kn_stanza_unref(&p);
    muc_fini(&m);
}
END_TEST

START_TEST(time_parse_format)
{
    time_t t;
    ck_assert_int_eq(muc_time_parse("2002-10-13T23:58:37Z", &t), 0);
    char buf[32];
    muc_time_format(t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2002-10-13T23:58:37Z");
    ck_assert_int_eq(muc_time_parse("2002-10-13T23:58:37.123+02:00", &t), 0);
    muc_time_format(t, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2002-10-13T21:58:37Z");
    ck_assert_int_lt(muc_time_parse("yesterday", &t), 0);
}
END_TEST

START_TEST(config_form_apply)
{
    muc_config_t c;
    muc_config_defaults(&c);
    kn_stanza_t *st = parse(
        "<iq type='set'><query xmlns='http://jabber.org/protocol/muc#owner'>"
        "<x xmlns='jabber:x:data' type='submit'>"
        "<field var='muc#roomconfig_roomname'><value>Team</value></field>"
        "<field var='muc#roomconfig_membersonly'><value>1</value></field>"
        "<field var='muc#roomconfig_whois'><value>anyone</value></field>"
        "<field var='muc#roomconfig_maxusers'><value>30</value></field>"
        "<field var='kiln#history_mode'><value>all</value></field>"
        "<field var='muc#roomconfig_allowpm'><value>none</value></field>"
        "</x></query></iq>");
    int q = kn_stanza_first_child(st, 0);
    int x = kn_stanza_child(st, q, "x", MUC_NS_DATA);
    ck_assert_int_eq(muc_config_apply(&c, st, x), 0);
    ck_assert_str_eq(c.title, "Team");
    ck_assert(c.members_only);
    ck_assert_int_eq(c.whois, MUC_WHOIS_ANYONE);
    ck_assert_uint_eq(c.max_occupants, 30);
    ck_assert_int_eq(c.history_mode, MUC_HISTORY_ALL);
    ck_assert_int_eq(c.allow_pm, MUC_PM_NONE);
    kn_stanza_unref(&st);
    /* A bad value changes nothing. */
    st = parse("<x xmlns='jabber:x:data' type='submit'>"
               "<field var='muc#roomconfig_roomname'><value>X</value></field>"
               "<field var='muc#roomconfig_whois'><value>all</value></field>"
               "</x>");
    ck_assert_int_lt(muc_config_apply(&c, st, 0), 0);
    ck_assert_str_eq(c.title, "Team");
    kn_stanza_unref(&st);
    /* The form lists the current values. */
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "query", MUC_NS_OWNER);
    muc_config_form(b, &c);
    kn_stanza_t *f = kn_stanza_builder_finish(b);
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_serialize(f, &out, NULL);
    ck_assert_ptr_nonnull(strstr(out.data, "muc#roomconfig_membersonly"));
    ck_assert_ptr_nonnull(strstr(out.data, "<value>Team</value>"));
    kn_buf_free(&out);
    kn_stanza_unref(&f);
    kn_stanza_builder_free(&b);
    muc_config_free(&c);
}
END_TEST

START_TEST(presence_sameness_for_rejoins)
{
    kn_stanza_t *a = parse("<presence><show>away</show><status>x</status>"
                           "<x xmlns='http://jabber.org/protocol/muc'/>"
                           "</presence>");
    kn_stanza_t *b = parse("<presence to='r@c/n'><show>away</show>"
                           "<status>x</status></presence>");
    kn_stanza_t *c = parse("<presence><show>away</show><status>y</status>"
                           "</presence>");
    kn_stanza_t *d = parse("<presence><x xmlns='http://jabber.org/protocol/"
                           "muc'><history maxstanzas='0'/></x></presence>");
    ck_assert(muc_pres_same(a, b)); /* MUC elements and attributes aside */
    ck_assert(!muc_pres_same(a, c));
    ck_assert(muc_pres_same(d, NULL));
    ck_assert(muc_pres_same(NULL, NULL));
    ck_assert(!muc_pres_same(a, NULL));
    kn_stanza_unref(&a);
    kn_stanza_unref(&b);
    kn_stanza_unref(&c);
    kn_stanza_unref(&d);
}
END_TEST

START_TEST(error_by_room_or_service)
{
    muc_t m;
    muc_sink_t sink = {NULL, NULL};
    muc_init(&m, "localhost", "conference.localhost", &sink);
    muc_room_new(&m, "room@conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, "room@conference.localhost"),
                     "room@conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, "room@conference.localhost/nick/x"),
                     "room@conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, "none@conference.localhost/nick"),
                     "conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, "conference.localhost"),
                     "conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, "other.localhost/a@b"),
                     "conference.localhost");
    ck_assert_str_eq(muc_error_by(&m, NULL), "conference.localhost");
    muc_fini(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mucd_rules");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, names_round_trip);
    tcase_add_test(tc, default_roles);
    tcase_add_test(tc, affiliation_changes);
    tcase_add_test(tc, role_changes);
    tcase_add_test(tc, lists_pm_subject);
    tcase_add_test(tc, group_profile_R_GRP_1);
    tcase_add_test(tc, history_ring_and_requests_R_PERF_7);
    tcase_add_test(tc, time_parse_format);
    tcase_add_test(tc, config_form_apply);
    tcase_add_test(tc, presence_sameness_for_rejoins);
    tcase_add_test(tc, error_by_room_or_service);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
