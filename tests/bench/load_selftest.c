/*
 * load_selftest.c - "kiln-load selftest": the pieces of the client that
 * must be exact, checked without a server. The stream scanner is fed a
 * canned server stream whole, byte by byte and in every two-way split;
 * SCRAM is checked against the example of RFC 5802 section 5; the SCRAM
 * key cache file is written, read back, and missed on a changed password.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kn_buf.h"
#include "load.h"
#include "load_conn.h"
#include "load_sasl.h"
#include "load_scache.h"
#include "load_xml.h"

static int st_fail;

#define ST_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "selftest: %s:%d: %s\n", __FILE__, __LINE__,       \
                    #cond);                                                    \
            st_fail++;                                                         \
        }                                                                      \
    } while (0)

static const char st_stream[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' id='x>y' from='h'>"
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
    "<required/></starttls></stream:features>"
    " \n"
    "<message from='a@h/r' to=\"b@h\" x='/>'><body>kl 1 2 &lt;x&gt;</body>"
    "<!-- a > comment --><x><![CDATA[ </message> ]]></x></message>"
    "<presence from='c@h' />"
    "<iq type='result' id='b1'><bind><jid>u@h/kl</jid></bind></iq>"
    "</stream:stream>";

static const char *const st_expect[] = {
    "OPEN", "stream:features", "message", "presence", "iq", "CLOSE",
};

/* Feed st_stream in chunks: [0,cut) then the rest 'step' bytes at a time,
 * consuming processed input as a connection does; check the events. */
static void st_feed(size_t cut, size_t step)
{
    load_xml_t x;
    kn_buf_t in = KN_BUF_INIT;
    size_t total = strlen(st_stream), fed = 0, ne = 0;
    load_xml_reset(&x, 4096);
    while (fed < total) {
        size_t n = fed < cut ? cut - fed : step;
        if (fed + n > total)
            n = total - fed;
        kn_buf_append(&in, st_stream + fed, n);
        fed += n;
        size_t done = 0, s, e;
        int ev;
        while ((ev = load_xml_next(&x, in.data, in.len, &s, &e)) !=
               LOAD_XML_MORE) {
            ST_CHECK(ev != LOAD_XML_ERROR);
            if (ev == LOAD_XML_ERROR || ne >= 6)
                goto out;
            const char *want = st_expect[ne++];
            if (ev == LOAD_XML_OPEN)
                ST_CHECK(strcmp(want, "OPEN") == 0);
            else if (ev == LOAD_XML_CLOSE)
                ST_CHECK(strcmp(want, "CLOSE") == 0);
            else
                ST_CHECK(load_xml_is(in.data + s, e - s, want));
            if (ev == LOAD_XML_ELEMENT && strcmp(want, "message") == 0) {
                size_t bl, vl;
                const char *b =
                    load_xml_child_text(in.data + s, e - s, "body", &bl);
                ST_CHECK(b && bl == 16 && memcmp(b, "kl 1 2 ", 7) == 0);
                const char *v = load_xml_attr(in.data + s, e - s, "to", &vl);
                ST_CHECK(v && vl == 3 && memcmp(v, "b@h", 3) == 0);
                ST_CHECK(e - s == strlen("<message from='a@h/r' to=\"b@h\" "
                                         "x='/>'><body>kl 1 2 &lt;x&gt;"
                                         "</body><!-- a > comment --><x>"
                                         "<![CDATA[ </message> ]]></x>"
                                         "</message>"));
            }
            if (ev == LOAD_XML_ELEMENT && strcmp(want, "iq") == 0) {
                size_t jl;
                const char *j =
                    load_xml_child_text(in.data + s, e - s, "jid", &jl);
                ST_CHECK(j && jl == 6 && memcmp(j, "u@h/kl", 6) == 0);
            }
            done = e;
        }
        if (done) {
            kn_buf_consume(&in, done);
            load_xml_shift(&x, done);
        }
    }
out:
    ST_CHECK(ne == 6);
    kn_buf_free(&in);
}

