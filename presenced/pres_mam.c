/*
 * pres_mam.c - the one-to-one archive's I/O (XEP-0313): batched writes
 * of the router's archive copies, queries with RSM paging, preferences,
 * retention.
 *
 * A note on writes. The router makes one archive copy per archivable
 * message (router_mam.c), keeps it until we acknowledge it, and sends the
 * copies in batch envelopes (kn_arch.h). We append each copy that has a
 * local party to the pending batch (six PostgreSQL arrays, in binary
 * format: id, the parties' usernames and bare JIDs, the stanza once);
 * the insert
 * makes one row per local party (owner, id, the other party's bare JID,
 * direction, the stanza). At most one batch is being written; when it
 * commits, the next one (everything that arrived meanwhile) goes out as
 * one INSERT ... SELECT FROM unnest(...), so the batch size follows the
 * load (group commit) and delivery never waits for any of it. Each row
 * is decided here when its owner's account and preferences are cached
 * ("the owners' preferences, cached" below); a batch of such rows only
 * is a plain insert (SQL_FAST). Otherwise the insert evaluates the
 * preferences itself (see SQL_INSERT) and skips owners that are not
 * accounts. A copy sent twice (after our restart) stays one row:
 * the primary key refuses the batch, which is written again with ON
 * CONFLICT DO NOTHING. After the commit we send the
 * router one ACK with the highest id of the batch (cumulative: copies
 * arrive and are written in id order). A batch the server refuses is
 * logged and acknowledged (it would fail again); one that could not run
 * (connection lost, no connection in time) is retried.
 *
 * Queries see what was archived before them: a query waits until every
 * copy received before it is committed (mark = highest id received).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_arch.h"
#include "kn_err.h"
#include "kn_log.h"
#include "kn_mem.h"
#include "kn_proto.h"
#include "kn_xml.h"
#include "pres.h"
#include "pres_mam.h"

#define MAM_RETRY_S      0.2
#define MAM_EXPIRE_BATCH 10000
/* Batches start at least this far apart (unless a query waits for the
 * pending rows, or MAM_BATCH_ROWS are pending): PostgreSQL's cost per
 * batch is large next to its cost per row, so at a low rate this makes
 * fewer, larger batches (docs/PERFORMANCE.md). Delivery never waits for
 * it; the archive lags by at most this much more. */
#define MAM_BATCH_GAP_S 0.05
#define MAM_BATCH_ROWS  2048

/* One element per archive copy that makes a row: id, the sender's username
 * (NULL when not a local account), bare JID, the recipient's username
 * (NULL when not local, or the sender itself), bare JID, the stanza
 * (sent once for both rows). */
typedef struct mam_batch {
    kn_buf_t ids, fu, fb, tu, tb, s;
    size_t n;         /* rows */
    size_t msgs;      /* elements of each array */
    size_t copies;    /* archive copies they came from */
    size_t check;     /* rows whose owner the statement must check */
    bool nulls;       /* fu or tu holds a NULL */
    uint64_t last_id; /* id of the last copy */
    bool dedup;       /* refused as a duplicate once: ON CONFLICT */
} mam_batch_t;

typedef struct mam_wait {
    uint64_t mark;
    kn_stanza_t *iq;
    mam_query_t q;
    char *owner; /* local part */
    char *bare;
    struct mam_wait *next;
} mam_wait_t;

/* What a query callback holds instead of the context: pres_mam_free
 * clears p, and a callback that runs later (the pools are freed after
 * presenced's context) only cleans up. */
typedef struct mam_life {
    pres_t *p;
    unsigned refs;
} mam_life_t;

static mam_life_t *life_ref(mam_life_t *l)
{
    l->refs++;
    return l;
}

/* Drop one reference; returns the context, or NULL when it is gone. */
static pres_t *life_unref(mam_life_t *l)
{
    pres_t *p = l->p;
    if (--l->refs == 0)
        free(l);
    return p;
}

struct pres_mam {
    mam_life_t *life;
    mam_batch_t pending;
    mam_batch_t *inflight;
    uint64_t received; /* highest archive id received */
    uint64_t acked;    /* highest archive id committed (and acknowledged) */
    mam_wait_t *waiters, **waiters_tail;
    ev_timer retry, expire;
    ev_timer gap;          /* MAM_BATCH_GAP_S after the last batch began */
    ev_tstamp next_batch;  /* no batch before (loop time) */
    ev_prepare flush_soon; /* writes the pending batch before the loop waits */
    bool started;
    bool expiring;
    uint64_t rows, batches;
    uint64_t fast_batches; /* written without the owner checks */
    /* The owners' preferences (mam_pc_t by username), loaded in batches
     * of the names seen; gen counts invalidations, so that a load that
     * ran across one is dropped. */
    struct mam_pc *pc;
    size_t pc_n;
    char **load; /* usernames to load (entries in state PC_LOADING) */
    size_t nload, load_cap;
    bool loading; /* a load is in flight */
    uint64_t gen;
    struct mam_purge *purges, **purges_tail;
};

/* One element per message, two rows at most (the sender's, outgoing,
 * and the recipient's), so the stanza crosses to PostgreSQL and is parsed
 * there once. The preference rule (XEP-0313 6.1) is evaluated in the
 * statement: a never JID, then an always JID, then the owner's default or
 * $7 (presenced.mam_default); roster: the other party is an item of the
 * owner's roster. Inline rather than a SQL function, which PostgreSQL
 * would run as a separate call per row. There is no foreign key to users
 * (sql/0023_mam_lighter.sql): the users lookup skips owners that are not
 * accounts, and FOR KEY SHARE makes an account removal wait for our
 * commit (its trigger then removes the rows). The lookups are LATERAL
 * subqueries (and OFFSET 0 keeps the others correlated probes) so that
 * the plan, generic after a few runs, is one index probe per row in
 * users, mam_prefs and rosteritems, never a scan of those tables.
 *
 * Without ON CONFLICT: its check is one more primary key probe per row,
 * and a duplicate only comes from copies sent again (our restart, or a
 * router restart whose clock went back). A batch refused as a duplicate
 * (23505) is sent again as SQL_INSERT_DEDUP. */
