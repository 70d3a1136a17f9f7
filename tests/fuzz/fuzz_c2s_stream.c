/*
 * fuzz_c2s_stream.c - libFuzzer entry point for a whole client stream:
 * the bytes a client sends, through kn_xml and the c2s state machine
 * (c2s_stream.c, c2s_sasl.c, c2s_register.c, c2s_bind.c, c2s_stanza.c,
 * c2s_block.c), driven by a fake owner like tests/unit/test_c2s_stream.c.
 *
 * Input: byte 0 chooses the setting (bits below); the rest is what the
 * client sends, cut into separate reads at every 0xFF byte (never valid
 * in UTF-8, so the fuzzer chooses the split points without losing any XML
 * it could write). The seeds in tests/fuzz/corpus/c2s_stream are client
 * streams captured in the integration tests (tests/fuzz/make_seeds.py).
 *
 * The fake owner answers every pause at once: credentials (for password
 * "secret", so a captured stream rewritten to PLAIN logs in and reaches
 * binding and routing), the failure delay, the TLS handshake after
 * <proceed/> (bytes of the same read after <starttls/> are discarded, as
 * the server must), registration. Once bound, the block list arrives and
 * two deliveries come from the router, one from a blocked JID. After a
 * read of odd length the idle sweep parks the parser (kn_xml_park), as
 * c2s_conn.c does with a quiet connection.
 *
 * Checked besides "no crash, no leak, no undefined behaviour": every
 * envelope the stream routes encodes and decodes to itself, and its
 * payload is one well-formed stanza, as the router and the daemons
 * expect (R-ARCH-1).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c2s_stream.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define M_DIRECT_TLS 0x01u /* direct TLS, else plain with STARTTLS */
#define M_CB         0x02u /* TLS offers tls-exporter channel binding */
#define M_REGISTER   0x04u /* in-band registration on */
#define M_DELAY      0x08u /* failures are delayed (pause, then resume) */
#define M_CREDS      0x30u /* 0, 3: known; 0x10: unknown; 0x20: DB error */
#define M_REG_TAKEN  0x40u /* register_user() answers "taken" */
#define M_SMALL      0x80u /* small parser limits */

typedef struct fz {
    unsigned mode;
    bool block_wanted;
    bool reg_pending;
} fz_t;

static c2s_creds_t fz_creds;
static bool fz_echo; /* KILN_FUZZ_ECHO=1: print what the server wrote */

static void fz_check_payload(const void *pl, size_t len)
{
    kn_stanza_t *st = NULL;
    int rc = kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &st);
    /* stamping a 'from' may push a stanza just under the limit over it */
    if (rc == -KN_ETOOBIG && len > KN_XML_MAX_STANZA_DEFAULT - 4096)
        return;
    if (rc != 0)
        abort();
    kn_stanza_unref(&st);
}

static int fz_route(void *ud, const kn_env_t *e, const void *pl, size_t len)
{
    (void)ud;
    kn_buf_t b = KN_BUF_INIT;
    kn_env_t d;
    if (kn_env_encode(e, &b) != 0 || kn_env_decode(b.data, b.len, &d) != 0 ||
        d.kind != e->kind || d.from_len != e->from_len ||
        d.to_len != e->to_len || d.conn_id != e->conn_id)
        abort();
    kn_buf_free(&b);
    if (pl != NULL && len > 0)
        fz_check_payload(pl, len);
    return 0;
}

static void fz_lookup(void *ud, const char *user)
{
    (void)ud;
    if (user == NULL || *user == '\0')
        abort();
}

static unsigned fz_failed(void *ud)
{
    return (((fz_t *)ud)->mode & M_DELAY) ? 10 : 0;
}

static void fz_starttls(void *ud)
{
    (void)ud;
}

static int fz_cb(void *ud, kn_scram_cb_t type, uint8_t *out, size_t cap)
{
    (void)ud;
    if (type != KN_SCRAM_CB_TLS_EXPORTER || cap < 32)
        return -KN_ENOENT;
    memset(out, 0x5a, 32);
    return 32;
}

static uint64_t fz_conn(void *ud)
{
    (void)ud;
    return kn_conn_make(1, 7);
}

static void fz_block_wait(void *ud)
{
    ((fz_t *)ud)->block_wanted = true;
}

static void fz_ack_mark(void *ud, uint64_t id)
{
    (void)ud;
    (void)id;
}

static bool fz_reg_allowed(void *ud)
{
    (void)ud;
    return true;
}

static void fz_reg_user(void *ud, const char *user, const c2s_creds_t *cr)
{
    (void)cr;
    if (user == NULL || *user == '\0')
        abort();
    ((fz_t *)ud)->reg_pending = true;
}

static const c2s_stream_ops_t fz_ops = {
    fz_route, fz_lookup,     fz_failed,   NULL,           fz_starttls, fz_cb,
    fz_conn,  fz_block_wait, fz_ack_mark, fz_reg_allowed, fz_reg_user};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_echo = getenv("KILN_FUZZ_ECHO") != NULL;
    kn_log_init("fuzz", fz_echo ? KN_LOG_DEBUG : KN_LOG_ERR);
    static const uint8_t salt[16] = "fuzzsaltfuzzsalt";
    /* one iteration: the fuzzer should spend its time in our parsers */
    if (kn_scram_creds_derive(&fz_creds.sha1, KN_SCRAM_SHA1, "secret", salt, 16,
                              1) != 0 ||
        kn_scram_creds_derive(&fz_creds.sha256, KN_SCRAM_SHA256, "secret", salt,
                              16, 1) != 0)
        abort();
    return 0;
}