static void st_scram(void)
{
    load_scram_t s;
    load_scram_keys_t cache;
    kn_buf_t out = KN_BUF_INIT, b = KN_BUF_INIT;
    memset(&cache, 0, sizeof(cache));
    for (int round = 0; round < 2; round++) { /* 2nd round: cache hit */
        load_scram_start(&s, "user", "pencil", &cache,
                         "fyko+d2lbbFgONRv9qkxdawL", &out);
        uint8_t raw[256];
        long n = load_b64_decode(out.data, out.len, raw, sizeof(raw));
        ST_CHECK(n == 36 &&
                 memcmp(raw, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", 36) == 0);
        const char *sf = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                         "s=QSXCR+Q6sek8bf92,i=4096";
        kn_buf_reset(&b);
        load_b64_encode((const uint8_t *)sf, strlen(sf), &b);
        ST_CHECK(load_scram_step(&s, b.data, b.len, &out) == 0);
        n = load_b64_decode(out.data, out.len, raw, sizeof(raw) - 1);
        raw[n > 0 ? n : 0] = 0;
        ST_CHECK(strcmp((char *)raw,
                        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                        "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=") == 0);
        const char *sfin = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";
        kn_buf_reset(&b);
        load_b64_encode((const uint8_t *)sfin, strlen(sfin), &b);
        ST_CHECK(load_scram_verify(&s, b.data, b.len) == 0);
        load_scram_clear(&s);
    }
    ST_CHECK(cache.iterations == 4096);
    kn_buf_free(&out);
    kn_buf_free(&b);
}

static void st_scache_conns(load_conn_t *c, size_t first, size_t n)
{
    memset(c, 0, n * sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i].user = first + i;
}

static void st_scache(void)
{
    char path[] = "/tmp/kiln-load-selftest-XXXXXX";
    int fd = mkstemp(path);
    ST_CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    load_opts_t o = {.user_fmt = "user%d"};
    load_conn_t a[3], b[3];
    st_scache_conns(a, 5, 3); /* users 5, 6, 7 */
    for (size_t i = 0; i < 3; i += 2) {
        a[i].keys.salt_len = 12 + i;
        memset(a[i].keys.salt, 0xa0 + (int)i, a[i].keys.salt_len);
        a[i].keys.iterations = 4096;
        memset(a[i].keys.client_key, 0x11 + (int)i, LOAD_SHA1_LEN);
        memset(a[i].keys.server_key, 0x22 + (int)i, LOAD_SHA1_LEN);
    }
    ST_CHECK(load_scache_save(path, &o, a, 3) == 2);
    ST_CHECK(load_scache_save(path, &o, a, 3) == 0); /* once per user */
    st_scache_conns(b, 5, 3);
    ST_CHECK(load_scache_load(path, &o, b, 3) == 2);
    ST_CHECK(b[0].keys_known && !b[1].keys_known && b[2].keys_known);
    ST_CHECK(
        b[2].keys.salt_len == 14 && b[2].keys.iterations == 4096 &&
        memcmp(b[2].keys.salt, a[2].keys.salt, 14) == 0 &&
        memcmp(b[2].keys.client_key, a[2].keys.client_key, LOAD_SHA1_LEN) ==
            0 &&
        memcmp(b[2].keys.server_key, a[2].keys.server_key, LOAD_SHA1_LEN) == 0);
    st_scache_conns(b, 7, 3); /* users 7, 8, 9: only 7 is known */
    ST_CHECK(load_scache_load(path, &o, b, 3) == 1 && b[0].keys_known);
    load_opts_t other = {.user_fmt = "user%d", .password_fmt = "pw%d"};
    st_scache_conns(b, 5, 3); /* another password: every line a miss */
    ST_CHECK(load_scache_load(path, &other, b, 3) == 0);
    unlink(path);
    ST_CHECK(load_scache_load(path, &o, b, 3) == 0); /* no file: empty */
}

static void st_hist(void)
{
    load_hist_t *h = calloc(1, sizeof(*h));
    for (uint64_t v = 1; v <= 100000; v++)
        load_hist_record(h, v * 1000); /* 1 us .. 100 ms */
    uint64_t p50 = load_hist_percentile(h, 50);
    uint64_t p99 = load_hist_percentile(h, 99);
    ST_CHECK(p50 >= 50000000 && p50 <= 50000000 * 1.01);
    ST_CHECK(p99 >= 99000000 && p99 <= 99000000 * 1.01);
    ST_CHECK(load_hist_percentile(h, 100) == 100000000);
    load_hist_t *g = calloc(1, sizeof(*g));
    load_hist_record(g, 5);
    load_hist_merge(h, g);
    ST_CHECK(h->total == 100001 && h->min == 5);
    free(h);
    free(g);
}

int load_selftest(void)
{
    size_t total = strlen(st_stream);
    st_feed(total, 1);
    for (size_t cut = 1; cut < total; cut++)
        st_feed(cut, total);
    st_feed(0, 1);
    st_feed(0, 7);
    st_scram();
    st_scache();
    st_hist();
    printf("selftest: %s (%d failures)\n", st_fail ? "FAILED" : "ok", st_fail);
    return st_fail;
}