#define MAM_INSERT_SQL                                                         \
    "insert into mam_messages (username, id, with_jid, outgoing, stanza) "     \
    "select r.u, m.id, r.w, r.o, m.s from unnest($1::bigint[], $2::text[], "   \
    "$3::text[], $4::text[], $5::text[], $6::text[]) as m(id, fu, fb, tu, "    \
    "tb, s) cross join lateral (values (m.fu, m.tb, true), (m.tu, m.fb, "      \
    "false)) as r(u, w, o) cross join lateral (select 1 from users where "     \
    "users.username = r.u for key share) a left join lateral (select "         \
    "p.never_jids, p.always_jids, p.default_mode from mam_prefs p where "      \
    "p.username = r.u offset 0) p on true where r.u is not null and case "     \
    "when p.never_jids @> array[r.w] then false "                              \
    "when p.always_jids @> array[r.w] then true "                              \
    "else case coalesce(p.default_mode, $7) when 'always' then true "          \
    "when 'never' then false else exists (select 1 from rosteritems r2 "       \
    "where r2.username = r.u and r2.jid = r.w and r2.in_roster offset 0) "     \
    "end end"

/* A batch whose every row presenced decided (the owners' preferences
 * cached, each owner an account): the rows only. */
#define MAM_FAST_SQL                                                           \
    "insert into mam_messages (username, id, with_jid, outgoing, stanza) "     \
    "select r.u, m.id, r.w, r.o, m.s from unnest($1::bigint[], $2::text[], "   \
    "$3::text[], $4::text[], $5::text[], $6::text[]) as m(id, fu, fb, tu, "    \
    "tb, s) cross join lateral (values (m.fu, m.tb, true), (m.tu, m.fb, "      \
    "false)) as r(u, w, o) where r.u is not null"

static const char SQL_INSERT[] = MAM_INSERT_SQL;
static const char SQL_FAST[] = MAM_FAST_SQL;
static const char SQL_FAST_DEDUP[] = MAM_FAST_SQL " on conflict do nothing";
static const char SQL_INSERT_DEDUP[] = MAM_INSERT_SQL " on conflict do nothing";

static const char SQL_FORWARD[] =
    "select id, stanza from mam_messages where username = $1 and "
    "($2::text is null or with_jid = $2) and id > $3::bigint and "
    "id < $4::bigint order by id limit $5::int";

static const char SQL_BACKWARD[] =
    "select id, stanza from mam_messages where username = $1 and "
    "($2::text is null or with_jid = $2) and id > $3::bigint and "
    "id < $4::bigint order by id desc limit $5::int";

static const char SQL_PREFS_GET[] =
    "select p.default_mode, l.k, l.j from mam_prefs p left join lateral "
    "(select 'a' as k, unnest(p.always_jids) as j union all "
    "select 'n', unnest(p.never_jids)) l on true where p.username = $1";

static const char SQL_PREFS_SET[] =
    "insert into mam_prefs (username, default_mode, always_jids, never_jids) "
    "select $1, $2, $3::text[], $4::text[] from users where username = $1 "
    "on conflict (username) do update set default_mode = excluded."
    "default_mode, always_jids = excluded.always_jids, never_jids = "
    "excluded.never_jids";

/* Per account through the primary key (username, id): there is no index
 * on id alone (sql/0023_mam_lighter.sql), so this costs one index probe
 * per account when nothing has expired. */
static const char SQL_EXPIRE[] =
    "delete from mam_messages where ctid = any(array(select x.ctid from "
    "users u cross join lateral (select m.ctid from mam_messages m where "
    "m.username = u.username and m.id < $1::bigint limit 10000) x "
    "limit 10000))";

static struct pres_mam *mam_get(pres_t *p)
{
    if (p->mam == NULL) {
        p->mam = kn_calloc(1, sizeof(*p->mam));
        p->mam->waiters_tail = &p->mam->waiters;
        p->mam->purges_tail = &p->mam->purges;
        p->mam->life = kn_calloc(1, sizeof(mam_life_t));
        p->mam->life->p = p;
        p->mam->life->refs = 1;
    }
    return p->mam;
}

/* ---- the owners' preferences, cached ----
 *
 * What the insert would check per row (the owner is an account, its
 * preferences), known in presenced: a row whose owner is cached is
 * decided here, and a batch of such rows only is written by SQL_FAST,
 * a plain insert without the per-row probes of SQL_INSERT (about 4.5
 * µs of PostgreSQL per row, docs/PERFORMANCE.md). A row of an owner
 * not cached (yet), not an account, or whose rule needs the roster
 * (default roster, the other party in neither list) is left to
 * SQL_INSERT, and a batch with any such row is written by it entirely.
 *
 * Owners seen and not cached are loaded in one query per batch; an
 * entry lives PC_TTL_S (PC_NONE_TTL_S for a name that is not an
 * account: not cached as "no", so an account created meanwhile is never
 * skipped). Invalidation: a prefs set (the only writer of mam_prefs is
 * this process: one presenced per cluster) drops its entry before and
 * after the write; an account changed or removed (kilnctl, XEP-0077,
 * XEP-0133: the credential cache's channel, kn_credcache.h, to which
 * main.c subscribes, and pres_creds_invalidate directly) drops its entry
 * and, once every copy received before is written, deletes the rows of
 * that name if it is no longer an account (rows a batch decided here
 * wrote after the removal's own delete; sql/0024's insert trigger on
 * users removes any such row left when the name is created again).
 * Every invalidation bumps gen: a load that ran across one is dropped. */
#define PC_TTL_S      60.0
#define PC_NONE_TTL_S 5.0
#define PC_MAX        200000

enum { PC_LOADING, PC_ACCOUNT, PC_NONE };
enum { ROW_SKIP, ROW_YES, ROW_CHECK };

typedef struct mam_pc {
    char *user;
    int state; /* PC_* */
    int dflt;  /* MAM_PREF_*, or -1: presenced.mam_default */
    char **always, **never;
    size_t nalways, nnever;
    ev_tstamp until;
    UT_hash_handle hh;
} mam_pc_t;

