/*
 * c2s_ws.c - the WebSocket transport (see c2s_ws.h): libwslay's event API
 * over the inner transport, and the RFC 7395 <-> RFC 6120 translation.
 *
 * A note on output accounting. The connection (c2s_conn.c) treats the
 * count a write returns as bytes handed to the socket: acknowledgements
 * of stored offline messages and the out_buffer_max check depend on it.
 * So write() frames a batch of complete elements into wslay's queue,
 * sends, and reports the batch only once wslay's queue has drained
 * (until then it answers -KN_EAGAIN and keeps the count as `owed`). At
 * most one batch (about WS_BATCH bytes) sits in wslay's queue.
 *
 * Input is bounded the same way: the receive callback tells wslay "would
 * block" while more than WS_DEC_MAX translated bytes wait for the stream,
 * so a client cannot make one read() buffer more than that.
 *
 * A note on idle sessions. libwslay's context is about 8.6 KiB (two 4 KiB
 * frame buffers), more than the rest of a session's transport. When the
 * idle sweep parks the stream's parser it parks ours too (ws_park): the
 * context is freed if it holds nothing (no partial frame: every byte fed
 * to wslay belongs to a frame that ended; no fragmented message; nothing
 * queued; no close) and made again, with the same settings, on the next
 * read or write. So an idle WebSocket session costs what an idle TCP one
 * does, plus this struct.
 */
#include "c2s_ws.h"

#include <errno.h>
#include <ev.h>
#include <expat.h>
#include <stdint.h>
#include <string.h>
#include <wslay/wslay.h>

#include "c2s_stream.h"
#include "c2s_tls.h"
#include "kn_b64.h"
#include "kn_err.h"
#include "kn_mem.h"
#include "kn_stanza.h"
#include "kn_xml.h"

#define WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_BATCH   65536 /* output bytes framed per write() */
#define WS_DEC_MAX 65536 /* translated input waiting for the stream */

struct c2s_ws {
    wslay_event_context_ptr ctx;
    const c2s_transport_t *inner;
    void *ist;
    int fd;
    kn_buf_t raw; /* bytes after the upgrade request, before wslay */
    size_t raw_off;
    kn_buf_t dec; /* stream bytes translated from messages, not yet read */
    size_t dec_off;
    size_t max_msg;
    kn_buf_t msg;     /* the data message being received */
    uint64_t msg_len; /* its announced length so far */
    size_t owed;      /* output bytes framed, reported once sent */
    int rwant, wwant; /* what the inner transport waits for */
    int err;          /* kn_stream_err_t; KN_SE_NONE while healthy */
    uint16_t close_code;
    bool eof : 1;
    bool ioerr : 1;
    bool in_ctrl : 1;   /* the frame being received is a control frame */
    bool in_msg : 1;    /* a fragmented data message is under way */
    uint64_t fed;       /* bytes handed to wslay */
    uint64_t framed;    /* bytes of the frames wslay finished */
    uint64_t frame_len; /* bytes of the frame being received */
};

void c2s_ws_accept_key(const char *key, size_t len, char out[29])
{
    uint8_t md[20];
    kn_buf_t in = KN_BUF_INIT, b = KN_BUF_INIT;
    kn_buf_append(&in, key, len);
    kn_buf_append_str(&in, WS_GUID);
    c2s_tls_sha1(in.data, in.len, md);
    kn_buf_free(&in);
    kn_b64_encode(md, sizeof(md), &b);
    KN_ASSERT(b.len == 28);
    memcpy(out, b.data, 28);
    out[28] = '\0';
    kn_buf_free(&b);
}

/* ---- translation ---------------------------------------------------------
 */

static bool ws_starts_with_tag(const char *p, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    if (n <= t || memcmp(p, tag, t) != 0)
        return false;
    char c = p[t];
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' ||
           c == '>';
}

