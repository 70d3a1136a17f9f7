/*
 * pres_mam_req.c - the pure half of the archive (pres_mam.h): query, RSM
 * and preference parsing, ids and time stamps. No I/O;
 * tests/unit/test_presenced_mam.c drives it.
 *
 * A note on bounds. Every filter becomes an exclusive id bound: after-id
 * and RSM <after/> raise lo, before-id and RSM <before/> lower hi, start
 * and end become (ms << 16) - 1 and ((ms + 1) << 16) (ids carry their
 * millisecond). So a page is `lo < id < hi` in id order, and the next
 * page starts after the last id of this one: no gap, no duplicate, even
 * while messages are being archived.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kn_buf.h"
#include "kn_jid.h"
#include "kn_mem.h"
#include "pres_mam.h"

const char *const mam_pref_names[] = {"always", "never", "roster", NULL};

int64_t mam_id_parse(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 19)
        return -1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            return -1;
    unsigned long long v = strtoull(s, NULL, 10);
    if (v == 0 || v > (unsigned long long)INT64_MAX)
        return -1;
    return (int64_t)v;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t mam_time_parse(const char *s)
{
    if (s == NULL || strlen(s) < 20)
        return -1;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int Y = num(s, 4), M = num(s + 5, 2), D = num(s + 8, 2);
    int h = num(s + 11, 2), m = num(s + 14, 2), sec = num(s + 17, 2);
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 ||
        m < 0 || m > 59 || sec < 0 || sec > 60)
        return -1;
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = num(p + 1, 2), om = num(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return ((int64_t)t - off) * 1000 + ms;
}

void mam_id_stamp(uint64_t id, char *buf, size_t size)
{
    uint64_t ms = id >> 16;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

void mam_query_free(mam_query_t *q)
{
    kn_free(&q->queryid);
    kn_free(&q->with);
}

static const char *field_value(const kn_stanza_t *st, int f)
{
    int v = kn_stanza_child(st, f, "value", MAM_NS_DATA);
    return v >= 0 ? kn_stanza_cdata(st, v, NULL) : NULL;
}

static void lower_hi(mam_query_t *q, int64_t v)
{
    if (v < q->hi)
        q->hi = v;
}

static void raise_lo(mam_query_t *q, int64_t v)
{
    if (v > q->lo)
        q->lo = v;
}

/* The first id of millisecond t (ids are ms << 16); past the id space
 * (after the year 6429): INT64_MAX. */
static int64_t ms_to_id(int64_t t)
{
    return t >= (INT64_MAX >> 16) ? INT64_MAX : t << 16;
}

static int query_form(const kn_stanza_t *st, int x, mam_query_t *out)
{
    for (int f = kn_stanza_first_child(st, x); f >= 0;
         f = kn_stanza_next_sibling(st, f)) {
        if (strcmp(kn_stanza_name(st, f), "field") != 0)
            continue;
        const char *var = kn_stanza_attr(st, f, "var", NULL);
        const char *v = field_value(st, f);
        if (var == NULL)
            return -1;
        if (strcmp(var, "FORM_TYPE") == 0) {
            if (v == NULL || strcmp(v, MAM_NS) != 0)
                return -1;
            continue;
        }
        if (v == NULL || *v == '\0')
            continue; /* an empty field filters nothing */
        if (strcmp(var, "with") == 0) {
            kn_jid_t j = KN_JID_INIT;
            if (kn_jid_parse(&j, v, strlen(v)) < 0)
                return -1;
            /* Rows keep the other party's bare JID. */
            size_t n = kn_jid_len(&j);
            if (j.resource_len > 0)
                n = j.resource_off - 1;
            kn_free(&out->with);
            out->with = kn_strndup(kn_jid_str(&j), n);
            kn_jid_free(&j);
        } else if (strcmp(var, "start") == 0) {
            int64_t t = mam_time_parse(v);
            if (t < 0)
                return -1;
            raise_lo(out, ms_to_id(t) - 1);
        } else if (strcmp(var, "end") == 0) {
            int64_t t = mam_time_parse(v);
            if (t < 0)
                return -1;
            lower_hi(out, ms_to_id(t + 1));
        } else if (strcmp(var, "after-id") == 0) {
            int64_t id = mam_id_parse(v);
            if (id < 0)
                return -1;
            raise_lo(out, id);
        } else if (strcmp(var, "before-id") == 0) {
            int64_t id = mam_id_parse(v);
            if (id < 0)
                return -1;
            lower_hi(out, id);
        } else {
            return -1; /* XEP-0313 4.1.1: unknown field */
        }
    }
    return 0;
}

static int query_rsm(const kn_stanza_t *st, int set, mam_query_t *out)
{
    int e;
    if ((e = kn_stanza_child(st, set, "max", MAM_NS_RSM)) >= 0) {
        const char *s = kn_stanza_cdata(st, e, NULL);
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || v < 0)
            return -1;
        out->max = v > MAM_MAX_LIMIT ? MAM_MAX_LIMIT : (size_t)v;
    }
    if ((e = kn_stanza_child(st, set, "after", MAM_NS_RSM)) >= 0) {
        int64_t id = mam_id_parse(kn_stanza_cdata(st, e, NULL));
        if (id < 0)
            return -1;
        raise_lo(out, id);
    }
    if ((e = kn_stanza_child(st, set, "before", MAM_NS_RSM)) >= 0) {
        out->backward = true;
        const char *s = kn_stanza_cdata(st, e, NULL);
        if (*s != '\0') {
            int64_t id = mam_id_parse(s);
            if (id < 0)
                return -1;
            lower_hi(out, id);
        }
    }
    return 0;
}