typedef struct mam_purge {
    char *user;
    uint64_t mark; /* highest id received when it was asked */
    struct mam_purge *next;
} mam_purge_t;

static const char SQL_PC_LOAD[] =
    "select u.username, p.default_mode, l.k, l.j from users u left join "
    "mam_prefs p on p.username = u.username left join lateral (select 'a' "
    "as k, unnest(p.always_jids) as j union all select 'n', "
    "unnest(p.never_jids)) l on true where u.username = any($1::text[])";

static const char SQL_PURGE[] =
    "delete from mam_messages where username = $1 and not exists (select 1 "
    "from users where username = $1)";

static ev_tstamp mam_now(const pres_t *p)
{
    return p->loop != NULL ? ev_now(p->loop) : 0.;
}

static void pc_free(mam_pc_t *e)
{
    for (size_t i = 0; i < e->nalways; i++)
        free(e->always[i]);
    for (size_t i = 0; i < e->nnever; i++)
        free(e->never[i]);
    free(e->always);
    free(e->never);
    free(e->user);
    free(e);
}

static void pc_drop(struct pres_mam *m, mam_pc_t *e)
{
    HASH_DEL(m->pc, e);
    m->pc_n--;
    pc_free(e);
}

static void pc_clear(struct pres_mam *m)
{
    mam_pc_t *e, *t;
    HASH_ITER(hh, m->pc, e, t)
    {
        pc_drop(m, e);
    }
    for (size_t i = 0; i < m->nload; i++)
        free(m->load[i]);
    m->nload = 0;
    m->gen++;
}

static bool jid_in(char *const *v, size_t n, const char *jid, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) == len && memcmp(v[i], jid, len) == 0)
            return true;
    return false;
}

/* Whether owner's archive gets a row for a message with peer (bare). */
static int pc_decide(pres_t *p, const char *owner, size_t ol, const char *peer,
                     size_t pl)
{
    struct pres_mam *m = p->mam;
    mam_pc_t *e;
    HASH_FIND(hh, m->pc, owner, ol, e);
    ev_tstamp now = mam_now(p);
    if (e != NULL && e->state != PC_LOADING && now >= e->until) {
        pc_drop(m, e);
        e = NULL;
    }
    if (e == NULL) {
        if (m->pc_n >= PC_MAX)
            pc_clear(m);
        e = kn_calloc(1, sizeof(*e));
        e->user = kn_strndup(owner, ol);
        e->state = PC_LOADING;
        HASH_ADD_KEYPTR(hh, m->pc, e->user, ol, e);
        m->pc_n++;
        if (m->nload == m->load_cap) {
            m->load_cap = m->load_cap ? 2 * m->load_cap : 64;
            m->load = kn_realloc(m->load, m->load_cap * sizeof(char *));
        }
        m->load[m->nload++] = kn_strndup(owner, ol);
        return ROW_CHECK;
    }
    if (e->state != PC_ACCOUNT)
        return ROW_CHECK;
    if (jid_in(e->never, e->nnever, peer, pl))
        return ROW_SKIP;
    if (jid_in(e->always, e->nalways, peer, pl))
        return ROW_YES;
    int d = e->dflt >= 0 ? e->dflt : p->conf.mam_default;
    if (d == MAM_PREF_ALWAYS)
        return ROW_YES;
    if (d == MAM_PREF_NEVER)
        return ROW_SKIP;
    return ROW_CHECK; /* roster: the statement looks */
}

typedef struct pc_job {
    mam_life_t *life;
    uint64_t gen;
    char **names;
    size_t n;
} pc_job_t;

static void pc_job_free(pc_job_t *j)
{
    life_unref(j->life);
    for (size_t i = 0; i < j->n; i++)
        free(j->names[i]);
    free(j->names);
    free(j);
}

static void pc_load_start(pres_t *p);