/* Answer whatever the stream waits for, until it waits for input. */
static c2s_act_t fz_settle(c2s_stream_t *s, fz_t *f, c2s_act_t act)
{
    for (int guard = 0; act == C2S_ACT_PAUSED && guard < 64; guard++) {
        switch (s->pause) {
        case C2S_PAUSE_CREDS: {
            unsigned c = f->mode & M_CREDS;
            int rc = c == 0x10 ? -KN_ENOENT : c == 0x20 ? -KN_EIO : 0;
            act = c2s_stream_creds_done(s, rc, rc == 0 ? &fz_creds : NULL);
            break;
        }
        case C2S_PAUSE_FAIL:
            act = c2s_stream_resume(s);
            break;
        case C2S_PAUSE_TLS:
            act =
                c2s_stream_tls_done(s, (f->mode & M_CB) ? C2S_CB_EXPORTER : 0);
            break;
        case C2S_PAUSE_REGISTER:
            if (!f->reg_pending)
                abort();
            f->reg_pending = false;
            act = c2s_stream_register_done(
                s, (f->mode & M_REG_TAKEN) ? -KN_EEXIST : 0);
            break;
        default:
            abort(); /* paused without a reason */
        }
    }
    if (act == C2S_ACT_PAUSED)
        abort(); /* the stream never stops pausing */
    return act;
}

/* The router's side of a bound session: its block list, then a message
 * from a blocked JID and one from a stranger. */
static c2s_act_t fz_router(c2s_stream_t *s)
{
    static const char *const jids[] = {"mallory@localhost"};
    static const size_t lens[] = {17};
    c2s_stream_block_loaded(s, jids, lens, 1);
    static const char *const from[] = {"mallory@localhost/x",
                                       "bob@localhost/y"};
    c2s_act_t act = C2S_ACT_MORE;
    for (int i = 0; i < 2 && act != C2S_ACT_CLOSE; i++) {
        kn_buf_t pl = KN_BUF_INIT;
        kn_buf_printf(&pl,
                      "<message from='%s' type='chat' id='m%d'><body>hi"
                      "</body></message>",
                      from[i], i);
        kn_env_t e = {0};
        e.kind = KN_ENV_STANZA;
        e.stanza = KN_ENV_ST_MESSAGE;
        e.type = KN_ENV_TYPE_CHAT;
        e.from = from[i];
        e.from_len = strlen(from[i]);
        e.to = kn_jid_str(&s->jid);
        e.to_len = kn_jid_len(&s->jid);
        e.conn_id = kn_conn_make(1, 7);
        act = c2s_stream_inbound(s, &e, pl.data, pl.len);
        kn_buf_free(&pl);
    }
    return act;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fz_t f = {.mode = data[0]};
    data++;
    size--;
    c2s_stream_conf_t cf = {"localhost", KN_XML_LIMITS_DEFAULT, 0,
                            (f.mode & M_REGISTER) != 0};
    if (f.mode & M_SMALL)
        cf.limits = (kn_xml_limits_t){1024, 8, 8, 512};
    kn_buf_t out = KN_BUF_INIT;
    c2s_stream_t *s = c2s_stream_new(
        &cf, &fz_ops, &f, &out,
        (f.mode & M_DIRECT_TLS) ? C2S_STREAM_F_TLS : C2S_STREAM_F_STARTTLS);
    if (f.mode & M_DIRECT_TLS)
        c2s_stream_set_tls(s, (f.mode & M_CB) ? C2S_CB_EXPORTER : 0);
    c2s_act_t act = C2S_ACT_MORE;
    bool routed = false;
    size_t at = 0;
    while (at <= size && act != C2S_ACT_CLOSE) {
        const uint8_t *cut = memchr(data + at, 0xff, size - at);
        size_t n = cut ? (size_t)(cut - (data + at)) : size - at;
        act = fz_settle(s, &f, c2s_stream_input(s, data + at, n));
        /* the idle sweep of c2s_conn.c parks a quiet stream's parser;
         * after a read of odd length it comes by */
        if (act != C2S_ACT_CLOSE && (n & 1))
            (void)kn_xml_park(s->xml);
        if (act != C2S_ACT_CLOSE && s->state == C2S_ST_SESSION && !routed) {
            routed = true;
            c2s_stream_ping(s, 1);
            act = fz_router(s);
        }
        if (fz_echo && out.len > 0)
            fprintf(stderr, "<< %.*s\n", (int)out.len, out.data);
        if (fz_echo || out.len > (1u << 20))
            kn_buf_reset(&out); /* the connection would have sent it */
        at += n + 1;
    }
    /* the client went away: the owner's close path */
    c2s_stream_close(s, KN_SE_NONE, KN_ENV_REASON_DROPPED);
    c2s_stream_end(s);
    c2s_stream_free(&s);
    kn_buf_free(&out);
    return 0;
}
