/*
 * c2s_http_proto.c - HTTP requests in, responses out (see c2s_http.h).
 *
 * libhttp-parser does the parsing; its callbacks collect the request
 * line and the few header fields a route looks at, counting the bytes of
 * the head and body against the configured limits, and on_message_complete
 * answers the request at once, appending the response to h->out. So a
 * pipelined burst is answered in order. A response that must end the
 * connection (a parse error, Connection: close, HTTP/1.0 without
 * keep-alive, an upgrade) pauses the parser: what follows is not parsed.
 *
 * Errors never touch anything but this connection: a limit or a bad byte
 * gets its status (400, 405, 413, 426, 431) and Connection: close.
 */
#include "c2s_http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c2s_ws.h"
#include "kn_b64.h"
#include "kn_err.h"
#include "kn_mem.h"
#include "kn_metrics.h"

#define HTTP_FILE_MAX (64 * 1024 * 1024) /* largest file under /chat/ */

static const char *const http_hdr_names[C2S_HH_COUNT] = {
    "host",
    "origin",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "expect",
    "content-type",
    "range",
};

/* ---- pure helpers ---------------------------------------------------------
 */

static bool http_token_in(const char *list, const char *token)
{
    if (list == NULL)
        return false;
    size_t tl = strlen(token);
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *b = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *e = p;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - b) == tl && strncasecmp(b, token, tl) == 0)
            return true;
    }
    return false;
}

bool c2s_http_origin_ok(const char *list, const char *origin, const char *host)
{
    if (origin == NULL)
        return true; /* not a browser: Origin protects browsers' users */
    if (list != NULL && strcmp(list, "*") == 0)
        return true;
    if (list == NULL || *list == '\0') {
        const char *hp = strstr(origin, "://");
        if (host == NULL || hp == NULL)
            return false;
        size_t sl = (size_t)(hp - origin);
        if (!((sl == 4 && strncasecmp(origin, "http", 4) == 0) ||
              (sl == 5 && strncasecmp(origin, "https", 5) == 0)))
            return false;
        hp += 3;
        size_t hl = strlen(hp);
        if (hl > 0 && hp[hl - 1] == '/')
            hl--;
        return hl == strlen(host) && strncasecmp(hp, host, hl) == 0;
    }
    size_t ol = strlen(origin);
    if (ol > 0 && origin[ol - 1] == '/')
        ol--;
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *b = p;
        while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        size_t l = (size_t)(p - b);
        if (l > 0 && b[l - 1] == '/')
            l--;
        if (l > 0 && l == ol && strncasecmp(b, origin, l) == 0)
            return true;
    }
    return false;
}

static int http_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int c2s_http_static_path(const char *root, const char *rel, size_t len,
                         kn_buf_t *out)
{
    kn_buf_t dec = KN_BUF_INIT;
    for (size_t i = 0; i < len; i++) {
        char c = rel[i];
        if (c == '%') {
            int a = i + 2 < len ? http_hexval(rel[i + 1]) : -1;
            int b = a >= 0 ? http_hexval(rel[i + 2]) : -1;
            if (b < 0)
                goto err_free;
            c = (char)(a * 16 + b);
            i += 2;
        }
        if (c == '\0' || c == '\\')
            goto err_free;
        kn_buf_append_byte(&dec, (uint8_t)c);
    }
    /* Every segment a plain name: no "", ".", ".." or hidden file. */
    const char *p = dec.data ? dec.data : "";
    size_t n = dec.len;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        if (j == i || p[i] == '.')
            goto err_free;
        i = j + 1;
    }
    kn_buf_reset(out);
    kn_buf_append_str(out, root);
    while (out->len > 1 && out->data[out->len - 1] == '/')
        out->len--;
    kn_buf_append_byte(out, '/');
    kn_buf_append(out, p, n);
    if (n == 0 || p[n - 1] == '/')
        kn_buf_append_str(out, "index.html");
    kn_buf_free(&dec);
    return 0;
err_free:
    kn_buf_free(&dec);
    return -KN_EINVAL;
}

