/*
 * test_presenced_mam.c - the pure half of the XEP-0313 archive
 * (presenced/pres_mam_req.c): XEP-0082 dates, archive ids, the query form
 * and RSM (XEP-0059) turned into exclusive id bounds, preferences, the
 * PostgreSQL array literals of the batched insert.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_buf.h"
#include "kn_xml.h"
#include "pres_mam.h"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(
        kn_xml_parse_stanza(xml, strlen(xml), "jabber:client", &st), 0);
    return st;
}

/* Parse <iq><query>BODY</query></iq>; returns 0 or -1. */
static int q(const char *body, mam_query_t *out)
{
    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2' "
             "queryid='qq'>%s</query></iq>",
             body);
    kn_stanza_t *st = parse(xml);
    kn_stanza_err_t err = KN_STE_INTERNAL_SERVER_ERROR;
    int rc = mam_query_parse(st, kn_stanza_first_child(st, 0), out, &err);
    if (rc < 0)
        ck_assert_int_eq(err, KN_STE_BAD_REQUEST);
    kn_stanza_unref(&st);
    return rc;
}

#define FORM(fields)                                                           \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "           \
    "type='hidden'><value>urn:xmpp:mam:2</value></field>" fields "</x>"
#define F(var, v) "<field var='" var "'><value>" v "</value></field>"
#define RSM(x)    "<set xmlns='http://jabber.org/protocol/rsm'>" x "</set>"

START_TEST(dates)
{
    ck_assert_int_eq(mam_time_parse("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00Z"), 1275868800000LL);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00.123Z"),
                     1275868800123LL);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00.1Z"), 1275868800100LL);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00.123456Z"),
                     1275868800123LL);
    ck_assert_int_eq(mam_time_parse("2010-06-07T02:00:00+02:00"),
                     1275868800000LL);
    ck_assert_int_eq(mam_time_parse("2010-06-06T22:30:00-01:30"),
                     1275868800000LL);
    ck_assert_int_eq(mam_time_parse("2010-06-07"), -1);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00"), -1);
    ck_assert_int_eq(mam_time_parse("2010-13-07T00:00:00Z"), -1);
    ck_assert_int_eq(mam_time_parse("2010-06-07T00:00:00Zx"), -1);
    ck_assert_int_eq(mam_time_parse("yesterday at noon!!"), -1);
    ck_assert_int_eq(mam_time_parse(NULL), -1);
    char buf[40];
    mam_id_stamp((uint64_t)1275868800123LL << 16 | 7, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2010-06-07T00:00:00.123Z");
}
END_TEST

START_TEST(ids)
{
    ck_assert_int_eq(mam_id_parse("1"), 1);
    ck_assert_int_eq(mam_id_parse("9223372036854775807"), INT64_MAX);
    ck_assert_int_eq(mam_id_parse("9223372036854775808"), -1);
    ck_assert_int_eq(mam_id_parse("0"), -1);
    ck_assert_int_eq(mam_id_parse(""), -1);
    ck_assert_int_eq(mam_id_parse("-5"), -1);
    ck_assert_int_eq(mam_id_parse("12a"), -1);
    ck_assert_int_eq(mam_id_parse(NULL), -1);
}
END_TEST

START_TEST(query_defaults)
{
    mam_query_t m;
    ck_assert_int_eq(q("", &m), 0);
    ck_assert_str_eq(m.queryid, "qq");
    ck_assert_ptr_null(m.with);
    ck_assert_int_eq(m.lo, 0);
    ck_assert_int_eq(m.hi, INT64_MAX);
    ck_assert_uint_eq(m.max, MAM_MAX_DEFAULT);
    ck_assert(!m.backward);
    mam_query_free(&m);
}
END_TEST

START_TEST(query_form_bounds)
{
    mam_query_t m;
    ck_assert_int_eq(q(FORM(F("with", "Juliet@Capulet.lit/balcony")
                                F("start", "2010-06-07T00:00:00Z")
                                    F("end", "2010-07-07T13:23:54Z")),
                       &m),
                     0);
    /* with: prepared, bare */
    ck_assert_str_eq(m.with, "juliet@capulet.lit");
    ck_assert_int_eq(m.lo, (1275868800000LL << 16) - 1);
    ck_assert_int_eq(m.hi, (1278509034000LL + 1) << 16);
    mam_query_free(&m);
    /* after-id/before-id and RSM after/before: the tighter bound wins */
    ck_assert_int_eq(q(FORM(F("after-id", "100") F("before-id", "900"))
                           RSM("<max>10</max><after>200</after>"),
                       &m),
                     0);
    ck_assert_int_eq(m.lo, 200);
    ck_assert_int_eq(m.hi, 900);
    ck_assert_uint_eq(m.max, 10);
    ck_assert(!m.backward);
    mam_query_free(&m);
    ck_assert_int_eq(
        q(FORM(F("after-id", "300")) RSM("<after>200</after>"), &m), 0);
    ck_assert_int_eq(m.lo, 300);
    mam_query_free(&m);
    /* far future dates do not overflow the id space */
    ck_assert_int_eq(q(FORM(F("start", "9999-12-31T23:59:59Z")
                                F("end", "9999-12-31T23:59:59Z")),
                       &m),
                     0);
    ck_assert_int_eq(m.lo, INT64_MAX - 1);
    ck_assert_int_eq(m.hi, INT64_MAX);
    mam_query_free(&m);
    /* an empty field filters nothing */
    ck_assert_int_eq(q(FORM(F("with", "") F("start", "")), &m), 0);
    ck_assert_ptr_null(m.with);
    ck_assert_int_eq(m.lo, 0);
    mam_query_free(&m);
}
END_TEST

