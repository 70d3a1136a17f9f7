/*
 * router_mam.c - archive ids (XEP-0359) and the archive copies for the
 * archiver (XEP-0313, presenced's pres_mam.c).
 *
 * A note on the archive path. Delivery never waits for the archive: the
 * router gives each archivable message (KN_F_ARCHIVE_OK, set by c2s) an
 * id, puts <stanza-id by=recipient's bare JID id=.../> in what it
 * delivers (or stores offline), and makes one archive copy (the message
 * as the client sent it, with its id, type, from and to) for the
 * archiver, which writes both parties' rows in batches. The copies go in
 * batch envelopes (KN_F_ARCHIVE | KN_F_ARCHIVE_BATCH, kn_arch.h: up to
 * 256 copies per envelope, ack_id = the last one's id), at most 50 ms
 * after the first unsent one or before anything else for the archiver's
 * node; without the I/O layer's timer (unit tests), one envelope per
 * copy (KN_F_ARCHIVE, ack_id = its id). Ids are
 * (milliseconds since the epoch << 16) + a counter, strictly increasing:
 * the id orders the archive and carries the message's time.
 *
 * The rule for restarts: the router keeps every archive copy until the
 * archiver acknowledges it (a cumulative ACK after each committed batch;
 * rows are inserted with ON CONFLICT DO NOTHING, so a copy written twice
 * is one row). When the archiver (re)registers, every copy it has not
 * acknowledged is sent again, in order. So a message the router routed
 * while the archiver was stopped, restarting or killed is in the archive
 * once it is back. Archiving stays on once an archiver has registered,
 * also while no archiver is registered (presenced away for longer than
 * the node timeout). The retained FIFO is bounded (ROUTER_ARCH_MAX copies,
 * ROUTER_ARCH_BYTES bytes); past that the oldest copy is given up (logged
 * and counted): an archiver away for that long loses the oldest. A
 * router restart loses the copies not yet acknowledged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kn_arch.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_msgrules.h"
#include "kn_proto.h"
#include "router.h"

#define ROUTER_ARCH_MAX   200000
#define ROUTER_ARCH_BYTES (256u << 20)
/* Deferred mode: unsent copies that trigger a flush without the timer. */
#define ROUTER_ARCH_BATCH 256
/* One batch envelope carries at most this many copies or bytes (a resend
 * of everything retained goes as many envelopes). */
#define ROUTER_ARCH_ENV_COPIES 256
#define ROUTER_ARCH_ENV_BYTES  (1u << 20)

/* A retained copy: its kn_arch record (id, type, from, to, the stanza),
 * ready to be appended to a batch envelope. */
typedef struct router_arch {
    uint64_t id;
    struct router_arch *next;
    size_t len;
    uint8_t rec[];
} arch_t;

/* The archiver's live node, or NULL. *registered: archiving is on, which
 * it stays once an archiver registered, also while it is away (stopped,
 * restarting, declared lost): its copies are retained meanwhile. */
static router_node_t *mam_node(router_t *r, bool *registered)
{
    router_reg_t *g = router_reg_find(r, KN_REG_ARCHIVE, "", 0);
    if (g != NULL)
        r->mam_on = true;
    *registered = r->mam_on;
    if (g == NULL)
        return NULL;
    router_node_t *n = r->nodes[g->node];
    return n != NULL && n->alive ? n : NULL;
}

static uint64_t mam_next_id(router_t *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t id = ms << 16;
    if (id <= r->mam_last_id)
        id = r->mam_last_id + 1;
    r->mam_last_id = id;
    return id;
}

