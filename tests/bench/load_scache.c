/*
 * load_scache.c - the SCRAM key cache file (see load_scache.h).
 */
#include "load_scache.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kn_buf.h"
#include "kn_err.h"

#define SCACHE_LINE_MAX 1024

static void scache_user_pass(const load_opts_t *o, size_t n, char *user,
                             size_t usz, char *pass, size_t psz)
{
    load_fmt_user(user, usz, o->user_fmt, n);
    if (o->password_fmt != NULL)
        load_fmt_user(pass, psz, o->password_fmt, n);
    else
        snprintf(pass, psz, "%s", user);
}

static void scache_hex(kn_buf_t *b, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char two[2] = {digits[p[i] >> 4], digits[p[i] & 15]};
        kn_buf_append(b, two, 2);
    }
}

static int scache_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode exactly the hex string s into at most max bytes; the length, or
 * -1 when s is not lowercase hex of even length that fits. */
static long scache_unhex(const char *s, uint8_t *out, size_t max)
{
    size_t len = strlen(s);
    if (len % 2 != 0 || len / 2 > max)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = scache_nibble(s[2 * i]), lo = scache_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

static void scache_pwtag(const char *pass, char out[9])
{
    uint8_t md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)pass, strlen(pass), md);
    snprintf(out, 9, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

/* The user number of name under opts->user_fmt, or -1. */
static long scache_user_number(const load_opts_t *o, const char *name)
{
    const char *pct = strstr(o->user_fmt, "%d");
    if (pct == NULL)
        return -1;
    size_t pre = (size_t)(pct - o->user_fmt);
    const char *suffix = pct + 2;
    size_t len = strlen(name), sl = strlen(suffix);
    if (len <= pre + sl || strncmp(name, o->user_fmt, pre) != 0 ||
        strcmp(name + len - sl, suffix) != 0)
        return -1;
    long n = 0;
    for (const char *p = name + pre; p < name + len - sl; p++) {
        if (*p < '0' || *p > '9' || n > 100000000)
            return -1;
        n = n * 10 + (*p - '0');
    }
    return n;
}

int load_scache_load(const char *path, const load_opts_t *opts,
                     load_conn_t *conns, size_t count)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, "kiln-load: --scram-cache %s: %s\n", path,
                strerror(errno));
        return -KN_EIO;
    }
    if (count == 0) {
        fclose(f);
        return 0;
    }
    size_t first = conns[0].user;
    char line[SCACHE_LINE_MAX];
    size_t lineno = 0;
    int filled = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char name[256], tag[16], salt[160], ck[64], sk[64];
        unsigned iter;
        if (sscanf(line, "%255s %15s %u %159s %63s %63s", name, tag, &iter,
                   salt, ck, sk) != 6 ||
            iter == 0) {
            fprintf(stderr, "kiln-load: --scram-cache %s:%zu: malformed\n",
                    path, lineno);
            fclose(f);
            return -KN_EIO;
        }
        long n = scache_user_number(opts, name);
        if (n < 0 || (size_t)n < first || (size_t)n >= first + count)
            continue;
        load_conn_t *c = &conns[(size_t)n - first];
        char user[256], pass[256], want[9];
        scache_user_pass(opts, (size_t)n, user, sizeof(user), pass,
                         sizeof(pass));
        scache_pwtag(pass, want);
        if (strcmp(user, name) != 0 || strcmp(tag, want) != 0)
            continue; /* another user format, or the password changed */
        load_scram_keys_t k = {.iterations = iter};
        long sl = scache_unhex(salt, k.salt, sizeof(k.salt));
        if (sl <= 0 ||
            scache_unhex(ck, k.client_key, LOAD_SHA1_LEN) != LOAD_SHA1_LEN ||
            scache_unhex(sk, k.server_key, LOAD_SHA1_LEN) != LOAD_SHA1_LEN) {
            fprintf(stderr, "kiln-load: --scram-cache %s:%zu: malformed\n",
                    path, lineno);
            fclose(f);
            return -KN_EIO;
        }
        k.salt_len = (size_t)sl;
        SHA1(k.client_key, LOAD_SHA1_LEN, k.stored_key);
        if (!c->keys_known)
            filled++;
        c->keys = k; /* a later line of the same user wins */
        c->keys_known = true;
    }
    fclose(f);
    return filled;
}

int load_scache_save(const char *path, const load_opts_t *opts,
                     load_conn_t *conns, size_t count)
{
    kn_buf_t b = KN_BUF_INIT;
    int lines = 0;
    for (size_t i = 0; i < count; i++) {
        load_conn_t *c = &conns[i];
        if (c->keys_known || c->keys.salt_len == 0)
            continue;
        char user[256], pass[256], tag[9];
        scache_user_pass(opts, c->user, user, sizeof(user), pass, sizeof(pass));
        scache_pwtag(pass, tag);
        kn_buf_printf(&b, "%s %s %u ", user, tag, c->keys.iterations);
        scache_hex(&b, c->keys.salt, c->keys.salt_len);
        kn_buf_append(&b, " ", 1);
        scache_hex(&b, c->keys.client_key, LOAD_SHA1_LEN);
        kn_buf_append(&b, " ", 1);
        scache_hex(&b, c->keys.server_key, LOAD_SHA1_LEN);
        kn_buf_append(&b, "\n", 1);
        c->keys_known = true;
        lines++;
    }
    int rc = lines;
    if (lines > 0) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        /* One write: appends of several workers do not interleave. */
        if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len) {
            fprintf(stderr, "kiln-load: --scram-cache %s: %s\n", path,
                    strerror(errno));
            rc = -KN_EIO;
        }
        if (fd >= 0)
            close(fd);
    }
    kn_buf_free(&b);
    return rc;
}