static void pc_on_load(const PGresult *res, int err, void *arg)
{
    pc_job_t *j = arg;
    pres_t *p = j->life->p;
    if (p == NULL) {
        pc_job_free(j);
        return;
    }
    struct pres_mam *m = p->mam;
    m->loading = false;
    bool ok = err == 0 && j->gen == m->gen;
    ev_tstamp now = mam_now(p);
    /* Names not in the result are not accounts (when ok). */
    for (size_t i = 0; i < j->n; i++) {
        mam_pc_t *e;
        HASH_FIND_STR(m->pc, j->names[i], e);
        if (e == NULL || e->state != PC_LOADING)
            continue;
        if (!ok) {
            pc_drop(m, e);
            continue;
        }
        e->state = PC_NONE;
        e->dflt = -1;
        e->until = now + PC_NONE_TTL_S;
    }
    int n = ok ? PQntuples(res) : 0;
    for (int i = 0; i < n; i++) {
        mam_pc_t *e;
        HASH_FIND_STR(m->pc, PQgetvalue(res, i, 0), e);
        if (e == NULL)
            continue;
        if (e->state == PC_NONE) { /* first row of this user */
            e->state = PC_ACCOUNT;
            e->until = now + PC_TTL_S;
            if (!PQgetisnull(res, i, 1)) {
                const char *d = PQgetvalue(res, i, 1);
                for (int k = 0; mam_pref_names[k] != NULL; k++)
                    if (strcmp(d, mam_pref_names[k]) == 0)
                        e->dflt = k;
            }
        }
        if (e->state != PC_ACCOUNT || PQgetisnull(res, i, 2))
            continue;
        bool always = strcmp(PQgetvalue(res, i, 2), "a") == 0;
        char ***v = always ? &e->always : &e->never;
        size_t *c = always ? &e->nalways : &e->nnever;
        *v = kn_realloc(*v, (*c + 1) * sizeof(char *));
        (*v)[(*c)++] = kn_strdup(PQgetvalue(res, i, 3));
    }
    if (err != 0 && err != -KN_EAGAIN && err != -KN_ECLOSED)
        kn_log_warn("archive: preferences not loaded: %s",
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    pc_job_free(j);
    pc_load_start(p);
}

/* Load the names seen since the last load (one load in flight). */
static void pc_load_start(pres_t *p)
{
    struct pres_mam *m = p->mam;
    if (m->loading || m->nload == 0 || p->pg == NULL)
        return;
    pc_job_t *j = kn_calloc(1, sizeof(*j));
    j->life = life_ref(m->life);
    j->gen = m->gen;
    j->names = m->load;
    j->n = m->nload;
    m->load = NULL;
    m->nload = m->load_cap = 0;
    kn_buf_t a = KN_BUF_INIT;
    mam_pg_array(&a, j->names, j->n);
    const char *params[1] = {a.data};
    m->loading = true;
    kn_pg_query(p->pg, SQL_PC_LOAD, 1, params, pc_on_load, j);
    kn_buf_free(&a);
}

static void mam_on_purge(const PGresult *res, int err, void *arg)
{
    pres_t *p = life_unref(arg);
    if (p == NULL)
        return;
    if (err != 0)
        kn_log_warn("archive: rows of a removed account not checked: %s",
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    else if (strtol(PQcmdTuples((PGresult *)res), NULL, 10) > 0)
        kn_log_info("archive: %s rows of a removed account deleted",
                    PQcmdTuples((PGresult *)res));
}

/* Purges whose copies are all written. */
static void mam_run_purges(pres_t *p)
{
    struct pres_mam *m = p->mam;
    while (m->purges != NULL &&
           (m->purges->mark <= m->acked || m->received <= m->acked)) {
        mam_purge_t *g = m->purges;
        m->purges = g->next;
        if (m->purges == NULL)
            m->purges_tail = &m->purges;
        if (p->pg != NULL) {
            const char *params[1] = {g->user};
            kn_pg_query(p->pg, SQL_PURGE, 1, params, mam_on_purge,
                        life_ref(m->life));
        }
        free(g->user);
        free(g);
    }
}

static void pc_forget(struct pres_mam *m, const char *local)
{
    mam_pc_t *e;
    HASH_FIND_STR(m->pc, local, e);
    if (e != NULL)
        pc_drop(m, e);
    m->gen++;
}

void pres_mam_account_changed(pres_t *p, const char *local)
{
    struct pres_mam *m = mam_get(p);
    pc_forget(m, local);
    mam_purge_t *g = kn_calloc(1, sizeof(*g));
    g->user = kn_strdup(local);
    g->mark = m->received;
    *m->purges_tail = g;
    m->purges_tail = &g->next;
    mam_run_purges(p);
}

void pres_mam_cache_clear(pres_t *p)
{
    pc_clear(mam_get(p));
}

static void batch_free(mam_batch_t *b)
{
    kn_buf_free(&b->ids);
    kn_buf_free(&b->fu);
    kn_buf_free(&b->fb);
    kn_buf_free(&b->tu);
    kn_buf_free(&b->tb);
    kn_buf_free(&b->s);
    b->n = 0;
    b->msgs = 0;
    b->check = 0;
    b->nulls = false;
}

/* The arrays travel in PostgreSQL's binary format (array_recv): a
 * header (dimensions, null flag, element type, length, lower bound),
 * then per element its length (-1: NULL) and bytes. The server copies
 * each element instead of scanning a text literal for quotes and
 * backslashes, and we copy instead of escaping. The header is written
 * when the batch is closed (bin_finish). */
#define BIN_HDR     20
#define PG_OID_INT8 20
#define PG_OID_TEXT 25

static void bin_u32(kn_buf_t *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    kn_buf_append(b, x, 4);
}

static void bin_elem(kn_buf_t *b, const void *s, size_t len)
{
    if (b->len == 0) {
        static const char hdr[BIN_HDR];
        kn_buf_append(b, hdr, BIN_HDR);
    }
    if (s == NULL) {
        bin_u32(b, 0xffffffffu);
        return;
    }
    bin_u32(b, (uint32_t)len);
    kn_buf_append(b, s, len);
}

static void bin_finish(kn_buf_t *b, uint32_t oid, size_t n, bool nulls)
{
    kn_buf_t h = KN_BUF_INIT;
    bin_u32(&h, 1); /* dimensions */
    bin_u32(&h, nulls ? 1 : 0);
    bin_u32(&h, oid);
    bin_u32(&h, (uint32_t)n);
    bin_u32(&h, 1); /* lower bound */
    if (b->len == 0)
        kn_buf_append(b, h.data, BIN_HDR);
    else
        memcpy(b->data, h.data, BIN_HDR);
    kn_buf_free(&h);
}

/* fu/tu: the owners' usernames, or NULL for no row. */
static void batch_add(mam_batch_t *b, uint64_t id, const char *fu, size_t ful,
                      const char *fb, size_t fbl, const char *tu, size_t tul,
                      const char *tb, size_t tbl, const void *xml, size_t len)
{
    unsigned char be[8];
    for (int k = 0; k < 8; k++)
        be[k] = (unsigned char)(id >> (56 - 8 * k));
    bin_elem(&b->ids, be, 8);
    bin_elem(&b->fu, fu, ful);
    bin_elem(&b->fb, fb, fbl);
    bin_elem(&b->tu, tu, tul);
    bin_elem(&b->tb, tb, tbl);
    bin_elem(&b->s, xml, len);
    b->msgs++;
    b->nulls |= fu == NULL || tu == NULL;
    b->n += (fu != NULL) + (tu != NULL);
}

static void mam_flush(pres_t *p);
static void mam_run_waiters(pres_t *p);

/* Tell the router that every copy up to id (the last of a batch) is
 * written. The batch's own id, not the highest ever: after a router
 * restart whose clock went back, ids may start lower again. */
static void mam_ack(pres_t *p, uint64_t id)
{
    struct pres_mam *m = p->mam;
    if (id > m->acked)
        m->acked = id;
    kn_env_t e = {0};
    e.kind = KN_ENV_ACK;
    e.flags = KN_F_ARCHIVE;
    e.ack_id = id;
    p->sink.send(p->sink.ud, &e, NULL, 0);
}

static void mam_send_batch(pres_t *p);

static void mam_on_insert(const PGresult *res, int err, void *arg)
{
    pres_t *p = life_unref(arg);
    if (p == NULL)
        return; /* shutting down: the router sends the batch again */
    struct pres_mam *m = p->mam;
    mam_batch_t *b = m->inflight;
    if (err == -KN_EAGAIN || err == -KN_ECLOSED) {
        kn_log_warn("archive: batch of %zu rows not written (%s): retrying",
                    b->n, kn_strerror(err));
        ev_timer_set(&m->retry, MAM_RETRY_S, 0.);
        ev_timer_start(p->loop, &m->retry);
        return;
    }
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (err != 0 && !b->dedup && state != NULL && strcmp(state, "23505") == 0) {
        /* Rows already archived (copies sent again): skip them. */
        b->dedup = true;
        mam_send_batch(p);
        return;
    }
    if (err != 0)
        kn_log_err("archive: batch of %zu rows refused, dropped: %s", b->n,
                   res ? PQresultErrorMessage(res) : "?");
    m->rows += b->n;
    m->batches++;
    if (b->check == 0)
        m->fast_batches++;
    m->inflight = NULL;
    uint64_t last = b->last_id;
    batch_free(b);
    free(b);
    mam_ack(p, last);
    mam_run_waiters(p);
    mam_run_purges(p);
    mam_flush(p);
}

static void mam_send_batch(pres_t *p)
{
    mam_batch_t *b = p->mam->inflight;
    const char *params[7] = {b->ids.data,
                             b->fu.data,
                             b->fb.data,
                             b->tu.data,
                             b->tb.data,
                             b->s.data,
                             mam_pref_names[p->conf.mam_default]};
    const size_t lens[7] = {b->ids.len, b->fu.len, b->fb.len, b->tu.len,
                            b->tb.len,  b->s.len,  0};
    static const int binary[7] = {1, 1, 1, 1, 1, 1, 0};
    const char *sql;
    if (b->check == 0)
        sql = b->dedup ? SQL_FAST_DEDUP : SQL_FAST;
    else
        sql = b->dedup ? SQL_INSERT_DEDUP : SQL_INSERT;
    kn_pg_query_bin(p->pg, sql, b->check == 0 ? 6 : 7, params, lens, binary,
                    mam_on_insert, life_ref(p->mam->life));
}

static void mam_on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pres_t *p = t->data;
    if (p->mam->inflight != NULL)
        mam_send_batch(p);
}

static void mam_flush(pres_t *p)
{
    struct pres_mam *m = p->mam;
    pc_load_start(p);
    if (m->inflight != NULL)
        return;
    if (m->pending.n == 0) {
        /* Copies that made no row (nothing to write) are done too. */
        if (m->pending.copies > 0) {
            uint64_t last = m->pending.last_id;
            m->pending.copies = 0;
            m->pending.last_id = 0;
            mam_ack(p, last);
            mam_run_waiters(p);
            mam_run_purges(p);
        }
        return;
    }
    if (p->pg == NULL)
        return;
    if (m->started && p->loop != NULL) {
        ev_tstamp now = ev_now(p->loop);
        if (now < m->next_batch && m->waiters == NULL &&
            m->pending.n < MAM_BATCH_ROWS) {
            if (!ev_is_active(&m->gap)) {
                ev_timer_set(&m->gap, m->next_batch - now, 0.);
                ev_timer_start(p->loop, &m->gap);
            }
            return;
        }
        ev_timer_stop(p->loop, &m->gap);
        m->next_batch = now + MAM_BATCH_GAP_S;
    }
    mam_batch_t *b = kn_malloc(sizeof(*b));
    *b = m->pending;
    memset(&m->pending, 0, sizeof(m->pending));
    bin_finish(&b->ids, PG_OID_INT8, b->msgs, false);
    bin_finish(&b->fu, PG_OID_TEXT, b->msgs, b->nulls);
    bin_finish(&b->fb, PG_OID_TEXT, b->msgs, false);
    bin_finish(&b->tu, PG_OID_TEXT, b->msgs, b->nulls);
    bin_finish(&b->tb, PG_OID_TEXT, b->msgs, false);
    bin_finish(&b->s, PG_OID_TEXT, b->msgs, false);
    m->inflight = b;
    mam_send_batch(p);
}

/* A local account's JID: its bare part's length and the length of its
 * local part (the owner's username), or false. */
static bool jid_local(const pres_t *p, const char *jid, size_t len,
                      size_t *bare_len, size_t *user_len)
{
    const char *slash = memchr(jid, '/', len);
    size_t bl = slash ? (size_t)(slash - jid) : len;
    const char *at = memchr(jid, '@', bl);
    *bare_len = bl;
    if (at == NULL)
        return false;
    size_t dl = strlen(p->domain);
    *user_len = (size_t)(at - jid);
    return bl - *user_len - 1 == dl && memcmp(at + 1, p->domain, dl) == 0;
}

/* One archive copy: a row per local party into the pending batch. */
static void mam_take(pres_t *p, uint64_t id, const char *from, size_t fl,
                     const char *to, size_t tl, const void *payload, size_t len)
{
    struct pres_mam *m = p->mam;
    if (id == 0 || fl == 0 || tl == 0 || len == 0)
        return;
    size_t fb, fu = 0, tb, tu = 0;
    bool f_local = jid_local(p, from, fl, &fb, &fu);
    bool t_local = jid_local(p, to, tl, &tb, &tu) &&
                   (fb != tb || memcmp(from, to, fb) != 0); /* to oneself */
    /* Each local party's row: decided here from the cached preferences,
     * or left to the statement (ROW_CHECK). */
    int fr = f_local ? pc_decide(p, from, fu, to, tb) : ROW_SKIP;
    int tr = t_local ? pc_decide(p, to, tu, from, fb) : ROW_SKIP;
    if (fr != ROW_SKIP || tr != ROW_SKIP) {
        batch_add(&m->pending, id, fr != ROW_SKIP ? from : NULL, fu, from, fb,
                  tr != ROW_SKIP ? to : NULL, tu, to, tb, payload, len);
        m->pending.check += (fr == ROW_CHECK) + (tr == ROW_CHECK);
    }
    m->pending.last_id = id;
    m->pending.copies++;
    if (id > m->received)
        m->received = id;
}

/* The router sends its copies in batches: take every copy this loop
 * iteration received into one insert, written before the loop waits
 * again (an ev_prepare watcher), instead of inserting the first one
 * alone. */
static void mam_taken(pres_t *p)
{
    struct pres_mam *m = p->mam;
    if (m->started && p->loop != NULL) {
        if (!ev_is_active(&m->flush_soon))
            ev_prepare_start(p->loop, &m->flush_soon);
    } else {
        mam_flush(p);
    }
}

void pres_mam_archive(pres_t *p, const kn_env_t *env, const void *payload,
                      size_t len)
{
    mam_get(p);
    if (!(env->flags & KN_F_ARCHIVE_BATCH)) {
        mam_take(p, env->ack_id, env->from, env->from_len, env->to, env->to_len,
                 payload, len);
        mam_taken(p);
        return;
    }
    /* A batch envelope (kn_arch.h): one record per copy, in id order. */
    kn_arch_copy_t c;
    size_t off = 0;
    int rc;
    while ((rc = kn_arch_next(payload, len, &off, &c)) == 1)
        mam_take(p, c.id, c.from, c.from_len, c.to, c.to_len, c.stanza, c.len);
    if (rc < 0) {
        /* Not sent again (it would be as bad): acknowledged with the rest
         * so that the router forgets it. */
        kn_log_err("archive: malformed batch of copies up to id %" PRIu64
                   ": the rest of it dropped",
                   env->ack_id);
        struct pres_mam *m = p->mam;
        if (env->ack_id > m->pending.last_id) {
            m->pending.last_id = env->ack_id;
            m->pending.copies++;
        }
        if (env->ack_id > m->received)
            m->received = env->ack_id;
    }
    mam_taken(p);
}

static void mam_on_gap(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    mam_flush(t->data);
}

static void mam_on_flush_soon(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, w);
    mam_flush(w->data);
}