int mam_query_parse(const kn_stanza_t *st, int q, mam_query_t *out,
                    kn_stanza_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->lo = 0;
    out->hi = INT64_MAX;
    out->max = MAM_MAX_DEFAULT;
    const char *qid = kn_stanza_attr(st, q, "queryid", NULL);
    if (qid != NULL)
        out->queryid = kn_strdup(qid);
    int x = kn_stanza_child(st, q, "x", MAM_NS_DATA);
    int set = kn_stanza_child(st, q, "set", MAM_NS_RSM);
    if ((x >= 0 && query_form(st, x, out) < 0) ||
        (set >= 0 && query_rsm(st, set, out) < 0)) {
        mam_query_free(out);
        *err = KN_STE_BAD_REQUEST;
        return -1;
    }
    return 0;
}

/* ---- preferences ---- */

void mam_prefs_free(mam_prefs_t *p)
{
    for (size_t i = 0; i < p->nalways; i++)
        free(p->always[i]);
    for (size_t i = 0; i < p->nnever; i++)
        free(p->never[i]);
    kn_free(&p->always);
    kn_free(&p->never);
    p->nalways = p->nnever = 0;
}

static int prefs_list(const kn_stanza_t *st, int e, char ***out, size_t *n)
{
    for (int j = kn_stanza_first_child(st, e); j >= 0;
         j = kn_stanza_next_sibling(st, j)) {
        if (strcmp(kn_stanza_name(st, j), "jid") != 0)
            continue;
        const char *s = kn_stanza_cdata(st, j, NULL);
        kn_jid_t jid = KN_JID_INIT;
        if (kn_jid_parse(&jid, s, strlen(s)) < 0)
            return -1;
        if (*n >= 1000) {
            kn_jid_free(&jid);
            return -1;
        }
        *out = kn_realloc(*out, (*n + 1) * sizeof(char *));
        (*out)[(*n)++] = kn_strdup(kn_jid_str(&jid));
        kn_jid_free(&jid);
    }
    return 0;
}

int mam_prefs_parse(const kn_stanza_t *st, int e, mam_prefs_t *out,
                    kn_stanza_err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *d = kn_stanza_attr(st, e, "default", NULL);
    out->dflt = -1;
    for (int i = 0; d != NULL && mam_pref_names[i] != NULL; i++)
        if (strcmp(d, mam_pref_names[i]) == 0)
            out->dflt = i;
    int a = kn_stanza_child(st, e, "always", MAM_NS);
    int nv = kn_stanza_child(st, e, "never", MAM_NS);
    if (out->dflt < 0 ||
        (a >= 0 && prefs_list(st, a, &out->always, &out->nalways) < 0) ||
        (nv >= 0 && prefs_list(st, nv, &out->never, &out->nnever) < 0)) {
        mam_prefs_free(out);
        *err = KN_STE_BAD_REQUEST;
        return -1;
    }
    return 0;
}

static void prefs_build_list(kn_stanza_builder_t *b, const char *name,
                             char *const *v, size_t n)
{
    kn_stanza_builder_start(b, name, NULL);
    for (size_t i = 0; i < n; i++) {
        kn_stanza_builder_start(b, "jid", NULL);
        kn_stanza_builder_text(b, v[i], strlen(v[i]));
        kn_stanza_builder_end(b);
    }
    kn_stanza_builder_end(b);
}

void mam_prefs_build(kn_stanza_builder_t *b, const mam_prefs_t *p)
{
    kn_stanza_builder_start(b, "prefs", MAM_NS);
    kn_stanza_builder_attr(b, "default", mam_pref_names[p->dflt]);
    prefs_build_list(b, "always", p->always, p->nalways);
    prefs_build_list(b, "never", p->never, p->nnever);
    kn_stanza_builder_end(b);
}

void mam_pg_array_elem(kn_buf_t *out, const char *s, size_t len)
{
    if (out->len > 0 && out->data[out->len - 1] != '{')
        kn_buf_append(out, ",", 1);
    kn_buf_reserve(out, len + 2);
    kn_buf_append(out, "\"", 1);
    size_t i = 0;
    while (i < len) {
        /* the run up to the next '"' or '\\', in one append */
        size_t j = i;
        while (j < len && s[j] != '"' && s[j] != '\\')
            j++;
        kn_buf_append(out, s + i, j - i);
        if (j == len)
            break;
        kn_buf_append(out, "\\", 1);
        kn_buf_append(out, s + j, 1);
        i = j + 1;
    }
    kn_buf_append(out, "\"", 1);
}

void mam_pg_array(kn_buf_t *out, char *const *v, size_t n)
{
    kn_buf_reset(out);
    kn_buf_append(out, "{", 1);
    for (size_t i = 0; i < n; i++)
        mam_pg_array_elem(out, v[i], strlen(v[i]));
    kn_buf_append(out, "}", 1);
}
