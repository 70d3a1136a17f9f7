/*
 * fuzz_component.c - libFuzzer entry point for an external component's
 * stream (XEP-0114, jabber:component:accept) as c2s/c2s_component.c reads
 * it: the stream header and its `to`, the <handshake/>, then the
 * component's stanzas (from/to checks, type, the payload re-serialised
 * for the router), the input rate, the output bound, and the router's
 * deliveries to the component.
 *
 * c2s_component.c is included here, so its static functions run as they
 * are: a real accept (comp_on_accept, on a listening AF_UNIX socket of
 * ours), reads from a real socket (comp_on_read), writes
 * (comp_on_write), close and reap. The router link is the only fake:
 * kn_link_ready, kn_link_conn_id and kn_link_send are renamed to fz_*
 * below, before the include.
 *
 * Input: byte 0 chooses the setting (bits below); the rest is what the
 * component sends, cut into separate reads at every 0xFF byte (never
 * valid in UTF-8). The stream id is fixed (FZ_SID), so a seed's
 * <handshake/> of SHA-1(FZ_SID + secret) passes and the fuzzer reaches
 * the stanzas: tests/fuzz/make_seeds.py component writes such seeds into
 * tests/fuzz/corpus/component.
 *
 * Checked besides "no crash, no leak, no undefined behaviour": every
 * envelope sent to the router encodes and decodes to itself; a stanza
 * from the component reaches the router only after a good handshake,
 * from a JID of its own domain, with a `to`, as one well-formed
 * jabber:client stanza (R-GW-1); a registration names a configured
 * domain.
 */
#include <stdint.h>
#include <sys/un.h>

#include "kn_link.h"

static bool fz_link_ready(const kn_link_t *l);
static uint64_t fz_link_conn_id(const kn_link_t *l, uint64_t local);
static int fz_link_send(kn_link_t *l, const kn_env_t *env, const void *payload,
                        size_t len);
#define kn_link_ready   fz_link_ready
#define kn_link_conn_id fz_link_conn_id
#define kn_link_send    fz_link_send
#include "../../c2s/c2s_component.c"
#undef kn_link_ready
#undef kn_link_conn_id
#undef kn_link_send

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define M_NOT_READY 0x01u /* the router link is not up yet */
#define M_SEND_FAIL 0x02u /* kn_link_send fails */
#define M_RATE_B    0x04u /* component_rate_bytes_per_s: 64 */
#define M_RATE_S    0x08u /* component_rate_stanzas_per_s: 2 */
#define M_SMALL     0x10u /* small parser limits */
#define M_SMALL_OUT 0x20u /* out_buffer_max: 256 bytes */
#define M_ROUTER    0x40u /* the router delivers to the component */
#define M_SPLIT     0x80u /* reads of at most 7 bytes */

#define FZ_SID "00112233445566778899aabbccddeeff"

static struct {
    unsigned mode;
    comp_conn_t *c; /* the connection under test */
    c2s_server_t srv;
    c2s_conf_t conf;
    kn_common_conf_t cc;
    c2s_comps_t cs;
    struct ev_loop *loop;
    char link; /* srv.link points here: never dereferenced */
    bool echo;
    kn_buf_t got; /* what the component read */
} fz;

static c2s_comp_def_t fz_defs[] = {
    {"gw.localhost", "s3cret", "Gateway"},
    {"irc.localhost", "pw", NULL},
};

static bool fz_link_ready(const kn_link_t *l)
{
    (void)l;
    return !(fz.mode & M_NOT_READY);
}

static uint64_t fz_link_conn_id(const kn_link_t *l, uint64_t local)
{
    (void)l;
    return kn_conn_make(3, local);
}

static void fz_check_stanza(const kn_env_t *e, const void *pl, size_t len)
{
    comp_conn_t *c = fz.c;
    /* only a connection that passed the handshake speaks for a domain */
    if (c == NULL || c->def == NULL || !c->registered)
        abort();
    size_t dl = strlen(c->def->domain);
    const char *at = memchr(e->from, '@', e->from_len);
    const char *dom = at ? at + 1 : e->from;
    const char *end = memchr(dom, '/', e->from_len - (size_t)(dom - e->from));
    size_t n =
        end ? (size_t)(end - dom) : e->from_len - (size_t)(dom - e->from);
    if (n != dl || memcmp(dom, c->def->domain, dl) != 0 || e->to_len == 0)
        abort();
    kn_stanza_t *st = NULL;
    int rc = kn_xml_parse_stanza(pl, len, KN_NS_CLIENT, &st);
    /* stamping a prepared 'from' may push a stanza just under the limit
     * over it */
    if (rc == -KN_ETOOBIG && len > KN_XML_MAX_STANZA_DEFAULT - 4096)
        return;
    if (rc != 0 || strcmp(kn_stanza_ns(st, 0), KN_NS_CLIENT) != 0)
        abort();
    kn_stanza_unref(&st);
}