size_t pres_mam_pending(const pres_t *p)
{
    const struct pres_mam *m = p->mam;
    if (m == NULL)
        return 0;
    return m->pending.n + (m->inflight ? m->inflight->n : 0);
}

/* ---- queries ---- */

typedef struct mam_job {
    mam_life_t *life;
    kn_stanza_t *iq;
    mam_query_t q;
    char *bare;
} mam_job_t;

static void job_free(mam_job_t *j)
{
    life_unref(j->life);
    kn_stanza_unref(&j->iq);
    mam_query_free(&j->q);
    free(j->bare);
    free(j);
}

static void mam_send_result(pres_t *p, const mam_job_t *j, const char *id,
                            const char *stanza)
{
    char stamp[40];
    mam_id_stamp((uint64_t)strtoull(id, NULL, 10), stamp, sizeof(stamp));
    const char *to = kn_stanza_from(j->iq);
    kn_buf_t *o = &p->out;
    kn_buf_reset(o);
    kn_buf_append_str(o, "<message xmlns='jabber:client' from='");
    kn_buf_append_xml_escaped(o, j->bare, strlen(j->bare));
    kn_buf_append_str(o, "' to='");
    kn_buf_append_xml_escaped(o, to, strlen(to));
    kn_buf_append_str(o, "'><result xmlns='" MAM_NS "'");
    if (j->q.queryid != NULL) {
        kn_buf_append_str(o, " queryid='");
        kn_buf_append_xml_escaped(o, j->q.queryid, strlen(j->q.queryid));
        kn_buf_append_str(o, "'");
    }
    kn_buf_append_str(o, " id='");
    kn_buf_append_str(o, id);
    kn_buf_append_str(o, "'><forwarded xmlns='" MAM_NS_FWD
                         "'><delay xmlns='" MAM_NS_DELAY "' stamp='");
    kn_buf_append_str(o, stamp);
    kn_buf_append_str(o, "'/>");
    kn_buf_append_str(o, stanza);
    kn_buf_append_str(o, "</forwarded></result></message>");
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.stanza = KN_ENV_ST_MESSAGE;
    e.type = KN_ENV_TYPE_NORMAL;
    e.from = j->bare;
    e.from_len = strlen(j->bare);
    e.to = to;
    e.to_len = strlen(to);
    p->sink.send(p->sink.ud, &e, o->data, o->len);
}