START_TEST(query_rsm)
{
    mam_query_t m;
    /* <before/> empty: the last page, backward */
    ck_assert_int_eq(q(RSM("<max>5</max><before/>"), &m), 0);
    ck_assert(m.backward);
    ck_assert_int_eq(m.hi, INT64_MAX);
    ck_assert_uint_eq(m.max, 5);
    mam_query_free(&m);
    ck_assert_int_eq(q(RSM("<before>77</before>"), &m), 0);
    ck_assert(m.backward);
    ck_assert_int_eq(m.hi, 77);
    mam_query_free(&m);
    /* max is capped, 0 allowed */
    ck_assert_int_eq(q(RSM("<max>100000</max>"), &m), 0);
    ck_assert_uint_eq(m.max, MAM_MAX_LIMIT);
    mam_query_free(&m);
    ck_assert_int_eq(q(RSM("<max>0</max>"), &m), 0);
    ck_assert_uint_eq(m.max, 0);
    mam_query_free(&m);
}
END_TEST

START_TEST(query_bad)
{
    mam_query_t m;
    ck_assert_int_eq(q(FORM(F("start", "tomorrow")), &m), -1);
    ck_assert_int_eq(q(FORM(F("end", "2010-06-07")), &m), -1);
    ck_assert_int_eq(q(FORM(F("after-id", "abc")), &m), -1);
    ck_assert_int_eq(q(FORM(F("before-id", "-1")), &m), -1);
    ck_assert_int_eq(q(FORM(F("with", "a@b@c")), &m), -1);
    ck_assert_int_eq(q(FORM(F("unknown-field", "x")), &m), -1);
    ck_assert_int_eq(q("<x xmlns='jabber:x:data' type='submit'><field "
                       "var='FORM_TYPE'><value>urn:xmpp:mam:1</value>"
                       "</field></x>",
                       &m),
                     -1);
    ck_assert_int_eq(q(RSM("<max>-1</max>"), &m), -1);
    ck_assert_int_eq(q(RSM("<max>ten</max>"), &m), -1);
    ck_assert_int_eq(q(RSM("<after>x</after>"), &m), -1);
    ck_assert_int_eq(q(RSM("<after></after>"), &m), -1);
    ck_assert_int_eq(q(RSM("<before>x</before>"), &m), -1);
}
END_TEST

START_TEST(prefs)
{
    kn_stanza_t *st =
        parse("<iq type='set'><prefs xmlns='urn:xmpp:mam:2' default='roster'>"
              "<always><jid>Romeo@Montague.lit</jid></always><never><jid>"
              "montague.lit</jid><jid>x@y/z</jid></never></prefs></iq>");
    mam_prefs_t p;
    kn_stanza_err_t err;
    ck_assert_int_eq(
        mam_prefs_parse(st, kn_stanza_first_child(st, 0), &p, &err), 0);
    ck_assert_int_eq(p.dflt, MAM_PREF_ROSTER);
    ck_assert_uint_eq(p.nalways, 1);
    ck_assert_str_eq(p.always[0], "romeo@montague.lit");
    ck_assert_uint_eq(p.nnever, 2);
    ck_assert_str_eq(p.never[1], "x@y/z");
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "iq", "jabber:client");
    mam_prefs_build(b, &p);
    kn_stanza_t *out = kn_stanza_builder_finish(b);
    kn_buf_t s = KN_BUF_INIT;
    kn_stanza_serialize(out, &s, NULL);
    ck_assert_msg(strstr(s.data, "default='roster'") != NULL, "%s", s.data);
    ck_assert_msg(strstr(s.data, "<always><jid>romeo@montague.lit</jid>") !=
                      NULL,
                  "%s", s.data);
    kn_buf_free(&s);
    kn_stanza_unref(&out);
    kn_stanza_builder_free(&b);
    mam_prefs_free(&p);
    kn_stanza_unref(&st);
    const char *bad[] = {
        "<iq><prefs xmlns='urn:xmpp:mam:2'/></iq>",
        "<iq><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>",
        "<iq><prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>"
        "a@b@c</jid></always></prefs></iq>",
    };
    for (size_t i = 0; i < 3; i++) {
        st = parse(bad[i]);
        ck_assert_int_eq(
            mam_prefs_parse(st, kn_stanza_first_child(st, 0), &p, &err), -1);
        ck_assert_int_eq(err, KN_STE_BAD_REQUEST);
        kn_stanza_unref(&st);
    }
}
END_TEST

START_TEST(pg_arrays)
{
    kn_buf_t b = KN_BUF_INIT;
    char *v[] = {"a", "with \"quote\"", "back\\slash", "{,}"};
    mam_pg_array(&b, v, 4);
    ck_assert_str_eq(b.data, "{\"a\",\"with \\\"quote\\\"\",\"back\\\\slash\","
                             "\"{,}\"}");
    mam_pg_array(&b, NULL, 0);
    ck_assert_str_eq(b.data, "{}");
    kn_buf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("presenced_mam");
    TCase *tc = tcase_create("mam");
    tcase_add_test(tc, dates);
    tcase_add_test(tc, ids);
    tcase_add_test(tc, query_defaults);
    tcase_add_test(tc, query_form_bounds);
    tcase_add_test(tc, query_rsm);
    tcase_add_test(tc, query_bad);
    tcase_add_test(tc, prefs);
    tcase_add_test(tc, pg_arrays);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