static int fz_link_send(kn_link_t *l, const kn_env_t *e, const void *pl,
                        size_t len)
{
    if (l != (kn_link_t *)&fz.link)
        abort();
    kn_buf_t b = KN_BUF_INIT;
    kn_env_t d;
    if (kn_env_encode(e, &b) != 0 || kn_env_decode(b.data, b.len, &d) != 0 ||
        d.kind != e->kind || d.from_len != e->from_len ||
        d.to_len != e->to_len || d.conn_id != e->conn_id)
        abort();
    kn_buf_free(&b);
    if (e->kind == KN_ENV_REGISTER) {
        if (comp_def_find(&fz.srv, e->node) == NULL)
            abort();
    } else if (e->kind == KN_ENV_STANZA && !(e->flags & KN_F_REROUTE)) {
        fz_check_stanza(e, pl, len);
    }
    return (fz.mode & M_SEND_FAIL) ? -KN_EIO : 0;
}

static void fz_listen(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    /* abstract namespace: nothing left on disk */
    int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
                     "kiln-fuzz-component-%ld", (long)getpid());
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sl) < 0 || listen(fd, 8) < 0)
        abort();
    fz.cs.lfd = fd;
}

static int fz_connect(void)
{
    struct sockaddr_un sa;
    socklen_t sl = sizeof(sa);
    if (getsockname(fz.cs.lfd, (struct sockaddr *)&sa, &sl) < 0)
        abort();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sl) < 0)
        abort();
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz.echo = getenv("KILN_FUZZ_ECHO") != NULL;
    kn_log_init("fuzz", fz.echo ? KN_LOG_DEBUG : KN_LOG_ERR);
    fz.loop = ev_loop_new(EVFLAG_AUTO);
    fz.cc.domain = "localhost";
    fz.conf.components = fz_defs;
    fz.conf.ncomponents = sizeof(fz_defs) / sizeof(fz_defs[0]);
    fz.conf.max_stanza_bytes = 65536;
    fz.conf.rate_close_after = 1;
    fz.srv.loop = fz.loop;
    fz.srv.cc = &fz.cc;
    fz.srv.conf = &fz.conf;
    fz.srv.link = (kn_link_t *)&fz.link;
    fz.srv.comps = &fz.cs;
    fz.cs.srv = &fz.srv;
    fz_listen();
    ev_io_init(&fz.cs.lio, comp_on_accept, fz.cs.lfd, EV_READ);
    fz.cs.lio.data = &fz.cs;
    ev_prepare_init(&fz.cs.reap, comp_on_reap);
    fz.cs.reap.data = &fz.cs;
    return 0;
}

/* What the component reads: written out and dropped (echoed with
 * KILN_FUZZ_ECHO=1). */
static void fz_drain(int peer)
{
    comp_conn_t *c = fz.c;
    if (c->fd >= 0 && c->out.len > c->out_off)
        comp_on_write(fz.loop, &c->wio, EV_WRITE);
    char buf[65536];
    ssize_t n;
    while ((n = recv(peer, buf, sizeof(buf), 0)) > 0) {
        if (fz.echo)
            fprintf(stderr, "<< %.*s\n", (int)n, buf);
        if (fz.got.len < (1u << 20))
            kn_buf_append(&fz.got, buf, (size_t)n);
    }
}

/* Nothing after our </stream:stream> (a stanza's text cannot hold the
 * tag: '<' is escaped), so nothing was written twice at the close. */
static void fz_check_output(void)
{
    static const char end[] = "</stream:stream>";
    const char *p = fz.got.data
                        ? memmem(fz.got.data, fz.got.len, end, sizeof(end) - 1)
                        : NULL;
    if (p != NULL && (size_t)(p - fz.got.data) + sizeof(end) - 1 != fz.got.len)
        abort();
}

/* The router's side: a message and an IQ for the component, and a
 * bounce of something it sent. */