static void mam_on_query(const PGresult *res, int err, void *arg)
{
    mam_job_t *j = arg;
    pres_t *p = j->life->p;
    if (p == NULL) {
        job_free(j);
        return;
    }
    if (err != 0) {
        kn_log_err("archive: query failed: %s",
                   res ? PQresultErrorMessage(res) : kn_strerror(err));
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        job_free(j);
        return;
    }
    size_t n = (size_t)PQntuples(res);
    size_t take = n < j->q.max ? n : j->q.max;
    bool complete = n <= j->q.max;
    /* Backward rows come newest first: send them oldest first. */
    for (size_t k = 0; k < take; k++) {
        size_t i = j->q.backward ? take - 1 - k : k;
        mam_send_result(p, j, PQgetvalue(res, (int)i, 0),
                        PQgetvalue(res, (int)i, 1));
    }
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, j->iq);
    kn_stanza_builder_start(b, "fin", MAM_NS);
    if (j->q.queryid != NULL)
        kn_stanza_builder_attr(b, "queryid", j->q.queryid);
    kn_stanza_builder_attr(b, "complete", complete ? "true" : "false");
    kn_stanza_builder_start(b, "set", MAM_NS_RSM);
    if (take > 0) {
        size_t fi = j->q.backward ? take - 1 : 0;
        size_t li = j->q.backward ? 0 : take - 1;
        const char *first = PQgetvalue(res, (int)fi, 0);
        const char *last = PQgetvalue(res, (int)li, 0);
        kn_stanza_builder_start(b, "first", NULL);
        kn_stanza_builder_text(b, first, strlen(first));
        kn_stanza_builder_end(b);
        kn_stanza_builder_start(b, "last", NULL);
        kn_stanza_builder_text(b, last, strlen(last));
        kn_stanza_builder_end(b);
    } else if (n == 0) {
        kn_stanza_builder_start(b, "count", NULL);
        kn_stanza_builder_text(b, "0", 1);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
    job_free(j);
}

