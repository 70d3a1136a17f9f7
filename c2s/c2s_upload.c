/*
 * c2s_upload.c - XEP-0363 HTTP file upload: slots (XMPP) and the PUT and
 * GET of the files (HTTP, from c2s_http_proto.c). See c2s_upload.h for
 * the storage layout and the URLs.
 *
 * The event loop is never held for long: a PUT writes each piece of body
 * as it was read (one socket read, 16 KiB at most), a GET reads the file
 * in pieces of at most 64 KiB as the socket drains (C2S_HTTP_SEND). The
 * files are regular files in a local or shared directory; those calls do
 * not wait on a peer.
 */
#include "c2s_upload.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c2s_http.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"

#define UPLOAD_NAME_MAX 100
#define UPLOAD_TYPE_MAX 100

struct c2s_upload_req {
    int fd;
    bool put;
    uint64_t size, done; /* PUT: announced and written; GET: end, sent */
    char *part, *final, *typef;
    char *type; /* PUT: the slot's type */
};

/* ---- pure helpers ---------------------------------------------------------
 */

void c2s_upload_hmac(const char *secret, const char *msg, size_t len,
                     char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdl = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
         len, md, &mdl);
    for (unsigned i = 0; i < 32 && i < mdl; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

void c2s_upload_safe_name(const char *name, kn_buf_t *out)
{
    kn_buf_reset(out);
    const char *b = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            b = p + 1;
    while (*b == '.')
        b++;
    for (; *b && out->len < UPLOAD_NAME_MAX; b++) {
        char c = *b;
        bool ok = isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
        kn_buf_append_byte(out, (uint8_t)(ok ? c : '_'));
    }
    if (out->len == 0)
        kn_buf_append_str(out, "file");
    kn_buf_append_byte(out, 0);
    out->len--;
}

bool c2s_upload_type_ok(const char *t)
{
    size_t n = strlen(t), slash = 0;
    if (n == 0 || n > UPLOAD_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '/')
            slash++;
        else if (!isalnum(c) && strchr("!#$&^_.+-", c) == NULL)
            return false;
    }
    return slash == 1 && t[0] != '/' && t[n - 1] != '/';
}

bool c2s_upload_type_allowed(const char *list, const char *t)
{
    if (list == NULL || *list == '\0')
        return true;
    size_t tl = strcspn(t, "; ");
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *b = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        size_t l = (size_t)(p - b);
        if (l == 0)
            continue;
        if (l >= 2 && b[l - 1] == '*' && b[l - 2] == '/') {
            if (tl > l - 1 && strncasecmp(b, t, l - 1) == 0)
                return true;
        } else if (l == tl && strncasecmp(b, t, l) == 0) {
            return true;
        }
    }
    return false;
}

static bool upload_num(const char *p, const char *e, uint64_t *v)
{
    if (p == e)
        return false;
    uint64_t x = 0;
    for (; p < e; p++) {
        if (!isdigit((unsigned char)*p) || x > UINT64_MAX / 10 - 10)
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *v = x;
    return true;
}

int c2s_upload_range(const char *hdr, uint64_t size, uint64_t *first,
                     uint64_t *last)
{
    if (hdr == NULL || strncasecmp(hdr, "bytes=", 6) != 0)
        return 0;
    const char *p = hdr + 6;
    while (*p == ' ')
        p++;
    const char *e = p + strlen(p);
    while (e > p && e[-1] == ' ')
        e--;
    if (memchr(p, ',', (size_t)(e - p)) != NULL)
        return 0; /* several ranges: the whole file (RFC 9110 allows it) */
    const char *dash = memchr(p, '-', (size_t)(e - p));
    if (dash == NULL)
        return 0;
    uint64_t a, b;
    if (dash == p) { /* suffix: the last b bytes */
        if (!upload_num(dash + 1, e, &b))
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!upload_num(p, dash, &a))
        return 0;
    if (dash + 1 == e)
        b = UINT64_MAX;
    else if (!upload_num(dash + 1, e, &b) || b < a)
        return 0;
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

/* ---- the slot -------------------------------------------------------------
 */

static void upload_owner(const c2s_upload_conf_t *uc, const char *bare,
                         char out[17])
{
    kn_buf_t m = KN_BUF_INIT;
    kn_buf_printf(&m, "owner\n%s", bare);
    char hex[65];
    c2s_upload_hmac(uc->secret, m.data, m.len, hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
    kn_buf_free(&m);
}

/* Bytes stored under dir/owner (files and parts; not the .type files). */
static uint64_t upload_used(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l == 0 || strcmp(de->d_name, ".") == 0 ||
            strcmp(de->d_name, "..") == 0 ||
            (l > 5 && strcmp(de->d_name + l - 5, ".type") == 0))
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(sb.st_mode))
            sum += (uint64_t)sb.st_size;
    }
    closedir(d);
    return sum;
}

