/*
 * test_c2s_http.c - HTTP requests in, responses out (c2s_http_proto.c):
 * canned requests, whole, byte by byte and pipelined; every error status
 * (400, 404, 405, 413, 426, 431) and whether the connection stays open;
 * the WebSocket upgrade (RFC 6455's sample key, the bytes after the
 * request left for the WebSocket); Origin rules (R-WEB-4); the /chat/
 * path rules (no traversal) and content types.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_http.h"
#include "kn_err.h"

static const c2s_http_conf_t conf = {"", "", "", "", 2048, 1000};

typedef struct feed_result {
    c2s_http_act_t act;
    size_t used;
    char *out;
} feed_result_t;

/* Feed req to a fresh parser in pieces of step bytes (0: all at once). */
static feed_result_t feed(const c2s_http_conf_t *cf, const char *req,
                          size_t step)
{
    c2s_http_proto_t h;
    c2s_http_proto_init(&h, cf, false);
    size_t len = strlen(req), off = 0;
    feed_result_t r = {C2S_HTTP_MORE, 0, NULL};
    while (off < len && r.act == C2S_HTTP_MORE) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        size_t used = 0;
        r.act = c2s_http_proto_feed(&h, req + off, n, &used);
        off += used;
        if (used < n)
            break;
    }
    r.used = off;
    r.out = strndup(h.out.data ? h.out.data : "", h.out.len);
    c2s_http_proto_free(&h);
    return r;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(host_meta_whole_and_byte_by_byte)
{
    const char *req = "GET /.well-known/host-meta HTTP/1.1\r\n"
                      "Host: chat.example:5280\r\n\r\n";
    for (size_t step = 0; step <= 1; step++) {
        feed_result_t r = feed(&conf, req, step);
        ck_assert_int_eq(r.act, C2S_HTTP_MORE);
        ck_assert_uint_eq(r.used, strlen(req));
        ck_assert_ptr_nonnull(strstr(r.out, "HTTP/1.1 200 OK\r\n"));
        ck_assert_ptr_nonnull(
            strstr(r.out, "href='ws://chat.example:5280/xmpp-websocket'"));
        ck_assert_ptr_nonnull(
            strstr(r.out, "Access-Control-Allow-Origin: *\r\n"));
        ck_assert_ptr_null(strstr(r.out, "Connection: close"));
        free(r.out);
    }
}
END_TEST

START_TEST(host_meta_json_and_configured_urls)
{
    c2s_http_conf_t cf = conf;
    cf.ws_url = "wss://xmpp.example/ws";
    cf.bosh_url = "https://xmpp.example/http-bind";
    feed_result_t r = feed(&cf,
                           "GET /.well-known/host-meta.json HTTP/1.1\r\n"
                           "Host: internal:5280\r\n\r\n",
                           0);
    ck_assert_ptr_nonnull(strstr(r.out, "Content-Type: application/json"));
    ck_assert_ptr_nonnull(strstr(
        r.out, "{\"rel\":\"urn:xmpp:alt-connections:websocket\",\"href\":"
               "\"wss://xmpp.example/ws\"}"));
    ck_assert_ptr_nonnull(strstr(r.out, "\"https://xmpp.example/http-bind\""));
    ck_assert_ptr_null(strstr(r.out, "internal"));
    free(r.out);
}
END_TEST

START_TEST(pipelined_requests_answered_in_order)
{
    feed_result_t r = feed(&conf,
                           "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
                           "HEAD /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n"
                           "\r\n"
                           "GET /nope2 HTTP/1.1\r\nHost: a\r\n"
                           "Connection: close\r\n\r\n"
                           "GET /never HTTP/1.1\r\nHost: a\r\n\r\n",
                           0);
    ck_assert_int_eq(r.act, C2S_HTTP_CLOSE);
    char *a = strstr(r.out, "404");
    char *b = strstr(r.out, "200 OK");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(a < b);
    ck_assert_int_eq(count(r.out, "HTTP/1.1 "), 3); /* not the 4th */
    ck_assert_int_eq(count(r.out, "<XRD"), 0);      /* HEAD: no body */
    ck_assert_int_eq(count(r.out, "Connection: close"), 1);
    free(r.out);
    /* Expect: 100-continue gets its interim answer before the final one */
    r = feed(&conf,
             "POST /nope HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
             "Content-Length: 2\r\n\r\nab",
             0);
    ck_assert_ptr_eq(strstr(r.out, "HTTP/1.1 100 Continue\r\n\r\n"), r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "404"));
    free(r.out);
}
END_TEST