static void mam_query_run(pres_t *p, mam_job_t *j)
{
    char *owner = pres_localpart(j->bare);
    char lo[24], hi[24], lim[24];
    snprintf(lo, sizeof(lo), "%" PRId64, j->q.lo);
    snprintf(hi, sizeof(hi), "%" PRId64, j->q.hi);
    /* One more than the page: whether the page is the last one. */
    snprintf(lim, sizeof(lim), "%zu", j->q.max + 1);
    const char *params[5] = {owner, j->q.with, lo, hi, lim};
    kn_pg_query(p->pg, j->q.backward ? SQL_BACKWARD : SQL_FORWARD, 5, params,
                mam_on_query, j);
    free(owner);
}

static void mam_run_waiters(pres_t *p)
{
    struct pres_mam *m = p->mam;
    while (m->waiters != NULL && m->waiters->mark <= m->acked) {
        mam_wait_t *w = m->waiters;
        m->waiters = w->next;
        if (m->waiters == NULL)
            m->waiters_tail = &m->waiters;
        mam_job_t *j = kn_calloc(1, sizeof(*j));
        j->life = life_ref(m->life);
        j->iq = w->iq;
        j->q = w->q;
        j->bare = w->bare;
        free(w->owner);
        free(w);
        mam_query_run(p, j);
    }
}

/* <query/> get: the form's fields (XEP-0313 4.1.1). */
static void mam_form_send(pres_t *p, const kn_stanza_t *iq)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},
        {"end", "text-single"},       {"after-id", "text-single"},
        {"before-id", "text-single"},
    };
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    kn_stanza_builder_start(b, "query", MAM_NS);
    kn_stanza_builder_start(b, "x", MAM_NS_DATA);
    kn_stanza_builder_attr(b, "type", "form");
    kn_stanza_builder_start(b, "field", NULL);
    kn_stanza_builder_attr(b, "var", "FORM_TYPE");
    kn_stanza_builder_attr(b, "type", "hidden");
    kn_stanza_builder_start(b, "value", NULL);
    kn_stanza_builder_text(b, MAM_NS, strlen(MAM_NS));
    kn_stanza_builder_end(b);
    kn_stanza_builder_end(b);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        kn_stanza_builder_start(b, "field", NULL);
        kn_stanza_builder_attr(b, "var", fields[i][0]);
        kn_stanza_builder_attr(b, "type", fields[i][1]);
        kn_stanza_builder_end(b);
    }
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
}

static void mam_query_iq(pres_t *p, const kn_stanza_t *st, int q,
                         const char *bare)
{
    mam_wait_t *w = kn_calloc(1, sizeof(*w));
    kn_stanza_err_t err;
    if (mam_query_parse(st, q, &w->q, &err) < 0) {
        free(w);
        pres_send_error(p, st, err);
        return;
    }
    struct pres_mam *m = mam_get(p);
    w->iq = kn_stanza_ref((kn_stanza_t *)st);
    w->bare = kn_strdup(bare);
    w->mark = m->received;
    *m->waiters_tail = w;
    m->waiters_tail = &w->next;
    mam_run_waiters(p);
    if (m->waiters != NULL)
        mam_flush(p); /* the rows it waits for go now, not after the gap */
}

/* ---- preferences ---- */

typedef struct prefs_job {
    mam_life_t *life;
    kn_stanza_t *iq;
    mam_prefs_t prefs;
    char *owner; /* a set: whose cached preferences to drop after it */
} prefs_job_t;

static void prefs_reply(pres_t *p, const kn_stanza_t *iq, const mam_prefs_t *pr)
{
    kn_stanza_builder_t *b = p->b;
    kn_stanza_builder_iq_result(b, iq);
    mam_prefs_build(b, pr);
    kn_stanza_t *st = kn_stanza_builder_finish(b);
    pres_send(p, st, 0);
    kn_stanza_unref(&st);
}

static void prefs_job_free(prefs_job_t *j)
{
    life_unref(j->life);
    kn_stanza_unref(&j->iq);
    mam_prefs_free(&j->prefs);
    free(j->owner);
    free(j);
}

static void prefs_on_get(const PGresult *res, int err, void *arg)
{
    prefs_job_t *j = arg;
    pres_t *p = j->life->p;
    if (p == NULL || err != 0) {
        if (p != NULL)
            pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
        prefs_job_free(j);
        return;
    }
    mam_prefs_t *pr = &j->prefs;
    pr->dflt = p->conf.mam_default;
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *d = PQgetvalue(res, i, 0);
        for (int k = 0; mam_pref_names[k] != NULL; k++)
            if (strcmp(d, mam_pref_names[k]) == 0)
                pr->dflt = k;
        if (PQgetisnull(res, i, 1))
            continue;
        bool always = strcmp(PQgetvalue(res, i, 1), "a") == 0;
        char ***v = always ? &pr->always : &pr->never;
        size_t *c = always ? &pr->nalways : &pr->nnever;
        *v = kn_realloc(*v, (*c + 1) * sizeof(char *));
        (*v)[(*c)++] = kn_strdup(PQgetvalue(res, i, 2));
    }
    prefs_reply(p, j->iq, pr);
    prefs_job_free(j);
}

static void prefs_on_set(const PGresult *res, int err, void *arg)
{
    (void)res;
    prefs_job_t *j = arg;
    pres_t *p = j->life->p;
    if (p != NULL) /* rows decided from now on see the new preferences */
        pc_forget(p->mam, j->owner);
    if (p != NULL && err != 0)
        pres_send_error(p, j->iq, KN_STE_INTERNAL_SERVER_ERROR);
    else if (p != NULL)
        prefs_reply(p, j->iq, &j->prefs);
    prefs_job_free(j);
}