bool router_sid_insert(kn_buf_t *out, const void *pl, size_t len,
                       const char *by, size_t by_len, uint64_t id)
{
    const char *p = pl;
    static const char close[] = "</message>";
    size_t cl = sizeof(close) - 1;
    size_t keep;
    bool empty = false;
    if (len < 10 || memcmp(p, "<message", 8) != 0 ||
        (p[8] != ' ' && p[8] != '>' && p[8] != '/'))
        return false;
    if (len > cl && memcmp(p + len - cl, close, cl) == 0) {
        keep = len - cl;
    } else if (len > 2 && memcmp(p + len - 2, "/>", 2) == 0 &&
               memchr(p, '>', len) == p + len - 1) {
        keep = len - 2; /* <message .../> */
        empty = true;
    } else {
        return false;
    }
    char ids[24];
    snprintf(ids, sizeof(ids), "%" PRIu64, id);
    kn_buf_append(out, p, keep);
    if (empty)
        kn_buf_append_str(out, ">");
    kn_buf_append_str(out, "<stanza-id xmlns='" KN_NS_SID "' by='");
    kn_buf_append_xml_escaped(out, by, by_len);
    kn_buf_append_str(out, "' id='");
    kn_buf_append_str(out, ids);
    kn_buf_append_str(out, "'/></message>");
    return true;
}

static void arch_free(arch_t *a)
{
    free(a);
}

static void arch_pop(router_t *r)
{
    arch_t *a = r->arch_head;
    if (a == r->arch_unsent) {
        r->arch_unsent = a->next;
        r->arch_unsent_n--;
    }
    r->arch_head = a->next;
    if (r->arch_head == NULL)
        r->arch_tail = &r->arch_head;
    r->arch_count--;
    r->arch_bytes -= a->len;
    arch_free(a);
}

static arch_t *arch_retain(router_t *r, uint64_t id, const kn_env_t *e,
                           const router_payload_t *pl)
{
    if (r->arch_tail == NULL)
        r->arch_tail = &r->arch_head;
    kn_arch_copy_t c = {id,    e->type,   e->from,  e->from_len,
                        e->to, e->to_len, pl->data, pl->len};
    size_t n = kn_arch_size(&c);
    arch_t *a = kn_malloc(sizeof(*a) + n);
    a->id = id;
    a->next = NULL;
    a->len = n;
    if (!kn_arch_write(a->rec, &c)) {
        free(a);
        return NULL;
    }
    *r->arch_tail = a;
    r->arch_tail = &a->next;
    r->arch_count++;
    r->arch_bytes += n;
    while (r->arch_count > ROUTER_ARCH_MAX ||
           (r->arch_bytes > ROUTER_ARCH_BYTES && r->arch_count > 1)) {
        if (r->arch_evicted++ % 10000 == 0)
            kn_log_warn("archiver behind: %" PRIu64 " archive copies "
                        "given up so far",
                        r->arch_evicted);
        if (r->arch_head == a)
            a = NULL; /* the new copy itself went (a single huge one) */
        arch_pop(r);
    }
    return a;
}

/* Not deferred (no I/O timer: unit tests): one copy, one envelope. */
static void arch_send_one(router_t *r, router_node_t *n, const arch_t *a)
{
    kn_arch_copy_t c;
    size_t off = 0;
    if (kn_arch_next(a->rec, a->len, &off, &c) != 1)
        return;
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = c.type;
    e.flags = KN_F_ARCHIVE | KN_F_NO_OFFLINE;
    e.ack_id = c.id;
    e.from = c.from;
    e.from_len = c.from_len;
    e.to = c.to;
    e.to_len = c.to_len;
    router_payload_t p = {c.stanza, c.len, NULL};
    router_emit(r, n, &e, &p);
}

static bool jid_local_user(const router_t *r, const char *jid, size_t len,
                           size_t *bare_len)
{
    const char *slash = memchr(jid, '/', len);
    size_t bl = slash ? (size_t)(slash - jid) : len;
    const char *at = memchr(jid, '@', bl);
    if (at == NULL)
        return false;
    size_t dl = strlen(r->domain);
    *bare_len = bl;
    return bl - (size_t)(at + 1 - jid) == dl &&
           memcmp(at + 1, r->domain, dl) == 0;
}