static void ws_copy_attr(const kn_stanza_t *st, const char *name,
                         const char *as, kn_buf_t *out)
{
    size_t len = 0;
    const char *v = kn_stanza_attr(st, 0, name, &len);
    if (v == NULL)
        return;
    kn_buf_printf(out, " %s='", as);
    kn_buf_append_xml_escaped(out, v, len);
    kn_buf_append_byte(out, '\'');
}

int c2s_ws_frame_in(const void *msg, size_t len, kn_buf_t *out,
                    kn_stream_err_t *err)
{
    const char *p = msg;
    size_t n = len;
    while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        n--;
    }
    bool open = ws_starts_with_tag(p, n, "<open");
    bool close = !open && ws_starts_with_tag(p, n, "<close");
    if (!open && !close) {
        kn_buf_append(out, msg, len);
        return 0;
    }
    kn_stanza_t *st = NULL;
    if (kn_xml_parse_stanza(p, n, C2S_NS_FRAMING, &st) < 0) {
        *err = KN_SE_NOT_WELL_FORMED;
        return -KN_EPROTO;
    }
    const char *ns = kn_stanza_ns(st, 0);
    if (ns == NULL || strcmp(ns, C2S_NS_FRAMING) != 0 ||
        kn_stanza_count(st) != 1) {
        kn_stanza_unref(&st);
        *err = KN_SE_INVALID_NAMESPACE;
        return -KN_EPROTO;
    }
    if (close) {
        kn_buf_append_str(out, "</stream:stream>");
    } else {
        kn_buf_append_str(out, "<stream:stream xmlns='" KN_NS_CLIENT
                               "' xmlns:stream='" KN_NS_STREAMS "'");
        ws_copy_attr(st, "to", "to", out);
        ws_copy_attr(st, "from", "from", out);
        ws_copy_attr(st, "version", "version", out);
        ws_copy_attr(st, "xml:lang", "xml:lang", out);
        kn_buf_append_byte(out, '>');
    }
    kn_stanza_unref(&st);
    return 0;
}

/* The output splitter: a non-namespace expat parser over "<w>" + buf,
 * cutting at the ends of depth-1 elements. Our own output is well-formed
 * by construction; expat only finds the boundaries. */
typedef struct ws_split {
    XML_Parser xp;
    const char *buf;
    size_t max;
    int depth;
    size_t start, tag_end, name_len;
    const char *ins; /* namespace declaration to add, or NULL */
    size_t done;
    c2s_ws_emit_fn emit;
    void *ud;
    kn_buf_t msg;
} ws_split_t;

#define WS_WRAP     "<w>"
#define WS_WRAP_LEN 3

static size_t ws_split_pos(ws_split_t *sp, bool end_of_event)
{
    long idx = XML_GetCurrentByteIndex(sp->xp);
    long cnt = end_of_event ? XML_GetCurrentByteCount(sp->xp) : 0;
    return (size_t)(idx + cnt - WS_WRAP_LEN);
}

static void XMLCALL ws_split_start(void *ud, const XML_Char *name,
                                   const XML_Char **atts)
{
    ws_split_t *sp = ud;
    if (++sp->depth != 2)
        return;
    sp->start = ws_split_pos(sp, false);
    sp->tag_end = ws_split_pos(sp, true);
    sp->name_len = strlen(name);
    bool stream = strncmp(name, "stream:", 7) == 0;
    const char *decl = stream ? "xmlns:stream" : "xmlns";
    sp->ins = stream ? " xmlns:stream='" KN_NS_STREAMS "'"
                     : " xmlns='" KN_NS_CLIENT "'";
    for (const XML_Char **a = atts; *a != NULL; a += 2)
        if (strcmp(a[0], decl) == 0)
            sp->ins = NULL;
}