const char *c2s_http_mime(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"wasm", "application/wasm"},
        {"txt", "text/plain; charset=utf-8"},
        {"xml", "application/xml"},
        {"ogg", "audio/ogg"},
        {"mp3", "audio/mpeg"},
    };
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot != NULL)
        for (size_t i = 0; i < KN_ARRAY_LEN(types); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- responses ------------------------------------------------------------
 */

static bool http_closing(const c2s_http_proto_t *h)
{
    return h->act != C2S_HTTP_MORE || !http_should_keep_alive(&h->p);
}

/* Write one response. extra: more header lines ("Name: v\r\n"...), may
 * be NULL. HEAD requests get the head only. */
void c2s_http_proto_head(c2s_http_proto_t *h, int status, const char *ctype,
                         size_t blen, const char *extra)
{
    if (status >= 400 && h->p.upgrade)
        h->act = C2S_HTTP_CLOSE; /* the parser stopped at the head */
    if (h->act == C2S_HTTP_MORE && !http_should_keep_alive(&h->p))
        h->act = C2S_HTTP_CLOSE;
    kn_buf_printf(&h->out, "HTTP/1.1 %d %s\r\n", status,
                  http_status_str((enum http_status)status));
    if (status != 101) {
        kn_buf_printf(&h->out, "Content-Length: %zu\r\n", blen);
        if (ctype != NULL)
            kn_buf_printf(&h->out, "Content-Type: %s\r\n", ctype);
        kn_buf_append_str(&h->out, "X-Content-Type-Options: nosniff\r\n");
        if (http_closing(h))
            kn_buf_append_str(&h->out, "Connection: close\r\n");
        else if (h->p.http_major == 1 && h->p.http_minor == 0)
            kn_buf_append_str(&h->out, "Connection: keep-alive\r\n");
    }
    if (extra != NULL)
        kn_buf_append_str(&h->out, extra);
    kn_buf_append_str(&h->out, "\r\n");
    h->requests++;
}

static void http_respond(c2s_http_proto_t *h, int status, const char *ctype,
                         const void *body, size_t blen, const char *extra)
{
    c2s_http_proto_head(h, status, ctype, blen, extra);
    if (h->p.method != HTTP_HEAD && blen > 0)
        kn_buf_append(&h->out, body, blen);
}

void c2s_http_proto_respond(c2s_http_proto_t *h, int status, const char *ctype,
                            const void *body, size_t len, const char *extra)
{
    http_respond(h, status, ctype, body, len, extra);
}

static void http_error(c2s_http_proto_t *h, int status, const char *why,
                       const char *extra)
{
    kn_buf_t b = KN_BUF_INIT;
    kn_buf_printf(&b, "%d %s: %s\n", status,
                  http_status_str((enum http_status)status), why);
    http_respond(h, status, "text/plain; charset=utf-8", b.data, b.len, extra);
    kn_buf_free(&b);
}

void c2s_http_proto_error(c2s_http_proto_t *h, int status, const char *why,
                          const char *extra)
{
    http_error(h, status, why, extra);
}

/* CORS for a browser request from an allowed origin. */
static void http_cors(const c2s_http_proto_t *h, kn_buf_t *extra)
{
    const char *o = h->hdr[C2S_HH_ORIGIN];
    if (o == NULL ||
        !c2s_http_origin_ok(h->cf->origins, o, h->hdr[C2S_HH_HOST]))
        return;
    kn_buf_append_str(extra, "Access-Control-Allow-Origin: ");
    kn_buf_append_str(extra, o);
    kn_buf_append_str(extra, "\r\nVary: Origin\r\n");
}

/* CORS for the upload URLs: any origin. A slot's URL carries its own
 * HMAC signature and expiry, no cookie or other credential rides with the
 * request, so the origin adds nothing; and the page that uploads is
 * rarely on the upload URL's origin (node A's page PUTs to the upload
 * host, node B's page shows the image). Prosody's file share answers the
 * same way. */
void c2s_http_proto_cors(const c2s_http_proto_t *h, kn_buf_t *extra)
{
    (void)h;
    kn_buf_append_str(extra, "Access-Control-Allow-Origin: *\r\n");
}

/* A Host header we can put in a URL: host name, IPv4, [IPv6], port. */
static bool http_host_ok(const char *host)
{
    if (host == NULL || *host == '\0' || strlen(host) > 255)
        return false;
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr(".-:[]_", *p) == NULL)
            return false;
    return true;
}