uint64_t router_mam_message(router_t *r, const kn_env_t *env,
                            const router_payload_t *pl, router_payload_t *out)
{
    *out = *pl;
    bool registered;
    router_node_t *n = mam_node(r, &registered);
    size_t fbl = 0, tbl = 0;
    bool from_local = jid_local_user(r, env->from, env->from_len, &fbl);
    bool to_local = jid_local_user(r, env->to, env->to_len, &tbl);
    if (!registered || (!from_local && !to_local))
        return 0;
    uint64_t id = mam_next_id(r);
    arch_t *a = arch_retain(r, id, env, pl);
    if (n != NULL && r->arch_arm != NULL && a != NULL) {
        /* Deferred: queued behind earlier unsent copies, sent in order. */
        if (r->arch_unsent != NULL && r->arch_to != n)
            router_mam_flush(r);
        if (r->arch_unsent == NULL) {
            r->arch_unsent = a;
            r->arch_unsent_n = 0;
            r->arch_to = n;
            r->arch_arm(r->arch_arm_ud);
        }
        if (++r->arch_unsent_n >= ROUTER_ARCH_BATCH)
            router_mam_flush(r);
    } else if (n != NULL && a != NULL) {
        arch_send_one(r, n, a);
    }
    if (to_local) {
        kn_buf_reset(&r->mam_scratch);
        if (router_sid_insert(&r->mam_scratch, pl->data, pl->len, env->to, tbl,
                              id)) {
            out->data = r->mam_scratch.data;
            out->len = r->mam_scratch.len;
            out->msg = NULL;
        }
    }
    return id;
}

void router_mam_ack(router_t *r, const kn_env_t *env)
{
    while (r->arch_head != NULL && r->arch_head->id <= env->ack_id)
        arch_pop(r);
}

void router_mam_defer(router_t *r, void (*arm)(void *ud), void *ud)
{
    r->arch_arm = arm;
    r->arch_arm_ud = ud;
}

/* Send the copies from a on (the rest of the FIFO) to n as batch
 * envelopes (kn_arch.h). They are copies of earlier messages, not
 * consequences of the frame being handled now: sent without its link id,
 * or a node would drop all but one of them as resends (kn_link.c's
 * duplicate filter). */
static void arch_send_from(router_t *r, router_node_t *n, arch_t *a)
{
    uint64_t link = r->cur_link;
    r->cur_link = 0;
    r->arch_flushing = true;
    kn_buf_t *b = &r->arch_batch;
    while (a != NULL) {
        kn_buf_reset(b);
        size_t k = 0;
        uint64_t last = 0;
        for (; a != NULL && k < ROUTER_ARCH_ENV_COPIES &&
               (k == 0 || b->len + a->len <= ROUTER_ARCH_ENV_BYTES);
             a = a->next, k++) {
            kn_buf_append(b, a->rec, a->len);
            last = a->id;
        }
        kn_env_t e = {0};
        e.kind = KN_ENV_STANZA;
        e.stanza = KN_ENV_ST_MESSAGE;
        e.type = KN_ENV_TYPE_NORMAL;
        e.flags = KN_F_ARCHIVE | KN_F_ARCHIVE_BATCH | KN_F_NO_OFFLINE;
        e.ack_id = last;
        router_payload_t p = {b->data, b->len, NULL};
        router_emit(r, n, &e, &p);
    }
    r->arch_flushing = false;
    r->cur_link = link;
}

void router_mam_flush(router_t *r)
{
    arch_t *a = r->arch_unsent;
    if (a == NULL)
        return;
    r->arch_unsent = NULL;
    r->arch_unsent_n = 0;
    r->arch_to = NULL;
    bool registered;
    router_node_t *n = mam_node(r, &registered);
    if (n == NULL)
        return; /* retained: sent again when the archiver registers */
    arch_send_from(r, n, a);
}

void router_mam_resend(router_t *r)
{
    bool registered;
    router_node_t *n = mam_node(r, &registered);
    /* Everything retained goes now, the queued copies with it. */
    r->arch_unsent = NULL;
    r->arch_unsent_n = 0;
    r->arch_to = NULL;
    if (n == NULL || r->arch_count == 0)
        return;
    kn_log_info("archiver registered: sending %zu unacknowledged archive "
                "copies again",
                r->arch_count);
    arch_send_from(r, n, r->arch_head);
}

void router_mam_free(router_t *r)
{
    while (r->arch_head != NULL)
        arch_pop(r);
    kn_buf_free(&r->mam_scratch);
    kn_buf_free(&r->carbon_scratch);
    kn_buf_free(&r->arch_batch);
}