static void XMLCALL ws_split_end(void *ud, const XML_Char *name)
{
    ws_split_t *sp = ud;
    KN_UNUSED(name);
    if (sp->depth-- != 2)
        return;
    /* The end of an empty-element tag is reported with a zero count. */
    size_t end = XML_GetCurrentByteCount(sp->xp) == 0 ? sp->tag_end
                                                      : ws_split_pos(sp, true);
    const char *el = sp->buf + sp->start;
    size_t cut = 1 + sp->name_len;
    kn_buf_reset(&sp->msg);
    kn_buf_append(&sp->msg, el, cut);
    if (sp->ins != NULL)
        kn_buf_append_str(&sp->msg, sp->ins);
    kn_buf_append(&sp->msg, el + cut, end - sp->start - cut);
    sp->emit(sp->ud, sp->msg.data, sp->msg.len);
    sp->done = end;
    if (end >= sp->max)
        XML_StopParser(sp->xp, XML_FALSE);
}

ssize_t c2s_ws_split_out(const char *buf, size_t len, size_t max,
                         c2s_ws_emit_fn emit, void *ud)
{
    ws_split_t sp = {0};
    sp.buf = buf;
    sp.max = max;
    sp.emit = emit;
    sp.ud = ud;
    sp.xp = XML_ParserCreate("UTF-8");
    KN_ASSERT(sp.xp != NULL);
    XML_SetUserData(sp.xp, &sp);
    XML_SetElementHandler(sp.xp, ws_split_start, ws_split_end);
    enum XML_Status rc = XML_Parse(sp.xp, WS_WRAP, WS_WRAP_LEN, XML_FALSE);
    if (rc == XML_STATUS_OK)
        rc = XML_Parse(sp.xp, buf, (int)len, XML_FALSE);
    bool aborted =
        rc == XML_STATUS_ERROR && XML_GetErrorCode(sp.xp) == XML_ERROR_ABORTED;
    XML_ParserFree(sp.xp);
    kn_buf_free(&sp.msg);
    if (rc == XML_STATUS_ERROR && !aborted)
        return -1;
    return (ssize_t)sp.done;
}

/* ---- wslay callbacks -----------------------------------------------------
 */

static void ws_fail(c2s_ws_t *w, kn_stream_err_t err, uint16_t code)
{
    if (w->err == KN_SE_NONE) {
        w->err = err;
        w->close_code = code;
    }
}

/* Stop wslay_event_recv() without a failure: a failure makes wslay queue
 * an empty close frame at once, before our stream error could go out. */
static ssize_t ws_would_block(wslay_event_context_ptr ctx)
{
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static ssize_t ws_on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          int flags, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(flags);
    if (w->err != KN_SE_NONE || w->dec.len - w->dec_off > WS_DEC_MAX)
        return ws_would_block(ctx);
    if (w->raw_off < w->raw.len) {
        size_t n = w->raw.len - w->raw_off;
        if (n > len)
            n = len;
        memcpy(buf, w->raw.data + w->raw_off, n);
        w->raw_off += n;
        if (w->raw_off == w->raw.len) {
            kn_buf_free(&w->raw);
            w->raw_off = 0;
        }
        w->fed += n;
        return (ssize_t)n;
    }
    int want = EV_READ;
    ssize_t n = w->inner->read(w->ist, w->fd, buf, len, &want);
    if (n > 0) {
        w->fed += (uint64_t)n;
        return n;
    }
    if (n == -KN_EAGAIN) {
        w->rwant = want;
        return ws_would_block(ctx);
    }
    if (n == 0)
        w->eof = true;
    else
        w->ioerr = true;
    return ws_would_block(ctx);
}

