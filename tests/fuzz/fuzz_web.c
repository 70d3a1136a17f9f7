/*
 * fuzz_web.c - libFuzzer entry point for what the c2s HTTP port takes
 * from outside: HTTP requests (c2s_http_proto.c over libhttp-parser),
 * BOSH bodies (c2s_bosh_parse), WebSocket frames (c2s_ws.c's transport
 * over libwslay, fed through an in-memory inner transport) and the
 * RFC 7395 framing of what comes out of them (c2s_ws_frame_in) and goes
 * back (c2s_ws_split_out).
 *
 * Input: byte 0 chooses the path (low 2 bits) and, for HTTP and
 * WebSocket, the size of the pieces the rest is fed in (bits 2..7: 1..64
 * bytes, 0 = all at once), as a slow or bursty peer would send it.
 *
 * Checks beyond "no crash, no leak, no UB": the HTTP parser never says
 * it used more than it was given; every response starts with a status
 * line; a WebSocket transport never returns more bytes than asked;
 * the output splitter never consumes more than it was given.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_bosh.h"
#include "c2s_http.h"
#include "c2s_transport.h"
#include "c2s_ws.h"
#include "kn_err.h"
#include "kn_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kn_log_init("fuzz", KN_LOG_ERR);
    return 0;
}

static void fz_abort_if(bool bad)
{
    if (bad)
        abort();
}

/* ---- HTTP ---------------------------------------------------------------- */

static void fz_http(const uint8_t *d, size_t n, size_t step)
{
    static const c2s_http_conf_t cf = {"", "", "", "", 2048, 4096, NULL};
    c2s_http_proto_t h;
    c2s_http_proto_init(&h, &cf, (n & 1) != 0);
    size_t off = 0;
    int guard = 0;
    while (off < n && guard++ < 100000) {
        size_t len = step == 0 || n - off < step ? n - off : step;
        size_t used = 0;
        c2s_http_act_t act =
            c2s_http_proto_feed(&h, (const char *)d + off, len, &used);
        fz_abort_if(used > len);
        off += used;
        if (h.out.len > 0)
            fz_abort_if(h.out.len < 9 || memcmp(h.out.data, "HTTP/1.", 7) != 0);
        h.out.len = 0;
        if (act == C2S_HTTP_CLOSE || act == C2S_HTTP_UPGRADE)
            break;
        if (act == C2S_HTTP_BOSH) {
            c2s_bosh_body_t b;
            memset(&b, 0, sizeof(b));
            (void)c2s_bosh_parse(h.body.data, h.body.len, &b);
            kn_buf_free(&b.payload);
            c2s_http_proto_answer(&h, 200, "text/xml; charset=utf-8",
                                  "<body xmlns='" C2S_NS_HTTPBIND "'/>", 44);
        } else if (act == C2S_HTTP_SEND) {
            int g = 0;
            while (!c2s_http_proto_pull(&h, 4096) && g++ < 1000)
                h.out.len = 0;
        }
        h.out.len = 0;
        if (h.act != C2S_HTTP_MORE)
            break; /* the answer ended the connection (no keep-alive) */
        if (used < len && act == C2S_HTTP_MORE)
            break; /* the parser stopped (an error answered) */
    }
    c2s_http_proto_free(&h);
}

/* ---- WebSocket ----------------------------------------------------------- */

typedef struct fz_mem {
    const uint8_t *d;
    size_t n, off, step;
} fz_mem_t;

static ssize_t mem_read(void *state, int fd, void *buf, size_t len, int *want)
{
    fz_mem_t *m = state;
    (void)fd;
    if (m->off >= m->n) {
        *want = 1;
        return -KN_EAGAIN;
    }
    size_t k = m->n - m->off;
    if (m->step != 0 && k > m->step)
        k = m->step;
    if (k > len)
        k = len;
    memcpy(buf, m->d + m->off, k);
    m->off += k;
    return (ssize_t)k;
}

static ssize_t mem_write(void *state, int fd, const void *buf, size_t len,
                         int *want)
{
    (void)state;
    (void)fd;
    (void)buf;
    (void)want;
    return (ssize_t)len; /* the peer takes everything */
}

static void mem_free(void **state)
{
    *state = NULL; /* on the stack */
}

static const c2s_transport_t fz_mem_transport = {
    "mem", mem_read, mem_write, NULL, mem_free, NULL, NULL};

static void fz_ws(const uint8_t *d, size_t n, size_t step)
{
    fz_mem_t m = {d, n, 0, step};
    /* A few bytes "after the upgrade request" come as pending input. */
    size_t pend = n > 0 ? d[0] % 8 : 0;
    if (pend > n)
        pend = n;
    m.off = pend;
    c2s_ws_t *w = c2s_ws_new(&fz_mem_transport, &m, -1, 8192, d, pend);
    void *st = w;
    char buf[1024];
    kn_buf_t stream = KN_BUF_INIT;
    for (int guard = 0; guard < 100000; guard++) {
        int want = 0;
        ssize_t r = c2s_transport_ws.read(st, -1, buf, sizeof(buf), &want);
        fz_abort_if(r > (ssize_t)sizeof(buf));
        if (r <= 0)
            break;
        kn_buf_append(&stream, buf, (size_t)r);
    }
    /* Something goes back: a complete element. */
    static const char out[] = "<message xmlns='jabber:client'><body>x</body>"
                              "</message>";
    int want = 0;
    (void)c2s_transport_ws.write(st, -1, out, sizeof(out) - 1, &want);
    c2s_transport_ws.free(&st);
    kn_buf_free(&stream);
}

/* ---- the RFC 7395 framing, both ways --------------------------------------
 */

static void fz_emit(void *ud, const char *data, size_t len)
{
    size_t *total = ud;
    (void)data;
    *total += len;
}

static void fz_frames(const uint8_t *d, size_t n)
{
    kn_buf_t out = KN_BUF_INIT;
    kn_stream_err_t err = KN_SE_NONE;
    (void)c2s_ws_frame_in(d, n, &out, &err);
    kn_buf_free(&out);
    size_t total = 0;
    ssize_t used = c2s_ws_split_out((const char *)d, n, 4096, fz_emit, &total);
    fz_abort_if(used > (ssize_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned path = data[0] & 3u;
    size_t step = data[0] >> 2;
    data++;
    size--;
    switch (path) {
    case 0:
        fz_http(data, size, step);
        break;
    case 1: {
        c2s_bosh_body_t b;
        memset(&b, 0, sizeof(b));
        (void)c2s_bosh_parse((const char *)data, size, &b);
        kn_buf_free(&b.payload);
        break;
    }
    case 2:
        fz_ws(data, size, step);
        break;
    default:
        fz_frames(data, size);
        break;
    }
    return 0;
}
