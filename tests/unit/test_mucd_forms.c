/*
 * test_mucd_forms.c - the XEP-0045 request forms (muc_form.c) and the
 * rules around them (muc_aff.c, muc_room.c): muc#request (voice requests
 * and answers, 7.13/8.6), muc#register (registration and its approval,
 * 7.10/9.9), who may ask for voice, when a registration waits for
 * approval, who may register, which nicks are taken.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_xml.h"
#include "kn_xmpp_err.h"
#include "muc_aff.h"
#include "muc_form.h"
#include "muc_room.h"

static kn_stanza_t *parse(const char *xml)
{
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    return st;
}

#define REQ  "http://jabber.org/protocol/muc#request"
#define REG  "http://jabber.org/protocol/muc#register"
#define FT   "<field var='FORM_TYPE'><value>%s</value></field>"
#define FLD  "<field var='%s'><value>%s</value></field>"
#define MSG1 "<message xmlns='jabber:client'>"

/* A message holding one form of type `type` and FORM_TYPE ft, with the
 * fields (already serialised) `fields`. */
static kn_stanza_t *msg_form(const char *type, const char *ft,
                             const char *fields)
{
    char xml[2048];
    snprintf(xml, sizeof(xml),
             MSG1 "<x xmlns='jabber:x:data' type='%s'>" FT "%s</x></message>",
             type, ft, fields);
    return parse(xml);
}

START_TEST(find_form_by_type)
{
    kn_stanza_t *st =
        parse(MSG1 "<x xmlns='jabber:x:data' type='submit'>"
                   "<field var='FORM_TYPE'><value>urn:other</value></field>"
                   "</x><x xmlns='urn:not-a-form'/>"
                   "<x xmlns='jabber:x:data' type='submit'>"
                   "<field var='FORM_TYPE'><value>" REQ "</value></field>"
                   "<field var='muc#role'><value>participant</value></field>"
                   "<field var='empty'/></x></message>");
    int x = muc_form_find(st, 0, REQ);
    ck_assert_int_eq(x, 5); /* the second data form */
    ck_assert_int_eq(muc_form_find(st, 0, REG), -KN_ENOENT);
    ck_assert_str_eq(muc_form_type(st, x), "submit");
    kn_buf_t v = KN_BUF_INIT;
    ck_assert_int_eq(muc_form_value(st, x, "muc#role", &v), 0);
    ck_assert_str_eq(v.data, "participant");
    ck_assert_int_eq(muc_form_value(st, x, "empty", &v), 0);
    ck_assert_str_eq(v.data, "");
    ck_assert_int_eq(muc_form_value(st, x, "missing", &v), -KN_ENOENT);
    kn_buf_free(&v);
    kn_stanza_unref(&st);
    bool b;
    ck_assert(muc_form_bool("1", &b) == 0 && b);
    ck_assert(muc_form_bool("true", &b) == 0 && b);
    ck_assert(muc_form_bool("0", &b) == 0 && !b);
    ck_assert(muc_form_bool("false", &b) == 0 && !b);
    ck_assert_int_eq(muc_form_bool("yes", &b), -KN_EINVAL);
    ck_assert_int_eq(muc_form_bool("", &b), -KN_EINVAL);
}
END_TEST

