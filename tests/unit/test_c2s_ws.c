/*
 * test_c2s_ws.c - the RFC 7395 translation (c2s_ws.c) and the framed
 * stream (c2s_stream.c with C2S_STREAM_F_FRAMED): <open/> and <close/>
 * in, the stream's <open/> and <close/> out, output split into one
 * complete element per message with the namespace declarations added
 * that each standalone message needs.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_stream.h"
#include "c2s_ws.h"
#include "kn_err.h"

static kn_buf_t in_text(const char *msg, int *rc, kn_stream_err_t *err)
{
    kn_buf_t b = KN_BUF_INIT;
    *err = KN_SE_NONE;
    *rc = c2s_ws_frame_in(msg, strlen(msg), &b, err);
    kn_buf_append(&b, "", 0);
    return b;
}

START_TEST(open_and_close_become_stream_tags)
{
    int rc;
    kn_stream_err_t err;
    kn_buf_t b = in_text("  <open xmlns='" C2S_NS_FRAMING "' to='localhost' "
                         "version='1.0' xml:lang='de'/>",
                         &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(b.data, "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' "
                             "to='localhost' version='1.0' xml:lang='de'>");
    kn_buf_free(&b);
    b = in_text("<close xmlns=\"" C2S_NS_FRAMING "\"/>", &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(b.data, "</stream:stream>");
    kn_buf_free(&b);
    /* anything else passes as it is */
    b = in_text("<message xmlns='jabber:client'><body>&lt;open/&gt;</body>"
                "</message>",
                &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(b.data, "<message xmlns='jabber:client'><body>&lt;open/"
                             "&gt;</body></message>");
    kn_buf_free(&b);
    b = in_text("<opener/>", &rc, &err);
    ck_assert_str_eq(b.data, "<opener/>");
    kn_buf_free(&b);
    /* attribute values are escaped again */
    b = in_text("<open xmlns='" C2S_NS_FRAMING "' to='a&amp;b&apos;'/>", &rc,
                &err);
    ck_assert_ptr_nonnull(strstr(b.data, "to='a&amp;b&apos;'"));
    kn_buf_free(&b);
}
END_TEST

START_TEST(bad_framing_elements)
{
    int rc;
    kn_stream_err_t err;
    kn_buf_t b = in_text("<open xmlns='urn:other' to='x'/>", &rc, &err);
    ck_assert_int_eq(rc, -KN_EPROTO);
    ck_assert_int_eq(err, KN_SE_INVALID_NAMESPACE);
    kn_buf_free(&b);
    b = in_text("<open xmlns='" C2S_NS_FRAMING "' to='x'>", &rc, &err);
    ck_assert_int_eq(rc, -KN_EPROTO);
    ck_assert_int_eq(err, KN_SE_NOT_WELL_FORMED);
    kn_buf_free(&b);
    b = in_text("<open xmlns='" C2S_NS_FRAMING "'><x/></open>", &rc, &err);
    ck_assert_int_eq(rc, -KN_EPROTO);
    kn_buf_free(&b);
}
END_TEST

typedef struct msgs {
    char *m[16];
    size_t n;
} msgs_t;

static void collect(void *ud, const char *data, size_t len)
{
    msgs_t *ms = ud;
    ck_assert_uint_lt(ms->n, 16);
    ms->m[ms->n++] = strndup(data, len);
}

static void msgs_free(msgs_t *ms)
{
    for (size_t i = 0; i < ms->n; i++)
        free(ms->m[i]);
    ms->n = 0;
}

START_TEST(output_split_one_element_per_message)
{
    const char *out =
        "<open xmlns='" C2S_NS_FRAMING "' id='1' from='d' version='1.0'/>"
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
        "</stream:features>"
        "<message to='a@d' id='x'><body>1 &lt; 2 &gt; 0</body></message>"
        "<presence xmlns='jabber:client'/>"
        "<iq type='result' id='y'/>"
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:"
        "xmpp-streams'/></stream:error>"
        "<close xmlns='" C2S_NS_FRAMING "'/>";
    msgs_t ms = {0};
    ssize_t n = c2s_ws_split_out(out, strlen(out), 1 << 20, collect, &ms);
    ck_assert_int_eq(n, (ssize_t)strlen(out));
    ck_assert_uint_eq(ms.n, 7);
    ck_assert_str_eq(ms.m[0], "<open xmlns='" C2S_NS_FRAMING
                              "' id='1' from='d' version='1.0'/>");
    ck_assert_str_eq(ms.m[1],
                     "<stream:features xmlns:stream='http://etherx.jabber.org/"
                     "streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'"
                     "/></stream:features>");
    ck_assert_str_eq(ms.m[2], "<message xmlns='jabber:client' to='a@d' "
                              "id='x'><body>1 &lt; 2 &gt; 0</body></message>");
    ck_assert_str_eq(ms.m[3], "<presence xmlns='jabber:client'/>");
    ck_assert_str_eq(ms.m[4], "<iq xmlns='jabber:client' type='result' "
                              "id='y'/>");
    ck_assert_ptr_nonnull(strstr(ms.m[5], "<stream:error xmlns:stream="));
    ck_assert_str_eq(ms.m[6], "<close xmlns='" C2S_NS_FRAMING "'/>");
    msgs_free(&ms);
}
END_TEST