static void upload_pct(kn_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '.' || c == '_' || c == '-')
            kn_buf_append_byte(b, c);
        else
            kn_buf_printf(b, "%%%02X", c);
    }
}

c2s_upload_rc_t c2s_upload_slot(const c2s_upload_conf_t *uc, const char *bare,
                                const char *name, uint64_t size,
                                const char *type, time_t now, kn_buf_t *put,
                                kn_buf_t *get)
{
    if (!c2s_upload_type_ok(type))
        return C2S_UPLOAD_BAD_REQUEST;
    if (size > uc->max_bytes)
        return C2S_UPLOAD_TOO_LARGE;
    if (!c2s_upload_type_allowed(uc->types, type))
        return C2S_UPLOAD_TYPE;
    char owner[17];
    upload_owner(uc, bare, owner);
    kn_buf_t path = KN_BUF_INIT, nm = KN_BUF_INIT, m = KN_BUF_INIT;
    c2s_upload_rc_t rc = C2S_UPLOAD_OK;
    kn_buf_printf(&path, "%s/%s", uc->dir, owner);
    if (uc->quota_bytes > 0 &&
        upload_used(path.data) + size > uc->quota_bytes) {
        rc = C2S_UPLOAD_QUOTA;
        goto out;
    }
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        rc = C2S_UPLOAD_INTERNAL;
        goto out;
    }
    char token[33];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    c2s_upload_safe_name(name, &nm);
    char sig[65];
    long long exp = (long long)now + uc->slot_ttl;
    kn_buf_printf(&m, "PUT\n%s/%s/%s\n%" PRIu64 "\n%s\n%lld", owner, token,
                  nm.data, size, type, exp);
    c2s_upload_hmac(uc->secret, m.data, m.len, sig);
    kn_buf_reset(put);
    kn_buf_printf(put, "%s/upload/%s/%s/%s?e=%lld&n=%" PRIu64 "&t=", uc->url,
                  owner, token, nm.data, exp, size);
    upload_pct(put, type);
    kn_buf_printf(put, "&s=%s", sig);
    kn_buf_reset(&m);
    kn_buf_printf(&m, "GET\n%s/%s/%s", owner, token, nm.data);
    c2s_upload_hmac(uc->secret, m.data, m.len, sig);
    kn_buf_reset(get);
    kn_buf_printf(get, "%s/upload/%s/%s/%s?s=%s", uc->url, owner, token,
                  nm.data, sig);
out:
    kn_buf_free(&path);
    kn_buf_free(&nm);
    kn_buf_free(&m);
    return rc;
}

/* ---- HTTP -----------------------------------------------------------------
 */

/* The value of key in a query string, percent-decoded, into out (NUL
 * terminated). false when absent or malformed. */