/* ---- routes ---------------------------------------------------------------
 */

static void http_websocket(c2s_http_proto_t *h)
{
    const char *const *hd = (const char *const *)h->hdr;
    if (h->p.method != HTTP_GET) {
        http_error(h, 405, "WebSocket needs GET", "Allow: GET\r\n");
        return;
    }
    if (!http_token_in(hd[C2S_HH_UPGRADE], "websocket") ||
        !http_token_in(hd[C2S_HH_CONNECTION], "upgrade")) {
        http_error(h, 426, "this is a WebSocket endpoint (RFC 7395)",
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n");
        return;
    }
    const char *ver = hd[C2S_HH_WS_VERSION];
    if (ver == NULL || strcmp(ver, "13") != 0) {
        http_error(h, 426, "WebSocket version 13 only",
                   "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n");
        return;
    }
    const char *key = hd[C2S_HH_WS_KEY];
    kn_buf_t raw = KN_BUF_INIT;
    bool key_ok = key != NULL && kn_b64_decode(key, strlen(key), &raw) == 0 &&
                  raw.len == 16;
    kn_buf_free(&raw);
    if (!key_ok) {
        http_error(h, 400, "bad Sec-WebSocket-Key", NULL);
        return;
    }
    if (!c2s_http_origin_ok(h->cf->origins, hd[C2S_HH_ORIGIN],
                            hd[C2S_HH_HOST])) {
        http_error(h, 403, "origin not allowed", NULL);
        return;
    }
    if (!http_token_in(hd[C2S_HH_WS_PROTOCOL], "xmpp")) {
        http_error(h, 400, "Sec-WebSocket-Protocol: xmpp required (RFC 7395)",
                   NULL);
        return;
    }
    char accept[29];
    c2s_ws_accept_key(key, strlen(key), accept);
    kn_buf_t extra = KN_BUF_INIT;
    kn_buf_printf(
        &extra,
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: xmpp\r\n",
        accept);
    h->act = C2S_HTTP_UPGRADE;
    http_respond(h, 101, NULL, NULL, 0, extra.data);
    kn_buf_free(&extra);
}

static void http_host_meta(c2s_http_proto_t *h, bool json)
{
    const char *host = h->hdr[C2S_HH_HOST];
    kn_buf_t ws = KN_BUF_INIT, bo = KN_BUF_INIT, body = KN_BUF_INIT;
    bool derive = *h->cf->ws_url == '\0' || *h->cf->bosh_url == '\0';
    if (derive && !http_host_ok(host)) {
        http_error(h, 400, "no usable Host header", NULL);
        return;
    }
    if (*h->cf->ws_url != '\0')
        kn_buf_append_str(&ws, h->cf->ws_url);
    else
        kn_buf_printf(&ws, "%s://%s/xmpp-websocket", h->tls ? "wss" : "ws",
                      host);
    if (*h->cf->bosh_url != '\0')
        kn_buf_append_str(&bo, h->cf->bosh_url);
    else
        kn_buf_printf(&bo, "%s://%s/http-bind", h->tls ? "https" : "http",
                      host);
    const char *bosh = bo.data;
    if (json) {
        /* The URLs come from config or a checked Host: no quotes or
         * backslashes to escape in them. */
        kn_buf_append_str(&body, "{\"links\":[{\"rel\":\"urn:xmpp:alt-"
                                 "connections:websocket\",\"href\":\"");
        kn_buf_append(&body, ws.data, ws.len);
        kn_buf_append_str(&body, "\"}");
        kn_buf_append_str(&body, ",{\"rel\":\"urn:xmpp:alt-connections:"
                                 "xbosh\",\"href\":\"");
        kn_buf_append_str(&body, bosh);
        kn_buf_append_str(&body, "\"}");
        kn_buf_append_str(&body, "]}\n");
    } else {
        kn_buf_append_str(
            &body, "<?xml version='1.0' encoding='utf-8'?>\n"
                   "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                   "  <Link rel='urn:xmpp:alt-connections:websocket' href='");
        kn_buf_append_xml_escaped(&body, ws.data, ws.len);
        kn_buf_append_str(&body, "'/>\n");
        kn_buf_append_str(
            &body, "  <Link rel='urn:xmpp:alt-connections:xbosh' href='");
        kn_buf_append_xml_escaped(&body, bosh, strlen(bosh));
        kn_buf_append_str(&body, "'/>\n");
        kn_buf_append_str(&body, "</XRD>\n");
    }
    http_respond(h, 200,
                 json ? "application/json"
                      : "application/xrd+xml; charset=utf-8",
                 body.data, body.len, "Access-Control-Allow-Origin: *\r\n");
    kn_buf_free(&ws);
    kn_buf_free(&bo);
    kn_buf_free(&body);
}

static void http_static(c2s_http_proto_t *h, const char *rel, size_t len)
{
    if (*h->cf->web_root == '\0') {
        http_error(h, 404, "no web client on this node", NULL);
        return;
    }
    kn_buf_t path = KN_BUF_INIT, body = KN_BUF_INIT;
    char *real = NULL, *root = NULL;
    int fd = -1;
    if (c2s_http_static_path(h->cf->web_root, rel, len, &path) < 0) {
        http_error(h, 404, "not found", NULL);
        goto out;
    }
    /* Where symlinks lead must still be under the root. */
    real = realpath(path.data, NULL);
    root = realpath(h->cf->web_root, NULL);
    size_t rl = root ? strlen(root) : 0;
    if (real == NULL || root == NULL || strncmp(real, root, rl) != 0 ||
        real[rl] != '/') {
        http_error(h, 404, "not found", NULL);
        goto out;
    }
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > HTTP_FILE_MAX) {
        http_error(h, 404, "not found", NULL);
        goto out;
    }
    kn_buf_reserve(&body, (size_t)sb.st_size);
    while (body.len < (size_t)sb.st_size) {
        ssize_t n =
            read(fd, body.data + body.len, (size_t)sb.st_size - body.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        body.len += (size_t)n;
    }
    if (body.len != (size_t)sb.st_size) {
        http_error(h, 500, "read error", NULL);
        goto out;
    }
    http_respond(h, 200, c2s_http_mime(real), body.data, body.len,
                 "Cache-Control: no-cache\r\n");
out:
    if (fd >= 0)
        close(fd);
    free(real);
    free(root);
    kn_buf_free(&path);
    kn_buf_free(&body);
}

static bool http_path_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static void http_route(c2s_http_proto_t *h)
{
    if (h->dup_host) {
        http_error(h, 400, "more than one Host header", NULL);
        return;
    }
    if (h->p.http_major == 1 && h->p.http_minor >= 1 &&
        h->hdr[C2S_HH_HOST] == NULL) {
        http_error(h, 400, "Host header required", NULL);
        return;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (h->url.len == 0 ||
        http_parser_parse_url(h->url.data, h->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        http_error(h, 400, "bad request target", NULL);
        return;
    }
    const char *path = h->url.data + u.field_data[UF_PATH].off;
    size_t plen = u.field_data[UF_PATH].len;
    enum http_method m = (enum http_method)h->p.method;
    bool get = m == HTTP_GET || m == HTTP_HEAD;
    if (m == HTTP_OPTIONS) {
        kn_buf_t extra = KN_BUF_INIT;
        if (plen >= 8 && memcmp(path, "/upload/", 8) == 0)
            c2s_http_proto_cors(h, &extra);
        else
            http_cors(h, &extra);
        kn_buf_append_str(&extra,
                          "Allow: GET, HEAD, POST, PUT, OPTIONS\r\n"
                          "Access-Control-Allow-Methods: GET, HEAD, POST, "
                          "PUT, OPTIONS\r\n"
                          "Access-Control-Allow-Headers: Content-Type\r\n"
                          "Access-Control-Max-Age: 86400\r\n");
        http_respond(h, 204, NULL, NULL, 0, extra.data);
        kn_buf_free(&extra);
        return;
    }
    if (http_path_is(path, plen, "/xmpp-websocket") ||
        http_path_is(path, plen, "/ws")) {
        http_websocket(h);
        return;
    }
    if (http_path_is(path, plen, "/http-bind")) {
        if (m != HTTP_POST) {
            http_error(h, 405, "BOSH takes POST (XEP-0124)",
                       "Allow: POST, OPTIONS\r\n");
        } else if (!c2s_http_origin_ok(h->cf->origins, h->hdr[C2S_HH_ORIGIN],
                                       h->hdr[C2S_HH_HOST])) {
            http_error(h, 403, "origin not allowed", NULL);
        } else {
            h->act = C2S_HTTP_BOSH;
        }
        return;
    }
    if (http_path_is(path, plen, "/metrics")) {
        if (!h->metrics_ok) {
            http_error(h, 403, "metrics: not in metrics.allow", NULL);
        } else if (!get) {
            http_error(h, 405, "method not allowed", "Allow: GET, HEAD\r\n");
        } else {
            kn_buf_t body = KN_BUF_INIT;
            kn_metrics_render(&body);
            http_respond(h, 200, "text/plain; version=0.0.4", body.data,
                         body.len, NULL);
            kn_buf_free(&body);
        }
        return;
    }
    if (plen >= 8 && memcmp(path, "/upload/", 8) == 0 &&
        h->cf->upload != NULL) {
        const char *q = (u.field_set & (1 << UF_QUERY))
                            ? h->url.data + u.field_data[UF_QUERY].off
                            : "";
        size_t ql =
            (u.field_set & (1 << UF_QUERY)) ? u.field_data[UF_QUERY].len : 0;
        if (m == HTTP_PUT && h->up != NULL)
            c2s_upload_put_end(h);
        else if (get)
            c2s_upload_get(h, path + 8, plen - 8, q, ql);
        else
            http_error(h, 405, "method not allowed",
                       "Allow: GET, HEAD, PUT, OPTIONS\r\n");
        return;
    }
    bool hm = http_path_is(path, plen, "/.well-known/host-meta");
    bool hmj = http_path_is(path, plen, "/.well-known/host-meta.json");
    bool chat = plen >= 6 && memcmp(path, "/chat/", 6) == 0;
    bool chat0 = http_path_is(path, plen, "/chat");
    if (!hm && !hmj && !chat && !chat0) {
        http_error(h, 404, "not found", NULL);
        return;
    }
    if (!get) {
        http_error(h, 405, "method not allowed", "Allow: GET, HEAD\r\n");
        return;
    }
    if (hm || hmj)
        http_host_meta(h, hmj);
    else if (chat0)
        http_respond(h, 301, NULL, NULL, 0, "Location: /chat/\r\n");
    else
        http_static(h, path + 6, plen - 6);
}

/* ---- parser callbacks -----------------------------------------------------
 */

static int http_count_head(c2s_http_proto_t *h, size_t n)
{
    h->head_bytes += n;
    if (h->head_bytes > h->cf->max_header) {
        h->err_status = 431;
        return -1;
    }
    return 0;
}

static void http_commit_header(c2s_http_proto_t *h)
{
    if (h->field.len == 0)
        return;
    for (size_t i = 0; i < C2S_HH_COUNT; i++) {
        if (strcasecmp(h->field.data, http_hdr_names[i]) != 0)
            continue;
        const char *v = h->value.data ? h->value.data : "";
        if (h->hdr[i] == NULL) {
            h->hdr[i] = kn_strdup(v);
        } else if (i == C2S_HH_HOST) {
            h->dup_host = true;
        } else { /* a list split over several fields */
            kn_buf_t j = KN_BUF_INIT;
            kn_buf_printf(&j, "%s, %s", h->hdr[i], v);
            free(h->hdr[i]);
            h->hdr[i] = kn_buf_release(&j, NULL);
        }
        break;
    }
    kn_buf_reset(&h->field);
    kn_buf_reset(&h->value);
    h->in_value = false;
}

static int http_on_begin(http_parser *p)
{
    c2s_http_proto_t *h = p->data;
    kn_buf_reset(&h->url);
    kn_buf_reset(&h->field);
    kn_buf_reset(&h->value);
    h->in_value = false;
    for (size_t i = 0; i < C2S_HH_COUNT; i++)
        kn_free(&h->hdr[i]);
    h->head_bytes = h->body_bytes = 0;
    h->dup_host = false;
    h->keep_body = false;
    kn_buf_reset(&h->body);
    h->err_why = NULL;
    c2s_upload_req_free(&h->up);
    return 0;
}

static int http_on_url(http_parser *p, const char *at, size_t n)
{
    c2s_http_proto_t *h = p->data;
    if (http_count_head(h, n) < 0)
        return -1;
    kn_buf_append(&h->url, at, n);
    return 0;
}

static int http_on_field(http_parser *p, const char *at, size_t n)
{
    c2s_http_proto_t *h = p->data;
    if (http_count_head(h, n) < 0)
        return -1;
    if (h->in_value)
        http_commit_header(h);
    kn_buf_append(&h->field, at, n);
    return 0;
}

static int http_on_value(http_parser *p, const char *at, size_t n)
{
    c2s_http_proto_t *h = p->data;
    if (http_count_head(h, n) < 0)
        return -1;
    h->in_value = true;
    kn_buf_append(&h->value, at, n);
    return 0;
}

static int http_on_headers(http_parser *p)
{
    c2s_http_proto_t *h = p->data;
    http_commit_header(h);
    struct http_parser_url u;
    http_parser_url_init(&u);
    h->keep_body = p->method == HTTP_POST && h->url.len > 0 &&
                   http_parser_parse_url(h->url.data, h->url.len, 0, &u) == 0 &&
                   (u.field_set & (1 << UF_PATH)) &&
                   http_path_is(h->url.data + u.field_data[UF_PATH].off,
                                u.field_data[UF_PATH].len, "/http-bind");
    if (p->method == HTTP_PUT && h->cf->upload != NULL &&
        http_parser_parse_url(h->url.data, h->url.len, 0, &u) == 0 &&
        (u.field_set & (1 << UF_PATH)) && u.field_data[UF_PATH].len > 8 &&
        memcmp(h->url.data + u.field_data[UF_PATH].off, "/upload/", 8) == 0) {
        /* XEP-0363: the body goes to the file as it comes, within the
         * slot's size, not http_max_body. */
        bool hq = (u.field_set & (1 << UF_QUERY)) != 0;
        int st = c2s_upload_put_begin(
            h, h->url.data + u.field_data[UF_PATH].off + 8,
            u.field_data[UF_PATH].len - 8,
            hq ? h->url.data + u.field_data[UF_QUERY].off : "",
            hq ? u.field_data[UF_QUERY].len : 0, &h->err_why);
        if (st != 0) {
            h->err_status = st;
            return -1;
        }
    } else if ((p->flags & F_CONTENTLENGTH) &&
               p->content_length > (uint64_t)h->cf->max_body) {
        h->err_status = 413;
        return -1;
    }
    /* curl and other clients wait for this before sending a body */
    if (h->hdr[C2S_HH_EXPECT] != NULL && p->http_minor >= 1 &&
        strcasecmp(h->hdr[C2S_HH_EXPECT], "100-continue") == 0)
        kn_buf_append_str(&h->out, "HTTP/1.1 100 Continue\r\n\r\n");
    return 0;
}

static int http_on_body(http_parser *p, const char *at, size_t n)
{
    c2s_http_proto_t *h = p->data;
    h->body_bytes += n;
    if (h->up != NULL) {
        if (c2s_upload_put_body(h->up, at, n) < 0) {
            h->err_status = 500;
            h->err_why = "could not store the file";
            return -1;
        }
        return 0;
    }
    if (h->body_bytes > h->cf->max_body) {
        h->err_status = 413;
        return -1;
    }
    if (h->keep_body)
        kn_buf_append(&h->body, at, n);
    return 0; /* other routes take no body: it is skipped */
}

static int http_on_complete(http_parser *p)
{
    c2s_http_proto_t *h = p->data;
    http_route(h);
    if (h->p.upgrade && h->act == C2S_HTTP_MORE)
        h->act = C2S_HTTP_CLOSE; /* an upgrade to something we do not do */
    if (h->act != C2S_HTTP_MORE)
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http_settings = {
    .on_message_begin = http_on_begin,
    .on_url = http_on_url,
    .on_header_field = http_on_field,
    .on_header_value = http_on_value,
    .on_headers_complete = http_on_headers,
    .on_body = http_on_body,
    .on_message_complete = http_on_complete,
};

/* ---- the connection's parser ----------------------------------------------
 */

void c2s_http_proto_init(c2s_http_proto_t *h, const c2s_http_conf_t *cf,
                         bool tls)
{
    memset(h, 0, sizeof(*h));
    h->cf = cf;
    h->tls = tls;
    http_parser_init(&h->p, HTTP_REQUEST);
    h->p.data = h;
}

void c2s_http_proto_free(c2s_http_proto_t *h)
{
    kn_buf_free(&h->url);
    kn_buf_free(&h->field);
    kn_buf_free(&h->value);
    for (size_t i = 0; i < C2S_HH_COUNT; i++)
        kn_free(&h->hdr[i]);
    kn_buf_free(&h->out);
    kn_buf_free(&h->body);
    c2s_upload_req_free(&h->up);
}

bool c2s_http_proto_pull(c2s_http_proto_t *h, size_t max)
{
    KN_ASSERT(h->act == C2S_HTTP_SEND);
    if (h->up != NULL && !c2s_upload_pull(h->up, &h->out, max))
        return false;
    c2s_upload_req_free(&h->up);
    h->act = http_should_keep_alive(&h->p) ? C2S_HTTP_MORE : C2S_HTTP_CLOSE;
    if (h->act == C2S_HTTP_MORE)
        http_parser_pause(&h->p, 0);
    return true;
}

void c2s_http_proto_answer(c2s_http_proto_t *h, int status, const char *ctype,
                           const void *body, size_t len)
{
    KN_ASSERT(h->act == C2S_HTTP_BOSH);
    h->act = C2S_HTTP_MORE;
    kn_buf_t extra = KN_BUF_INIT;
    http_cors(h, &extra);
    kn_buf_append_str(&extra, "Cache-Control: no-store\r\n");
    http_respond(h, status, ctype, body, len, extra.data);
    kn_buf_free(&extra);
    if (h->body.cap > 65536)
        kn_buf_free(&h->body);
    if (h->act == C2S_HTTP_MORE)
        http_parser_pause(&h->p, 0);
}

c2s_http_act_t c2s_http_proto_feed(c2s_http_proto_t *h, const char *data,
                                   size_t len, size_t *used)
{
    KN_ASSERT(h->act == C2S_HTTP_MORE);
    size_t n = http_parser_execute(&h->p, &http_settings, data, len);
    *used = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
    if (e == HPE_OK || e == HPE_PAUSED)
        return h->act;
    /* The parse failed: answer once, then close. */
    int status = h->err_status;
    if (status == 0)
        status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
    h->act = C2S_HTTP_CLOSE;
    http_error(h, status,
               h->err_why != NULL ? h->err_why
               : status == 413    ? "request body too large"
               : status == 431    ? "request head too large"
                                  : http_errno_description(e),
               NULL);
    return h->act;
}