START_TEST(output_split_partial_and_batches)
{
    const char *out = "<message id='1'/><message id='2'><body>ab";
    msgs_t ms = {0};
    ssize_t n = c2s_ws_split_out(out, strlen(out), 1 << 20, collect, &ms);
    ck_assert_int_eq(n, (ssize_t)strlen("<message id='1'/>"));
    ck_assert_uint_eq(ms.n, 1);
    msgs_free(&ms);
    /* max: stop after the element that reaches it */
    const char *three = "<a/><b/><c/>";
    n = c2s_ws_split_out(three, strlen(three), 5, collect, &ms);
    ck_assert_int_eq(n, 8);
    ck_assert_uint_eq(ms.n, 2);
    msgs_free(&ms);
    n = c2s_ws_split_out("<a></b>", 7, 100, collect, &ms);
    ck_assert_int_eq(n, -1);
    msgs_free(&ms);
}
END_TEST

/* ---- the framed stream ---------------------------------------------------
 */

static int op_route(void *ud, const kn_env_t *env, const void *p, size_t len)
{
    (void)ud;
    (void)env;
    (void)p;
    (void)len;
    return 0;
}

static void op_creds(void *ud, const char *user)
{
    (void)ud;
    (void)user;
}

static uint64_t op_conn_id(void *ud)
{
    (void)ud;
    return 1;
}

static const c2s_stream_ops_t ops = {
    .route = op_route, .creds_lookup = op_creds, .conn_id = op_conn_id};

START_TEST(framed_stream_opens_and_closes_with_elements_R_WEB_1)
{
    c2s_stream_conf_t cf = {"localhost", KN_XML_LIMITS_DEFAULT, 0};
    kn_buf_t out = KN_BUF_INIT, in = KN_BUF_INIT;
    c2s_stream_t *s = c2s_stream_new(&cf, &ops, NULL, &out,
                                     C2S_STREAM_F_FRAMED | C2S_STREAM_F_TLS);
    kn_stream_err_t err;
    const char *open =
        "<open xmlns='" C2S_NS_FRAMING "' to='localhost' version='1.0'/>";
    ck_assert_int_eq(c2s_ws_frame_in(open, strlen(open), &in, &err), 0);
    ck_assert_int_eq(c2s_stream_input(s, in.data, in.len), C2S_ACT_MORE);
    kn_buf_append(&out, "", 0);
    ck_assert_ptr_nonnull(strstr(out.data, "<open xmlns='" C2S_NS_FRAMING));
    ck_assert_ptr_null(strstr(out.data, "<stream:stream"));
    ck_assert_ptr_null(strstr(out.data, "<?xml"));
    ck_assert_ptr_null(strstr(out.data, "starttls"));
    ck_assert_ptr_nonnull(strstr(out.data, "<mechanism>PLAIN</mechanism>"));
    /* every byte of the output is a whole element */
    msgs_t ms = {0};
    ck_assert_int_eq(c2s_ws_split_out(out.data, out.len, 1 << 20, collect, &ms),
                     (ssize_t)out.len);
    ck_assert_uint_eq(ms.n, 2);
    msgs_free(&ms);
    kn_buf_reset(&out);
    kn_buf_reset(&in);
    const char *close = "<close xmlns='" C2S_NS_FRAMING "'/>";
    ck_assert_int_eq(c2s_ws_frame_in(close, strlen(close), &in, &err), 0);
    ck_assert_int_eq(c2s_stream_input(s, in.data, in.len), C2S_ACT_CLOSE);
    kn_buf_append(&out, "", 0);
    ck_assert_str_eq(out.data, "<close xmlns='" C2S_NS_FRAMING "'/>");
    ck_assert_int_eq(s->reason, KN_ENV_REASON_CLEAN);
    c2s_stream_free(&s);
    /* a stream error before any <open/>: our <open/>, the error, <close/> */
    kn_buf_reset(&out);
    s = c2s_stream_new(&cf, &ops, NULL, &out, C2S_STREAM_F_FRAMED);
    c2s_stream_close(s, KN_SE_POLICY_VIOLATION, KN_ENV_REASON_DROPPED);
    ck_assert_int_eq(c2s_ws_split_out(out.data, out.len, 1 << 20, collect, &ms),
                     (ssize_t)out.len);
    ck_assert_uint_eq(ms.n, 3);
    ck_assert_ptr_nonnull(strstr(ms.m[0], "<open "));
    ck_assert_ptr_nonnull(strstr(ms.m[1], "<policy-violation"));
    ck_assert_ptr_nonnull(strstr(ms.m[2], "<close "));
    msgs_free(&ms);
    c2s_stream_free(&s);
    kn_buf_free(&out);
    kn_buf_free(&in);
}
END_TEST

START_TEST(accept_key_rfc6455_example)
{
    char out[29];
    c2s_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_ws");
    TCase *t = tcase_create("core");
    tcase_add_test(t, open_and_close_become_stream_tags);
    tcase_add_test(t, bad_framing_elements);
    tcase_add_test(t, output_split_one_element_per_message);
    tcase_add_test(t, output_split_partial_and_batches);
    tcase_add_test(t, framed_stream_opens_and_closes_with_elements_R_WEB_1);
    tcase_add_test(t, accept_key_rfc6455_example);
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