static bool upload_query(const char *q, size_t ql, const char *key,
                         kn_buf_t *out)
{
    size_t kl = strlen(key);
    const char *e = q + ql;
    const char *p = q;
    while (p < e) {
        const char *amp = memchr(p, '&', (size_t)(e - p));
        const char *end = amp ? amp : e;
        if ((size_t)(end - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
            kn_buf_reset(out);
            for (const char *v = p + kl + 1; v < end; v++) {
                if (*v == '%') {
                    if (end - v < 3 || !isxdigit((unsigned char)v[1]) ||
                        !isxdigit((unsigned char)v[2]))
                        return false;
                    char hx[3] = {v[1], v[2], 0};
                    char c = (char)strtol(hx, NULL, 16);
                    if (c == '\0')
                        return false;
                    kn_buf_append_byte(out, (uint8_t)c);
                    v += 2;
                } else {
                    kn_buf_append_byte(out, (uint8_t)*v);
                }
            }
            kn_buf_append_byte(out, 0);
            out->len--;
            return true;
        }
        p = end + 1;
    }
    return false;
}

/* path (after /upload/) is owner/token/name with the shapes we give out. */
static bool upload_split(const char *path, size_t plen, char owner[17],
                         char token[33], kn_buf_t *name)
{
    if (plen < 16 + 1 + 32 + 2 || path[16] != '/' || path[49] != '/')
        return false;
    for (size_t i = 0; i < 49; i++) {
        if (i == 16)
            continue;
        if (!isxdigit((unsigned char)path[i]) ||
            isupper((unsigned char)path[i]))
            return false;
    }
    memcpy(owner, path, 16);
    owner[16] = '\0';
    memcpy(token, path + 17, 32);
    token[32] = '\0';
    kn_buf_reset(name);
    kn_buf_append(name, path + 50, plen - 50);
    kn_buf_append_byte(name, 0);
    name->len--;
    kn_buf_t safe = KN_BUF_INIT;
    c2s_upload_safe_name(name->data, &safe);
    bool ok = strcmp(safe.data, name->data) == 0;
    kn_buf_free(&safe);
    return ok;
}

static bool upload_sig_ok(const char *secret, const kn_buf_t *msg,
                          const char *sig)
{
    char want[65];
    c2s_upload_hmac(secret, msg->data, msg->len, want);
    if (strlen(sig) != 64)
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < 64; i++)
        d |= (unsigned char)(want[i] ^ sig[i]);
    return d == 0;
}

void c2s_upload_req_free(c2s_upload_req_t **rp)
{
    c2s_upload_req_t *r = *rp;
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->put && r->part != NULL)
        unlink(r->part); /* unfinished: nothing half-written stays */
    free(r->part);
    free(r->final);
    free(r->typef);
    free(r->type);
    free(r);
    *rp = NULL;
}

static char *upload_strf(const char *dir, const char *owner, const char *tok,
                         const char *fmt)
{
    kn_buf_t b = KN_BUF_INIT;
    kn_buf_printf(&b, fmt, dir, owner, tok);
    return kn_buf_release(&b, NULL);
}

