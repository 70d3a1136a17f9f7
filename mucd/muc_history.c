/*
 * muc_history.c - the join history ring (R-PERF-7).
 *
 * A note on the ring: hist[hist_head] is the oldest of hist_len messages
 * in hist_cap slots; appending to a full ring replaces the oldest. The
 * capacity follows the room's configuration (resize on change), never
 * more than the service's hard maximum, so `all` is bounded in memory
 * (the archive, XEP-0313, has the rest).
 */
#include "muc_history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_err.h"
#include "kn_mem.h"

size_t muc_history_room_max(const muc_room_t *room, size_t hard_max)
{
    switch (room->cfg.history_mode) {
    case MUC_HISTORY_NONE:
        return 0;
    case MUC_HISTORY_NUMBER:
        return room->cfg.history_max < hard_max ? room->cfg.history_max
                                                : hard_max;
    case MUC_HISTORY_ALL:
    default:
        return hard_max;
    }
}

const muc_hist_t *muc_history_at(const muc_room_t *room, size_t i)
{
    KN_ASSERT(i < room->hist_len);
    return &room->hist[(room->hist_head + i) % room->hist_cap];
}

void muc_history_clear(muc_room_t *room)
{
    for (size_t i = 0; i < room->hist_len; i++) {
        muc_hist_t *h = &room->hist[(room->hist_head + i) % room->hist_cap];
        kn_stanza_unref(&h->msg);
    }
    room->hist_len = 0;
    room->hist_head = 0;
}

void muc_history_resize(muc_room_t *room, size_t hard_max)
{
    size_t cap = muc_history_room_max(room, hard_max);
    if (cap == room->hist_cap)
        return;
    muc_hist_t *nh = cap ? kn_calloc(cap, sizeof(*nh)) : NULL;
    size_t keep = room->hist_len < cap ? room->hist_len : cap;
    size_t drop = room->hist_len - keep;
    for (size_t i = 0; i < room->hist_len; i++) {
        muc_hist_t *h = &room->hist[(room->hist_head + i) % room->hist_cap];
        if (i < drop)
            kn_stanza_unref(&h->msg);
        else
            nh[i - drop] = *h;
    }
    free(room->hist);
    room->hist = nh;
    room->hist_cap = cap;
    room->hist_head = 0;
    room->hist_len = keep;
}

void muc_history_add(muc_room_t *room, size_t hard_max, const kn_stanza_t *msg,
                     time_t at, uint64_t seq, size_t chars)
{
    if (room->hist_cap != muc_history_room_max(room, hard_max))
        muc_history_resize(room, hard_max);
    if (room->hist_cap == 0)
        return;
    muc_hist_t *h;
    if (room->hist_len == room->hist_cap) {
        h = &room->hist[room->hist_head];
        kn_stanza_unref(&h->msg);
        room->hist_head = (room->hist_head + 1) % room->hist_cap;
    } else {
        h = &room->hist[(room->hist_head + room->hist_len) % room->hist_cap];
        room->hist_len++;
    }
    h->msg = kn_stanza_ref((kn_stanza_t *)msg);
    h->at = at;
    h->seq = seq;
    h->chars = chars;
}

static long history_long_attr(const kn_stanza_t *st, int e, const char *name)
{
    const char *v = kn_stanza_attr(st, e, name, NULL);
    if (v == NULL || *v == '\0')
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end != '\0' || n < 0) ? -1 : n;
}

void muc_history_req_parse(const kn_stanza_t *st, int x, muc_history_req_t *req)
{
    req->maxstanzas = req->maxchars = req->seconds = -1;
    req->since = (time_t)-1;
    int h = x >= 0 ? kn_stanza_child(st, x, "history", NULL) : -KN_ENOENT;
    if (h < 0)
        return;
    req->maxstanzas = history_long_attr(st, h, "maxstanzas");
    req->maxchars = history_long_attr(st, h, "maxchars");
    req->seconds = history_long_attr(st, h, "seconds");
    const char *since = kn_stanza_attr(st, h, "since", NULL);
    time_t t;
    if (since != NULL && muc_time_parse(since, &t) == 0)
        req->since = t;
}

size_t muc_history_select(const muc_room_t *room, const muc_history_req_t *req,
                          time_t now)
{
    size_t n = room->hist_len, first = 0;
    if (req->maxstanzas >= 0 && (size_t)req->maxstanzas < n)
        first = n - (size_t)req->maxstanzas;
    if (req->maxchars >= 0) {
        size_t total = 0, i = n;
        while (i > first) {
            size_t c = muc_history_at(room, i - 1)->chars;
            if (total + c > (size_t)req->maxchars)
                break;
            total += c;
            i--;
        }
        first = i;
    }
    while (first < n) {
        const muc_hist_t *h = muc_history_at(room, first);
        bool old = (req->seconds >= 0 && now - h->at > req->seconds) ||
                   (req->since != (time_t)-1 && h->at < req->since);
        if (!old)
            break;
        first++;
    }
    return first;
}

int muc_time_parse(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -KN_EINVAL;
    const char *p = s + n;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -KN_EINVAL;
        off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -KN_EINVAL;
    }
    if (*p != '\0')
        return -KN_EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm) - off;
    return 0;
}

void muc_time_format(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