static ssize_t ws_on_send(wslay_event_context_ptr ctx, const uint8_t *data,
                          size_t len, int flags, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(flags);
    int want = EV_WRITE;
    ssize_t n = w->inner->write(w->ist, w->fd, data, len, &want);
    if (n > 0)
        return n;
    if (n == -KN_EAGAIN) {
        w->wwant = want;
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    w->ioerr = true;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* Data messages are buffered here, not by wslay (which would allocate a
 * frame's announced length before anything checked it): the limit is
 * applied to the announced lengths, before the payload is read. */
static void
ws_on_frame_start(wslay_event_context_ptr ctx,
                  const struct wslay_event_on_frame_recv_start_arg *a, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(ctx);
    /* header: 2, the extended length, the mask key (clients must mask) */
    uint64_t pl = a->payload_length;
    w->frame_len = 2 + (pl < 126 ? 0 : pl < 65536 ? 2 : 8) + 4 + pl;
    w->in_ctrl = (a->opcode & 0x8u) != 0;
    if (w->in_ctrl)
        return; /* wslay buffers control frames (125 bytes at most) */
    w->in_msg = !a->fin;
    if (a->opcode != WSLAY_CONTINUATION_FRAME) {
        w->msg_len = 0;
        kn_buf_reset(&w->msg);
    }
    w->msg_len += a->payload_length;
    if (w->msg_len > w->max_msg)
        ws_fail(w, KN_SE_POLICY_VIOLATION, WSLAY_CODE_MESSAGE_TOO_BIG);
}

static void
ws_on_frame_chunk(wslay_event_context_ptr ctx,
                  const struct wslay_event_on_frame_recv_chunk_arg *a, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(ctx);
    if (!w->in_ctrl && w->err == KN_SE_NONE)
        kn_buf_append(&w->msg, a->data, a->data_length);
}

static void ws_on_frame_end(wslay_event_context_ptr ctx, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(ctx);
    w->framed += w->frame_len;
    w->frame_len = 0;
}

static void ws_on_msg(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *a, void *ud)
{
    c2s_ws_t *w = ud;
    KN_UNUSED(ctx);
    if (w->err != KN_SE_NONE)
        return;
    if (a->opcode == WSLAY_TEXT_FRAME) {
        if (w->dec_off == w->dec.len) {
            kn_buf_reset(&w->dec);
            w->dec_off = 0;
        }
        kn_stream_err_t err = KN_SE_NONE;
        if (c2s_ws_frame_in(w->msg.data, w->msg.len, &w->dec, &err) < 0)
            ws_fail(w, err, WSLAY_CODE_PROTOCOL_ERROR);
    } else if (a->opcode == WSLAY_BINARY_FRAME) {
        ws_fail(w, KN_SE_BAD_FORMAT, WSLAY_CODE_UNSUPPORTED_DATA);
    }
    if (!(a->opcode & 0x8u)) {
        if (w->msg.cap > 4096)
            kn_buf_free(&w->msg);
        else
            kn_buf_reset(&w->msg);
    }
    /* close: wslay queued the answer and stops reading; ping: it queued
     * the pong; pong: nothing to do. */
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_on_recv,        ws_on_send,      NULL,      ws_on_frame_start,
    ws_on_frame_chunk, ws_on_frame_end, ws_on_msg,
};

/* The wslay context, made again after ws_park. */
static wslay_event_context_ptr ws_ctx(c2s_ws_t *w)
{
    if (w->ctx != NULL)
        return w->ctx;
    int rc = wslay_event_context_server_init(&w->ctx, &ws_callbacks, w);
    KN_ASSERT(rc == 0); /* only fails out of memory */
    /* We buffer and limit data messages ourselves (ws_on_frame_start);
     * wslay's own check would close with 1009 before our stream error. */
    wslay_event_config_set_no_buffering(w->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(w->ctx, UINT64_C(1) << 62);
    return w->ctx;
}

/* ---- the transport -------------------------------------------------------
 */

c2s_ws_t *c2s_ws_new(const c2s_transport_t *inner, void *ist, int fd,
                     size_t max_msg, const void *pending, size_t npending)
{
    c2s_ws_t *w = kn_calloc(1, sizeof(*w));
    w->inner = inner;
    w->ist = ist;
    w->fd = fd;
    w->max_msg = max_msg;
    w->rwant = EV_READ;
    w->wwant = EV_WRITE;
    if (npending > 0)
        kn_buf_append(&w->raw, pending, npending);
    ws_ctx(w);
    return w;
}

static ssize_t ws_read(void *state, int fd, void *buf, size_t len, int *want)
{
    c2s_ws_t *w = state;
    KN_UNUSED(fd);
    ws_ctx(w);
    for (int round = 0;; round++) {
        if (w->dec_off < w->dec.len) {
            size_t n = w->dec.len - w->dec_off;
            if (n > len)
                n = len;
            memcpy(buf, w->dec.data + w->dec_off, n);
            w->dec_off += n;
            return (ssize_t)n;
        }
        if (w->err != KN_SE_NONE)
            return -KN_EPROTO;
        if (w->eof || wslay_event_get_close_received(w->ctx) ||
            !wslay_event_get_read_enabled(w->ctx))
            return 0;
        if (w->ioerr)
            return -KN_EIO;
        if (round > 0) {
            *want = w->rwant;
            return -KN_EAGAIN;
        }
        w->rwant = EV_READ;
        int rc = wslay_event_recv(w->ctx);
        /* Pongs and the answer to a close go out at once (best effort:
         * what the socket does not take now goes with the next write). */
        if (wslay_event_want_write(w->ctx))
            wslay_event_send(w->ctx);
        if (rc != 0 && w->err == KN_SE_NONE && w->dec_off == w->dec.len)
            return -KN_EIO;
    }
}

static void ws_emit(void *ud, const char *data, size_t len)
{
    c2s_ws_t *w = ud;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    (void)wslay_event_queue_msg(w->ctx, &m); /* closing: dropped */
}

static ssize_t ws_write(void *state, int fd, const void *buf, size_t len,
                        int *want)
{
    c2s_ws_t *w = state;
    KN_UNUSED(fd);
    ws_ctx(w);
    if (w->owed == 0) {
        ssize_t n = c2s_ws_split_out(buf, len, WS_BATCH, ws_emit, w);
        if (n <= 0)
            return -KN_EIO; /* the stream only writes whole elements */
        w->owed = (size_t)n;
    }
    if (wslay_event_want_write(w->ctx)) {
        w->wwant = EV_WRITE;
        if (wslay_event_send(w->ctx) != 0 || w->ioerr)
            return -KN_EIO;
        if (wslay_event_want_write(w->ctx)) {
            *want = w->wwant;
            return -KN_EAGAIN;
        }
    }
    size_t n = w->owed;
    w->owed = 0;
    return (ssize_t)n;
}

static int ws_stream_error(void *state)
{
    c2s_ws_t *w = state;
    return w->err;
}

static void ws_free(void **state)
{
    c2s_ws_t *w = *state;
    if (w == NULL)
        return;
    /* The closing handshake, best effort: the socket closes next. */
    if (!w->ioerr && wslay_event_get_write_enabled(ws_ctx(w))) {
        uint16_t code =
            w->close_code ? w->close_code : WSLAY_CODE_NORMAL_CLOSURE;
        if (!wslay_event_get_close_sent(w->ctx))
            wslay_event_queue_close(w->ctx, code, NULL, 0);
        wslay_event_send(w->ctx);
    }
    if (w->ctx != NULL)
        wslay_event_context_free(w->ctx);
    w->inner->free(&w->ist);
    kn_buf_free(&w->raw);
    kn_buf_free(&w->dec);
    kn_buf_free(&w->msg);
    free(w);
    *state = NULL;
}

static void ws_park(void *state)
{
    c2s_ws_t *w = state;
    if (w->ctx == NULL || w->fed != w->framed || w->in_msg || w->owed > 0 ||
        w->err != KN_SE_NONE || w->eof || w->ioerr || w->raw_off < w->raw.len ||
        w->dec_off < w->dec.len || wslay_event_want_write(w->ctx) ||
        wslay_event_get_close_received(w->ctx) ||
        wslay_event_get_close_sent(w->ctx) ||
        !wslay_event_get_read_enabled(w->ctx) ||
        !wslay_event_get_write_enabled(w->ctx))
        return;
    wslay_event_context_free(w->ctx);
    w->ctx = NULL;
    kn_buf_free(&w->dec);
    w->dec_off = 0;
    kn_buf_free(&w->msg);
}

const c2s_transport_t c2s_transport_ws = {
    "websocket", ws_read, ws_write, NULL, ws_free, ws_stream_error, ws_park,
};