int c2s_upload_put_begin(c2s_http_proto_t *h, const char *path, size_t plen,
                         const char *query, size_t qlen, const char **why)
{
    const c2s_upload_conf_t *uc = h->cf->upload;
    char owner[17], token[33];
    kn_buf_t name = KN_BUF_INIT, e = KN_BUF_INIT, n = KN_BUF_INIT,
             t = KN_BUF_INIT, s = KN_BUF_INIT, m = KN_BUF_INIT;
    int st = 0;
    uint64_t exp = 0, size = 0;
    if (!upload_split(path, plen, owner, token, &name) ||
        !upload_query(query, qlen, "e", &e) ||
        !upload_query(query, qlen, "n", &n) ||
        !upload_query(query, qlen, "t", &t) ||
        !upload_query(query, qlen, "s", &s) ||
        !upload_num(e.data, e.data + e.len, &exp) ||
        !upload_num(n.data, n.data + n.len, &size)) {
        st = 403;
        *why = "not an upload slot";
        goto out;
    }
    kn_buf_printf(&m, "PUT\n%s/%s/%s\n%" PRIu64 "\n%s\n%" PRIu64, owner, token,
                  name.data, size, t.data, exp);
    if (!upload_sig_ok(uc->secret, &m, s.data)) {
        st = 403;
        *why = "bad signature";
        goto out;
    }
    if ((uint64_t)time(NULL) > exp) {
        st = 403;
        *why = "the upload slot expired";
        goto out;
    }
    if (!(h->p.flags & F_CONTENTLENGTH)) {
        st = 411;
        *why = "Content-Length required";
        goto out;
    }
    if (h->p.content_length > uc->max_bytes) {
        st = 413;
        *why = "larger than the upload limit";
        goto out;
    }
    if (h->p.content_length != size) {
        st = 400;
        *why = "Content-Length differs from the slot's size";
        goto out;
    }
    const char *ct = h->hdr[C2S_HH_CONTENT_TYPE];
    if (ct == NULL || strlen(ct) != t.len || strncasecmp(ct, t.data, t.len)) {
        st = 400;
        *why = "Content-Type differs from the slot's type";
        goto out;
    }
    c2s_upload_req_t *r = kn_calloc(1, sizeof(*r));
    r->fd = -1;
    r->put = false; /* nothing to unlink until the part exists */
    r->size = size;
    r->final = upload_strf(uc->dir, owner, token, "%s/%s/%s");
    r->typef = upload_strf(uc->dir, owner, token, "%s/%s/%s.type");
    r->part = upload_strf(uc->dir, owner, token, "%s/%s/.%s.part");
    r->type = kn_strdup(t.data);
    struct stat sb;
    if (stat(r->final, &sb) == 0) {
        c2s_upload_req_free(&r);
        st = 409;
        *why = "this slot was used already";
        goto out;
    }
    kn_buf_t d = KN_BUF_INIT;
    kn_buf_printf(&d, "%s/%s", uc->dir, owner);
    if (mkdir(d.data, 0750) < 0 && errno != EEXIST)
        kn_log_warn("upload: mkdir %s: %s", d.data, strerror(errno));
    kn_buf_free(&d);
    r->fd = open(r->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (r->fd < 0) {
        st = errno == EEXIST ? 409 : 500;
        *why = errno == EEXIST ? "this slot is being used"
                               : "could not store the file";
        if (st == 500)
            kn_log_warn("upload: %s: %s", r->part, strerror(errno));
        c2s_upload_req_free(&r);
        goto out;
    }
    r->put = true;
    h->up = r;
out:
    kn_buf_free(&name);
    kn_buf_free(&e);
    kn_buf_free(&n);
    kn_buf_free(&t);
    kn_buf_free(&s);
    kn_buf_free(&m);
    return st;
}

int c2s_upload_put_body(c2s_upload_req_t *r, const char *at, size_t n)
{
    while (n > 0) {
        ssize_t w = write(r->fd, at, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            kn_log_warn("upload: write %s: %s", r->part, strerror(errno));
            return -KN_EIO;
        }
        at += w;
        n -= (size_t)w;
        r->done += (uint64_t)w;
    }
    return 0;
}

void c2s_upload_put_end(c2s_http_proto_t *h)
{
    c2s_upload_req_t *r = h->up;
    int fd = open(r->typef, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = r->done == r->size && fd >= 0 &&
              write(fd, r->type, strlen(r->type)) == (ssize_t)strlen(r->type);
    if (fd >= 0)
        close(fd);
    ok = ok && close(r->fd) == 0;
    r->fd = -1;
    if (ok && rename(r->part, r->final) == 0) {
        r->put = false; /* keep it */
        kn_buf_t extra = KN_BUF_INIT;
        c2s_http_proto_cors(h, &extra);
        c2s_http_proto_respond(h, 201, "text/plain; charset=utf-8", "stored\n",
                               7, extra.data);
        kn_buf_free(&extra);
    } else {
        unlink(r->typef);
        c2s_http_proto_error(h, 500, "could not store the file", NULL);
    }
    c2s_upload_req_free(&h->up);
}

/* Types a browser may show inline; the rest is a download. */
static bool upload_inline(const char *type)
{
    static const char *const ok[] = {
        "image/png",  "image/jpeg", "image/gif",  "image/webp", "audio/ogg",
        "audio/mpeg", "video/mp4",  "video/webm", "text/plain",
    };
    for (size_t i = 0; i < KN_ARRAY_LEN(ok); i++)
        if (strcasecmp(type, ok[i]) == 0)
            return true;
    return false;
}

void c2s_upload_get(c2s_http_proto_t *h, const char *path, size_t plen,
                    const char *query, size_t qlen)
{
    const c2s_upload_conf_t *uc = h->cf->upload;
    char owner[17], token[33];
    kn_buf_t name = KN_BUF_INIT, s = KN_BUF_INIT, m = KN_BUF_INIT,
             extra = KN_BUF_INIT;
    char *final = NULL, *typef = NULL;
    int fd = -1;
    if (!upload_split(path, plen, owner, token, &name) ||
        !upload_query(query, qlen, "s", &s)) {
        c2s_http_proto_error(h, 403, "not an upload URL", NULL);
        goto out;
    }
    kn_buf_printf(&m, "GET\n%s/%s/%s", owner, token, name.data);
    if (!upload_sig_ok(uc->secret, &m, s.data)) {
        c2s_http_proto_error(h, 403, "bad signature", NULL);
        goto out;
    }
    final = upload_strf(uc->dir, owner, token, "%s/%s/%s");
    typef = upload_strf(uc->dir, owner, token, "%s/%s/%s.type");
    fd = open(final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        c2s_http_proto_error(h, 404, "no such file", NULL);
        goto out;
    }
    char type[UPLOAD_TYPE_MAX + 1] = "application/octet-stream";
    int tfd = open(typef, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (tfd >= 0) {
        ssize_t n = read(tfd, type, UPLOAD_TYPE_MAX);
        close(tfd);
        type[n > 0 ? n : 0] = '\0';
        if (!c2s_upload_type_ok(type))
            strcpy(type, "application/octet-stream");
    }
    uint64_t size = (uint64_t)sb.st_size, first = 0, last = 0;
    int rr = c2s_upload_range(h->hdr[C2S_HH_RANGE], size, &first, &last);
    c2s_http_proto_cors(h, &extra);
    kn_buf_append_str(&extra, "Accept-Ranges: bytes\r\n");
    if (rr < 0) {
        kn_buf_printf(&extra, "Content-Range: bytes */%" PRIu64 "\r\n", size);
        c2s_http_proto_error(h, 416, "range not satisfiable", extra.data);
        goto out;
    }
    if (rr == 0) {
        first = 0;
        last = size == 0 ? 0 : size - 1;
    } else {
        kn_buf_printf(&extra,
                      "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64
                      "\r\n",
                      first, last, size);
    }
    uint64_t len = size == 0 ? 0 : last - first + 1;
    /* The name was made safe when the slot was given: no quotes, no
     * separators. Inline only for types a browser cannot run. */
    kn_buf_printf(&extra,
                  "Content-Disposition: %s; filename=\"%s\"\r\n"
                  "Content-Security-Policy: default-src 'none'; sandbox\r\n"
                  "Cache-Control: private, max-age=86400\r\n",
                  upload_inline(type) ? "inline" : "attachment", name.data);
    c2s_http_proto_head(h, rr == 1 ? 206 : 200, type, (size_t)len, extra.data);
    if (h->p.method == HTTP_HEAD || len == 0)
        goto out;
    if (lseek(fd, (off_t)first, SEEK_SET) < 0) {
        /* the head is out: end the connection rather than lie */
        h->act = C2S_HTTP_CLOSE;
        goto out;
    }
    c2s_upload_req_t *r = kn_calloc(1, sizeof(*r));
    r->fd = fd;
    fd = -1;
    r->size = len;
    h->up = r;
    h->act = C2S_HTTP_SEND;
out:
    if (fd >= 0)
        close(fd);
    free(final);
    free(typef);
    kn_buf_free(&name);
    kn_buf_free(&s);
    kn_buf_free(&m);
    kn_buf_free(&extra);
}

bool c2s_upload_pull(c2s_upload_req_t *r, kn_buf_t *out, size_t max)
{
    uint64_t left = r->size - r->done;
    size_t want = left < max ? (size_t)left : max;
    kn_buf_reserve(out, want);
    ssize_t n = read(r->fd, out->data + out->len, want);
    if (n < 0 && errno == EINTR)
        return false;
    if (n <= 0) {
        /* shrunk under us: pad, the length was announced */
        memset(out->data + out->len, 0, want);
        n = (ssize_t)want;
    }
    out->len += (size_t)n;
    r->done += (uint64_t)n;
    return r->done >= r->size;
}