static void fz_router(void)
{
    static const char *const pl[] = {
        "<message from='alice@localhost/x' to='bob@gw.localhost' type='chat' "
        "id='m1'><body>hi &amp; bye</body></message>",
        "<iq from='alice@localhost/x' to='gw.localhost' type='get' id='i1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        "<message from='bob@gw.localhost' to='alice@localhost' id='m2'>"
        "<body>x</body></message>",
    };
    for (size_t i = 0; i < 3 && fz.c->state == COMP_ST_READY; i++) {
        kn_env_t e = {0};
        e.kind = i == 2 ? KN_ENV_BOUNCE : KN_ENV_STANZA;
        e.stanza = i == 1 ? KN_ENV_ST_IQ : KN_ENV_ST_MESSAGE;
        e.type = i == 1 ? KN_ENV_TYPE_GET : KN_ENV_TYPE_CHAT;
        e.seq = KN_STE_ITEM_NOT_FOUND;
        e.conn_id = comp_conn_id(fz.c);
        if (!c2s_comp_on_message(&fz.srv, &e, pl[i], strlen(pl[i])))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fz.mode = data[0];
    data++;
    size--;
    fz.srv.scf.limits = (kn_xml_limits_t)KN_XML_LIMITS_DEFAULT;
    if (fz.mode & M_SMALL)
        fz.srv.scf.limits = (kn_xml_limits_t){1024, 8, 8, 512};
    fz.conf.comp_rate_bytes_per_s = (fz.mode & M_RATE_B) ? 64 : 0;
    fz.conf.comp_rate_stanzas_per_s = (fz.mode & M_RATE_S) ? 2 : 0;
    fz.conf.out_buffer_max = (fz.mode & M_SMALL_OUT) ? 256 : 1 << 20;

    int peer = fz_connect();
    comp_on_accept(fz.loop, &fz.cs.lio, EV_READ);
    comp_conn_t *c = fz.cs.conns;
    if (c == NULL || c->next != NULL)
        abort();
    fz.c = c;
    memcpy(c->sid, FZ_SID, sizeof(FZ_SID));
    bool routed = false;
    size_t at = 0;
    while (at <= size && c->state != COMP_ST_CLOSED) {
        const uint8_t *cut = memchr(data + at, 0xff, size - at);
        size_t n = cut ? (size_t)(cut - (data + at)) : size - at;
        size_t step = (fz.mode & M_SPLIT) ? 7 : n;
        for (size_t k = 0; k < n && c->state != COMP_ST_CLOSED; k += step) {
            size_t m = n - k < step ? n - k : step;
            if (send(peer, data + at + k, m, MSG_NOSIGNAL) != (ssize_t)m)
                abort(); /* a seed is far below the socket's buffer */
            comp_on_read(fz.loop, &c->rio, EV_READ);
            /* the throttle timer's end, as if its time had come */
            if (ev_is_active(&c->throttle)) {
                ev_timer_stop(fz.loop, &c->throttle);
                comp_on_throttle(fz.loop, &c->throttle, EV_TIMER);
            }
            fz_drain(peer);
        }
        if ((fz.mode & M_ROUTER) && !routed && c->state == COMP_ST_READY) {
            routed = true;
            fz_router();
            fz_drain(peer);
        }
        at += n + 1;
    }
    fz_drain(peer); /* what the closing connection still writes */
    fz_check_output();
    kn_buf_reset(&fz.got);
    /* the component goes away; then the router still has one for it */
    close(peer);
    comp_on_read(fz.loop, &c->rio, EV_READ);
    if (c->state != COMP_ST_CLOSED)
        abort(); /* EOF must close */
    if (c->def != NULL) {
        static const char pl[] = "<message from='alice@localhost/x' "
                                 "to='bob@gw.localhost' type='chat'><body>late"
                                 "</body></message>";
        kn_env_t e = {0};
        e.kind = KN_ENV_STANZA;
        e.stanza = KN_ENV_ST_MESSAGE;
        e.type = KN_ENV_TYPE_CHAT;
        e.from = "alice@localhost/x";
        e.from_len = strlen(e.from);
        e.to = "bob@gw.localhost";
        e.to_len = strlen(e.to);
        e.conn_id = comp_conn_id(c);
        if (!c2s_comp_on_message(&fz.srv, &e, pl, sizeof(pl) - 1))
            abort();
    }
    fz.c = NULL;
    comp_on_reap(fz.loop, &fz.cs.reap, 0);
    if (fz.cs.conns != NULL)
        abort();
    kn_buf_free(&fz.cs.scratch);
    return 0;
}