START_TEST(error_statuses)
{
    static const struct {
        const char *req;
        const char *status;
        c2s_http_act_t act;
    } cases[] = {
        {"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "404 Not Found", C2S_HTTP_MORE},
        {"PUT /.well-known/host-meta HTTP/1.1\r\nHost: a\r\n"
         "Content-Length: 0\r\n\r\n",
         "405 Method Not Allowed", C2S_HTTP_MORE},
        {"GET /ws HTTP/1.1\r\nHost: a\r\n\r\n", "426 Upgrade Required",
         C2S_HTTP_MORE},
        {"GET / HTTP/1.1\r\n\r\n", "400 Bad Request", C2S_HTTP_MORE},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request",
         C2S_HTTP_MORE},
        {"\x16\x03\x01 not http\r\n\r\n", "400 Bad Request", C2S_HTTP_CLOSE},
        {"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", "400 Bad Request",
         C2S_HTTP_CLOSE},
        {"POST /chat/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n",
         "413 Payload Too Large", C2S_HTTP_CLOSE},
        {"POST /chat/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "\r\n3e9\r\n",
         NULL, C2S_HTTP_MORE}, /* filled below: 1001 body bytes */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].status == NULL)
            continue;
        feed_result_t r = feed(&conf, cases[i].req, 0);
        ck_assert_msg(strstr(r.out, cases[i].status) != NULL, "%zu: %s", i,
                      r.out);
        ck_assert_msg(r.act == cases[i].act, "%zu: act %d", i, r.act);
        if (r.act == C2S_HTTP_CLOSE)
            ck_assert_ptr_nonnull(strstr(r.out, "Connection: close"));
        free(r.out);
    }
    /* A chunked body over the limit: 413 while it arrives. */
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "POST /chat/ HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n3e9\r\n");
    memset(req + n, 'x', 1001);
    req[n + 1001] = '\0';
    feed_result_t r = feed(&conf, req, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "413 Payload Too Large"));
    ck_assert_int_eq(r.act, C2S_HTTP_CLOSE);
    free(r.out);
    /* A head over max_header (2048): 431, byte by byte too. */
    char big[4096];
    n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(big + n, 'y', 3000);
    strcpy(big + n + 3000, "\r\n\r\n");
    for (size_t step = 0; step <= 7; step += 7) {
        r = feed(&conf, big, step);
        ck_assert_ptr_nonnull(strstr(r.out, "431 Request Header Fields"));
        ck_assert_int_eq(r.act, C2S_HTTP_CLOSE);
        free(r.out);
    }
}
END_TEST

static const char ws_req[] = "GET /xmpp-websocket HTTP/1.1\r\n"
                             "Host: localhost:5280\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: keep-alive, Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Protocol: chat\r\n"
                             "Sec-WebSocket-Protocol: xmpp\r\n";