static void mam_prefs_iq(pres_t *p, const kn_stanza_t *st, int e,
                         const char *bare, bool set)
{
    prefs_job_t *j = kn_calloc(1, sizeof(*j));
    j->life = life_ref(mam_get(p)->life);
    j->iq = kn_stanza_ref((kn_stanza_t *)st);
    char *owner = pres_localpart(bare);
    if (!set) {
        const char *params[1] = {owner};
        kn_pg_query(p->pg, SQL_PREFS_GET, 1, params, prefs_on_get, j);
        free(owner);
        return;
    }
    kn_stanza_err_t err;
    if (mam_prefs_parse(st, e, &j->prefs, &err) < 0) {
        pres_send_error(p, st, err);
        prefs_job_free(j);
        free(owner);
        return;
    }
    /* Rows taken while the write runs are left to the statement; a load
     * that reads the old row is dropped (gen). */
    pc_forget(p->mam, owner);
    j->owner = kn_strdup(owner);
    kn_buf_t a = KN_BUF_INIT, n = KN_BUF_INIT;
    mam_pg_array(&a, j->prefs.always, j->prefs.nalways);
    mam_pg_array(&n, j->prefs.never, j->prefs.nnever);
    const char *params[4] = {owner, mam_pref_names[j->prefs.dflt], a.data,
                             n.data};
    kn_pg_query(p->pg, SQL_PREFS_SET, 4, params, prefs_on_set, j);
    kn_buf_free(&a);
    kn_buf_free(&n);
    free(owner);
}

void pres_mam_iq(pres_t *p, const kn_stanza_t *st)
{
    const char *from = kn_stanza_from(st);
    const char *to = kn_stanza_to(st);
    const char *type = kn_stanza_type(st);
    bool set = type != NULL && strcmp(type, "set") == 0;
    int c = kn_stanza_first_child(st, 0);
    if (from == NULL || c < 0 || p->pg == NULL) {
        pres_send_error(p, st, KN_STE_SERVICE_UNAVAILABLE);
        return;
    }
    char *bare = pres_bare_of(from);
    char *tb = to ? pres_bare_of(to) : NULL;
    const char *name = kn_stanza_name(st, c);
    if (!pres_is_local(p, bare) || (tb != NULL && strcmp(tb, bare) != 0)) {
        pres_send_error(p, st, KN_STE_FORBIDDEN); /* one's own archive only */
    } else if (strcmp(name, "query") == 0) {
        if (set)
            mam_query_iq(p, st, c, bare);
        else
            mam_form_send(p, st);
    } else if (strcmp(name, "prefs") == 0) {
        mam_prefs_iq(p, st, c, bare, set);
    } else {
        pres_send_error(p, st, KN_STE_FEATURE_NOT_IMPLEMENTED);
    }
    free(bare);
    free(tb);
}

/* ---- retention ---- */

static void mam_expire_run(pres_t *p);

static void mam_on_expire(const PGresult *res, int err, void *arg)
{
    pres_t *p = life_unref(arg);
    if (p == NULL)
        return;
    struct pres_mam *m = p->mam;
    long n = 0;
    if (err == 0)
        n = strtol(PQcmdTuples((PGresult *)res), NULL, 10);
    else
        kn_log_warn("archive: retention delete failed: %s",
                    res ? PQresultErrorMessage(res) : kn_strerror(err));
    if (n > 0)
        kn_log_info("archive: %ld expired rows removed", n);
    if (err == 0 && n >= MAM_EXPIRE_BATCH) {
        mam_expire_run(p); /* more to remove: the next batch */
        return;
    }
    m->expiring = false;
}

static void mam_expire_run(pres_t *p)
{
    struct pres_mam *m = p->mam;
    double now_ms = ev_now(p->loop) * 1000.0;
    double keep_ms = (double)p->conf.mam_retention_days * 86400000.0;
    if (now_ms <= keep_ms)
        return;
    uint64_t cutoff = (uint64_t)(now_ms - keep_ms) << 16;
    char c[24];
    snprintf(c, sizeof(c), "%" PRIu64, cutoff);
    const char *params[1] = {c};
    m->expiring = true;
    kn_pg_query(p->pg, SQL_EXPIRE, 1, params, mam_on_expire, life_ref(m->life));
}

static void mam_on_expire_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    pres_t *p = t->data;
    if (!p->mam->expiring && p->conf.mam_retention_days > 0 && p->pg != NULL)
        mam_expire_run(p);
}

void pres_mam_start(pres_t *p)
{
    struct pres_mam *m = mam_get(p);
    ev_timer_init(&m->retry, mam_on_retry, MAM_RETRY_S, 0.);
    m->retry.data = p;
    ev_prepare_init(&m->flush_soon, mam_on_flush_soon);
    ev_timer_init(&m->gap, mam_on_gap, MAM_BATCH_GAP_S, 0.);
    m->gap.data = p;
    m->flush_soon.data = p;
    m->started = true;
    double period = (double)p->conf.mam_expire_interval_ms / 1000.0;
    ev_timer_init(&m->expire, mam_on_expire_timer, period, period);
    m->expire.data = p;
    if (p->conf.mam_retention_days > 0)
        ev_timer_start(p->loop, &m->expire);
}

void pres_mam_free(pres_t *p)
{
    struct pres_mam *m = p->mam;
    if (m == NULL)
        return;
    if (p->loop != NULL) {
        ev_timer_stop(p->loop, &m->retry);
        ev_timer_stop(p->loop, &m->expire);
        if (m->started) {
            ev_prepare_stop(p->loop, &m->flush_soon);
            ev_timer_stop(p->loop, &m->gap);
        }
    }
    batch_free(&m->pending);
    if (m->inflight != NULL) {
        batch_free(m->inflight);
        free(m->inflight);
    }
    while (m->waiters != NULL) {
        mam_wait_t *w = m->waiters;
        m->waiters = w->next;
        kn_stanza_unref(&w->iq);
        mam_query_free(&w->q);
        free(w->bare);
        free(w->owner);
        free(w);
    }
    pc_clear(m);
    free(m->load);
    while (m->purges != NULL) {
        mam_purge_t *g = m->purges;
        m->purges = g->next;
        free(g->user);
        free(g);
    }
    m->life->p = NULL;
    life_unref(m->life);
    free(m);
    p->mam = NULL;
}