START_TEST(voice_form_XEP_0045)
{
    muc_voice_form_t f;
    /* A visitor's request (7.13). */
    kn_stanza_t *st = msg_form("submit", REQ,
                               "<field var='muc#role' type='text-single'>"
                               "<value>participant</value></field>");
    ck_assert_int_eq(muc_voice_form_parse(st, 1, &f), 0);
    ck_assert(f.has_role && !f.has_allow);
    ck_assert_ptr_null(f.jid);
    muc_voice_form_free(&f);
    kn_stanza_unref(&st);
    /* A moderator's answer (8.6). */
    st = msg_form("submit", REQ,
                  "<field var='muc#role'><value>participant</value></field>"
                  "<field var='muc#jid'><value>v@x/pc</value></field>"
                  "<field var='muc#roomnick'><value>vis</value></field>"
                  "<field var='muc#request_allow'><value>true</value>"
                  "</field>");
    ck_assert_int_eq(muc_voice_form_parse(st, 1, &f), 0);
    ck_assert(f.has_allow && f.allow);
    ck_assert_str_eq(f.jid, "v@x/pc");
    ck_assert_str_eq(f.nick, "vis");
    muc_voice_form_free(&f);
    ck_assert_ptr_null(f.jid);
    kn_stanza_unref(&st);
    /* A denial. */
    st = msg_form("submit", REQ,
                  "<field var='muc#roomnick'><value>vis</value></field>"
                  "<field var='muc#request_allow'><value>0</value></field>");
    ck_assert_int_eq(muc_voice_form_parse(st, 1, &f), 0);
    ck_assert(f.has_allow && !f.allow);
    muc_voice_form_free(&f);
    kn_stanza_unref(&st);
    /* Bad: another role, a non-boolean answer, nothing asked, not
     * submitted. */
    const char *bad[][2] = {
        {"submit", "<field var='muc#role'><value>moderator</value></field>"},
        {"submit", "<field var='muc#request_allow'><value>yes</value>"
                   "</field>"},
        {"submit", "<field var='muc#roomnick'><value>v</value></field>"},
        {"form", "<field var='muc#role'><value>participant</value></field>"},
        {"cancel", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st = msg_form(bad[i][0], REQ, bad[i][1]);
        ck_assert_int_eq(muc_voice_form_parse(st, 1, &f), -KN_EINVAL);
        ck_assert_ptr_null(f.jid);
        ck_assert_ptr_null(f.nick);
        kn_stanza_unref(&st);
    }
}
END_TEST

START_TEST(register_form_XEP_0045)
{
    muc_reg_form_t f;
    kn_stanza_t *st =
        msg_form("submit", REG,
                 "<field var='muc#register_roomnick'><value>Third Witch"
                 "</value></field>"
                 "<field var='muc#register_first'><value>Brunhilde</value>"
                 "</field>"
                 "<field var='muc#register_email'><value>h@w</value>"
                 "</field>");
    ck_assert_int_eq(muc_reg_form_parse(st, 1, &f), 0);
    ck_assert_str_eq(f.nick, "Third Witch");
    ck_assert_str_eq(f.first, "Brunhilde");
    ck_assert_str_eq(f.email, "h@w");
    ck_assert_ptr_null(f.last);
    ck_assert(!f.has_allow);
    muc_reg_form_free(&f);
    kn_stanza_unref(&st);
    /* The nick is prepared like a resource (resourceprep keeps case). */
    st = msg_form("submit", REG,
                  "<field var='muc#register_roomnick'><value>\xef\xbc\xa1"
                  "</value></field>");
    ck_assert_int_eq(muc_reg_form_parse(st, 1, &f), 0);
    ck_assert_str_eq(f.nick, "A"); /* fullwidth A folds to A (NFKC) */
    muc_reg_form_free(&f);
    kn_stanza_unref(&st);
    /* An approval: requester, nick, allow. */
    st = msg_form("submit", REG,
                  "<field var='muc#jid'><value>r@x</value></field>"
                  "<field var='muc#register_roomnick'><value>rita</value>"
                  "</field><field var='muc#register_allow'><value>1"
                  "</value></field>");
    ck_assert_int_eq(muc_reg_form_parse(st, 1, &f), 0);
    ck_assert(f.has_allow && f.allow);
    ck_assert_str_eq(f.jid, "r@x");
    muc_reg_form_free(&f);
    kn_stanza_unref(&st);
    /* No nick at all parses (the caller refuses a request without one). */
    st = msg_form("submit", REG, "");
    ck_assert_int_eq(muc_reg_form_parse(st, 1, &f), 0);
    ck_assert_ptr_null(f.nick);
    muc_reg_form_free(&f);
    kn_stanza_unref(&st);
    /* Bad: empty nick, a nick no resource can be, a non-boolean allow,
     * not submitted. */
    const char *bad[][2] = {
        {"submit", "<field var='muc#register_roomnick'><value/></field>"},
        {"submit", "<field var='muc#register_roomnick'><value>\xee\x80\x80"
                   "</value></field>"}, /* U+E000, private use */
        {"submit", "<field var='muc#register_allow'><value>perhaps</value>"
                   "</field>"},
        {"form", "<field var='muc#register_roomnick'><value>x</value>"
                 "</field>"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st = msg_form(bad[i][0], REG, bad[i][1]);
        ck_assert_int_eq(muc_reg_form_parse(st, 1, &f), -KN_EINVAL);
        ck_assert_ptr_null(f.nick);
        kn_stanza_unref(&st);
    }
}
END_TEST

/* Build an element with b's form builder and serialise it. */
static char *built(void (*fill)(kn_stanza_builder_t *))
{
    kn_stanza_builder_t *b = kn_stanza_builder_new();
    kn_stanza_builder_start(b, "message", "jabber:client");
    fill(b);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    kn_buf_t out = KN_BUF_INIT;
    kn_stanza_serialize(st, &out, NULL);
    kn_stanza_unref(&st);
    kn_stanza_builder_free(&b);
    return kn_buf_release(&out, NULL);
}

static void fill_voice(kn_stanza_builder_t *b)
{
    muc_voice_form_approval(b, "v@x/pc", "vis");
}

static void fill_approval(kn_stanza_builder_t *b)
{
    muc_reg_form_t f = {0};
    f.nick = "rita";
    f.first = "Rita";
    muc_reg_form_approval(b, "room@svc", "r@x", &f);
}

static void fill_request(kn_stanza_builder_t *b)
{
    muc_reg_form_request(b, "Room", "rita");
}

START_TEST(built_forms_round_trip)
{
    /* What the room sends parses back as what it expects in return. */
    char *xml = built(fill_voice);
    kn_stanza_t *st = parse(xml);
    int x = muc_form_find(st, 0, REQ);
    ck_assert_int_ge(x, 0);
    ck_assert_str_eq(muc_form_type(st, x), "form");
    kn_buf_t v = KN_BUF_INIT;
    ck_assert_int_eq(muc_form_value(st, x, "muc#jid", &v), 0);
    ck_assert_str_eq(v.data, "v@x/pc");
    ck_assert_int_eq(muc_form_value(st, x, "muc#request_allow", &v), 0);
    ck_assert_str_eq(v.data, "false");
    kn_stanza_unref(&st);
    free(xml);
    xml = built(fill_approval);
    st = parse(xml);
    x = muc_form_find(st, 0, REG);
    ck_assert_int_ge(x, 0);
    ck_assert_int_eq(muc_form_value(st, x, "muc#jid", &v), 0);
    ck_assert_str_eq(v.data, "r@x");
    ck_assert_int_eq(muc_form_value(st, x, "muc#register_first", &v), 0);
    ck_assert_str_eq(v.data, "Rita");
    ck_assert_int_eq(muc_form_value(st, x, "muc#register_last", &v),
                     -KN_ENOENT);
    ck_assert_int_eq(muc_form_value(st, x, "muc#register_allow", &v), 0);
    ck_assert_str_eq(v.data, "0");
    kn_stanza_unref(&st);
    free(xml);
    xml = built(fill_request);
    ck_assert_ptr_nonnull(strstr(xml, "<required/>"));
    st = parse(xml);
    x = muc_form_find(st, 0, REG);
    ck_assert_int_eq(muc_form_value(st, x, "muc#register_roomnick", &v), 0);
    ck_assert_str_eq(v.data, "rita");
    kn_stanza_unref(&st);
    free(xml);
    kn_buf_free(&v);
}
END_TEST

START_TEST(voice_and_register_rules)
{
    ck_assert(muc_voice_may_request(MUC_ROLE_VISITOR));
    ck_assert(!muc_voice_may_request(MUC_ROLE_PARTICIPANT));
    ck_assert(!muc_voice_may_request(MUC_ROLE_MODERATOR));
    ck_assert(!muc_voice_may_request(MUC_ROLE_NONE));
    muc_config_t c;
    muc_config_defaults(&c);
    ck_assert(!muc_register_needs_approval(&c));
    c.moderated = true;
    ck_assert(muc_register_needs_approval(&c));
    c.moderated = false;
    muc_config_group(&c); /* members-only */
    ck_assert(muc_register_needs_approval(&c));
    ck_assert_int_eq(muc_register_refusal(MUC_AFF_NONE), -1);
    ck_assert_int_eq(muc_register_refusal(MUC_AFF_OUTCAST), KN_STE_NOT_ALLOWED);
    ck_assert_int_eq(muc_register_refusal(MUC_AFF_MEMBER), KN_STE_CONFLICT);
    ck_assert_int_eq(muc_register_refusal(MUC_AFF_ADMIN), KN_STE_CONFLICT);
    ck_assert_int_eq(muc_register_refusal(MUC_AFF_OWNER), KN_STE_CONFLICT);
    muc_config_free(&c);
}
END_TEST

static void no_send(void *ud, const kn_env_t *env, const char *payload,
                    size_t len)
{
    (void)ud;
    (void)env;
    (void)payload;
    (void)len;
}

START_TEST(nicks_taken_and_pending_requests_R_GRP_7)
{
    muc_t m;
    muc_sink_t sink = {no_send, NULL};
    muc_init(&m, "x", "conference.x", &sink);
    muc_room_t *r = muc_room_new(&m, "room@conference.x");
    muc_room_set_aff(r, "mem@x", MUC_AFF_MEMBER, "mem");
    muc_occ_new(r, "guest", "guest@x", MUC_ROLE_PARTICIPANT);
    muc_regreq_add(r, "req@x", "rita", 1);
    ck_assert_uint_eq(r->nregs, 1);
    /* reserved, asked for, in use: by someone else only */
    ck_assert(muc_room_nick_taken(r, "mem", "req@x"));
    ck_assert(!muc_room_nick_taken(r, "mem", "mem@x"));
    ck_assert(muc_room_nick_taken(r, "rita", "other@x"));
    ck_assert(!muc_room_nick_taken(r, "rita", "req@x"));
    ck_assert(muc_room_nick_taken(r, "guest", "req@x"));
    ck_assert(!muc_room_nick_taken(r, "free", "req@x"));
    ck_assert(muc_room_nick_reserved(r, "mem", "req@x"));
    ck_assert(!muc_room_nick_reserved(r, "rita", "other@x"));
    /* asking again replaces the nick */
    muc_regreq_add(r, "req@x", "rita2", 2);
    ck_assert_uint_eq(r->nregs, 1);
    ck_assert_str_eq(muc_regreq_find(r, "req@x")->nick, "rita2");
    /* a decision (member, or a ban) ends the request; none does not */
    muc_regreq_add(r, "ban@x", "b", 3);
    muc_room_set_aff(r, "req@x", MUC_AFF_NONE, NULL);
    ck_assert_ptr_nonnull(muc_regreq_find(r, "req@x"));
    muc_room_set_aff(r, "req@x", MUC_AFF_MEMBER, "rita2");
    ck_assert_ptr_null(muc_regreq_find(r, "req@x"));
    muc_room_set_aff(r, "ban@x", MUC_AFF_OUTCAST, NULL);
    ck_assert_ptr_null(muc_regreq_find(r, "ban@x"));
    ck_assert_uint_eq(r->nregs, 0);
    /* the room frees the requests still waiting */
    muc_regreq_add(r, "late@x", "l", 4);
    muc_fini(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mucd_forms");
    TCase *tc = tcase_create("forms");
    tcase_add_test(tc, find_form_by_type);
    tcase_add_test(tc, voice_form_XEP_0045);
    tcase_add_test(tc, register_form_XEP_0045);
    tcase_add_test(tc, built_forms_round_trip);
    tcase_add_test(tc, voice_and_register_rules);
    tcase_add_test(tc, nicks_taken_and_pending_requests_R_GRP_7);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