START_TEST(websocket_upgrade)
{
    char req[1024];
    snprintf(req, sizeof(req), "%s\r\n\x81\x85", ws_req);
    feed_result_t r = feed(&conf, req, 0);
    ck_assert_int_eq(r.act, C2S_HTTP_UPGRADE);
    ck_assert_uint_eq(r.used, strlen(ws_req) + 2); /* frame bytes left */
    ck_assert_ptr_nonnull(strstr(r.out, "HTTP/1.1 101 Switching Protocols"));
    /* RFC 6455 1.3's example */
    ck_assert_ptr_nonnull(
        strstr(r.out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    ck_assert_ptr_nonnull(strstr(r.out, "Sec-WebSocket-Protocol: xmpp\r\n"));
    ck_assert_ptr_null(strstr(r.out, "Content-Length"));
    free(r.out);
    /* the same byte by byte */
    r = feed(&conf, req, 1);
    ck_assert_int_eq(r.act, C2S_HTTP_UPGRADE);
    ck_assert_uint_eq(r.used, strlen(ws_req) + 2);
    free(r.out);
}
END_TEST

START_TEST(websocket_refusals_R_WEB_4)
{
    static const struct {
        const char *extra, *status;
    } cases[] = {
        {"Origin: http://evil.example\r\n", "403 Forbidden"},
        {"Origin: http://localhost:5280\r\n", "101 Switching"},
        {"Origin: https://localhost:5280/\r\n", "101 Switching"},
        {"Origin: http://localhost:52800\r\n", "403 Forbidden"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char req[1024];
        snprintf(req, sizeof(req), "%s%s\r\n", ws_req, cases[i].extra);
        feed_result_t r = feed(&conf, req, 0);
        ck_assert_msg(strstr(r.out, cases[i].status) != NULL, "%zu: %s", i,
                      r.out);
        free(r.out);
    }
    /* no xmpp subprotocol, wrong version */
    feed_result_t r = feed(&conf,
                           "GET /ws HTTP/1.1\r\nHost: a\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n",
                           0);
    ck_assert_ptr_nonnull(strstr(r.out, "400 Bad Request"));
    ck_assert_int_eq(r.act, C2S_HTTP_CLOSE);
    free(r.out);
    r = feed(&conf,
             "GET /ws HTTP/1.1\r\nHost: a\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Protocol: xmpp\r\n"
             "Sec-WebSocket-Version: 8\r\n\r\n",
             0);
    ck_assert_ptr_nonnull(strstr(r.out, "426 Upgrade Required"));
    ck_assert_ptr_nonnull(strstr(r.out, "Sec-WebSocket-Version: 13"));
    free(r.out);
}
END_TEST

START_TEST(origin_rules_R_WEB_4)
{
    ck_assert(c2s_http_origin_ok("", NULL, "h"));
    ck_assert(c2s_http_origin_ok("", "http://h:1", "h:1"));
    ck_assert(c2s_http_origin_ok("", "HTTPS://H:1", "h:1"));
    ck_assert(!c2s_http_origin_ok("", "http://h:1", "h:2"));
    ck_assert(!c2s_http_origin_ok("", "null", "h"));
    ck_assert(!c2s_http_origin_ok("", "ftp://h", "h"));
    ck_assert(!c2s_http_origin_ok("", "http://h", NULL));
    ck_assert(c2s_http_origin_ok("*", "http://any", "h"));
    const char *list = "https://a.example, http://b.example:8080/";
    ck_assert(c2s_http_origin_ok(list, "https://a.example", "x"));
    ck_assert(c2s_http_origin_ok(list, "http://b.example:8080", "x"));
    ck_assert(!c2s_http_origin_ok(list, "http://a.example", "x"));
    ck_assert(!c2s_http_origin_ok(list, "https://a.example.evil", "x"));
    ck_assert(!c2s_http_origin_ok(list, "http://x", "x")); /* list only */
}
END_TEST

START_TEST(static_paths_refuse_traversal)
{
    kn_buf_t b = KN_BUF_INIT;
    ck_assert_int_eq(c2s_http_static_path("/srv/web/", "", 0, &b), 0);
    ck_assert_str_eq(b.data, "/srv/web/index.html");
    ck_assert_int_eq(c2s_http_static_path("/srv/web", "js/a%20b.js", 11, &b),
                     0);
    ck_assert_str_eq(b.data, "/srv/web/js/a b.js");
    ck_assert_int_eq(c2s_http_static_path("/srv/web", "dir/", 4, &b), 0);
    ck_assert_str_eq(b.data, "/srv/web/dir/index.html");
    static const char *const bad[] = {
        "..",    "../x",    "a/../../x", "%2e%2e/x", "%2E%2e%2fetc",
        ".env",  "a/.git/", "a//b",      "/etc",     "a%00b",
        "a%5cb", "a\\b",    "%",         "%2",       "%zz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(c2s_http_static_path("/srv/web", bad[i], strlen(bad[i]),
                                           &b) == -KN_EINVAL,
                      "%s accepted", bad[i]);
    kn_buf_free(&b);
    ck_assert_str_eq(c2s_http_mime("/a/b.JS"),
                     "text/javascript; charset=utf-8");
    ck_assert_str_eq(c2s_http_mime("x.woff2"), "font/woff2");
    ck_assert_str_eq(c2s_http_mime("x.d/README"), "application/octet-stream");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("c2s_http");
    TCase *t = tcase_create("core");
    tcase_add_test(t, host_meta_whole_and_byte_by_byte);
    tcase_add_test(t, host_meta_json_and_configured_urls);
    tcase_add_test(t, pipelined_requests_answered_in_order);
    tcase_add_test(t, error_statuses);
    tcase_add_test(t, websocket_upgrade);
    tcase_add_test(t, websocket_refusals_R_WEB_4);
    tcase_add_test(t, origin_rules_R_WEB_4);
    tcase_add_test(t, static_paths_refuse_traversal);
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
