/*
 * test_mucd_room.c - mucd's protocol driven with envelopes, no sockets:
 * join/create, occupant presences and status codes, nick conflict and
 * change, groupchat fan-out as one multicast, members-only refusals
 * (R-GRP-3), history on join (R-PERF-7), multi-device occupants
 * (R-GRP-10), offline delivery to absent members with stanza-ids
 * (R-GRP-4), muc#admin member grants visible at once (R-GRP-2), kick,
 * session end, disco (R-GRP-1), MAM paging from the ring (R-GRP-5),
 * voice requests (XEP-0045 7.13/8.6), registration and its approval
 * (R-GRP-7), the group-list IQ (R-GRP-6), a retired room name (R-GRP-7),
 * and first contact (issue 10): a leaver's full JID, a rejoin of a seated
 * resource, presence probes, by on errors.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn_mem.h"
#include "kn_xml.h"
#include "muc_room.h"
#include "muc_service.h"

#define MAXOUT 256
typedef struct out {
    kn_env_kind_t kind;
    char to[256];
    size_t ntargets;
    uint64_t targets[16];
    char *payload;
} out_t;

static out_t outs[MAXOUT];
static size_t nout;
static muc_t M;

#define ROOM "room@conference.localhost"
#define A    "alice@localhost/pc"
#define A2   "alice@localhost/phone"
#define B    "bob@localhost/pc"
#define C    "carol@localhost/pc"

static void cap_send(void *ud, const kn_env_t *env, const char *payload,
                     size_t len)
{
    (void)ud;
    ck_assert_uint_lt(nout, MAXOUT);
    out_t *o = &outs[nout++];
    o->kind = env->kind;
    snprintf(o->to, sizeof(o->to), "%.*s", (int)env->to_len, env->to);
    o->ntargets = env->ntargets;
    for (size_t i = 0; i < env->ntargets && i < 16; i++)
        o->targets[i] = kn_env_target(env, i);
    o->payload = kn_strndup(payload, len);
}

static void clear(void)
{
    for (size_t i = 0; i < nout; i++)
        free(outs[i].payload);
    nout = 0;
}

static void setup(void)
{
    muc_sink_t s = {cap_send, NULL};
    muc_init(&M, "localhost", "conference.localhost", &s);
}

static void teardown(void)
{
    clear();
    muc_fini(&M);
}

static void feed(const char *from, const char *to, uint64_t conn,
                 const char *xml)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_STANZA;
    e.from = from;
    e.from_len = strlen(from);
    e.to = to;
    e.to_len = strlen(to);
    e.conn_id = conn;
    kn_buf_t b = KN_BUF_INIT;
    kn_buf_printf(&b, xml, from, to);
    muc_service_handle(&M, &e, b.data, b.len);
    kn_buf_free(&b);
}

static void join(const char *from, const char *nick, uint64_t conn,
                 const char *extra)
{
    char to[256];
    snprintf(to, sizeof(to), ROOM "/%s", nick);
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<presence xmlns='jabber:client' from='%%s' to='%%s'><x "
             "xmlns='http://jabber.org/protocol/muc'>%s</x></presence>",
             extra ? extra : "");
    feed(from, to, conn, xml);
}

static void say(const char *from, uint64_t conn, const char *body)
{
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<message xmlns='jabber:client' from='%%s' to='%%s' "
             "type='groupchat' id='m1'><body>%s</body></message>",
             body);
    feed(from, ROOM, conn, xml);
}

/* Index of the first output (from `start`) to `to` (STANZA) whose payload
 * contains every needle, or -1. */
static int find(size_t start, const char *to, const char *n1, const char *n2)
{
    for (size_t i = start; i < nout; i++) {
        if (to && (outs[i].kind != KN_ENV_STANZA || strcmp(outs[i].to, to)))
            continue;
        if (n1 && !strstr(outs[i].payload, n1))
            continue;
        if (n2 && !strstr(outs[i].payload, n2))
            continue;
        return (int)i;
    }
    return -1;
}

static size_t count_multicast(void)
{
    size_t n = 0;
    for (size_t i = 0; i < nout; i++)
        n += outs[i].kind == KN_ENV_MULTICAST;
    return n;
}

static bool targets_has(const out_t *o, uint64_t conn)
{
    for (size_t i = 0; i < o->ntargets; i++)
        if (o->targets[i] == conn)
            return true;
    return false;
}

START_TEST(create_join_and_status_codes)
{
    join(A, "alice", 11, NULL);
    muc_room_t *r = muc_room_find(&M, ROOM);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(muc_room_aff(r, "alice@localhost"), MUC_AFF_OWNER);
    int self = find(0, A, "code='110'", "code='201'");
    ck_assert_int_ge(self, 0);
    ck_assert_ptr_nonnull(strstr(outs[self].payload, "affiliation='owner'"));
    ck_assert_ptr_nonnull(strstr(outs[self].payload, "role='moderator'"));
    /* then the (empty) subject */
    int subj = find((size_t)self, A, "<subject", NULL);
    ck_assert_int_gt(subj, self);
    clear();
    join(B, "bob", 21, NULL);
    /* bob gets alice's presence first, without her JID (semi-anonymous) */
    int ap = find(0, B, "from='" ROOM "/alice'", NULL);
    ck_assert_int_ge(ap, 0);
    ck_assert_ptr_null(strstr(outs[ap].payload, "jid="));
    /* alice (moderator) sees bob's real JID, by multicast */
    bool seen = false;
    for (size_t i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_MULTICAST && targets_has(&outs[i], 11) &&
            strstr(outs[i].payload, "jid='" B "'"))
            seen = true;
    ck_assert(seen);
    int bs = find(0, B, "code='110'", "role='participant'");
    ck_assert_int_gt(bs, ap);
    ck_assert_int_lt(find(0, B, "code='201'", NULL), 0);
}
END_TEST

START_TEST(groupchat_is_one_multicast)
{
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    join(C, "carol", 31, NULL);
    clear();
    say(B, 21, "hello all");
    ck_assert_uint_eq(nout, 1);
    ck_assert_int_eq(outs[0].kind, KN_ENV_MULTICAST);
    ck_assert_uint_eq(outs[0].ntargets, 3);
    ck_assert(targets_has(&outs[0], 11) && targets_has(&outs[0], 21) &&
              targets_has(&outs[0], 31));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "from='" ROOM "/bob'"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "id='m1'"));
    ck_assert_ptr_null(strstr(outs[0].payload, " to="));
}
END_TEST

START_TEST(nick_conflict_and_change)
{
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    clear();
    join(C, "alice", 31, NULL);
    int e = find(0, C, "type='error'", "<conflict");
    ck_assert_int_ge(e, 0);
    ck_assert_uint_eq(count_multicast(), 0);
    clear();
    join(B, "robert", 21, NULL); /* nick change */
    int u = find(0, B, "code='303'", "nick='robert'");
    ck_assert_int_ge(u, 0);
    ck_assert_ptr_nonnull(strstr(outs[u].payload, "type='unavailable'"));
    int a = find((size_t)u, B, "from='" ROOM "/robert'", "code='110'");
    ck_assert_int_gt(a, u);
    muc_room_t *r = muc_room_find(&M, ROOM);
    ck_assert_ptr_nonnull(muc_occ_find(r, "robert"));
    ck_assert_ptr_null(muc_occ_find(r, "bob"));
    clear();
    join(B, "alice", 21, NULL); /* change into a taken nick */
    ck_assert_int_ge(find(0, B, "<conflict", NULL), 0);
}
END_TEST

START_TEST(members_only_refusals_R_GRP_3)
{
    join(A, "alice", 11, NULL);
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='c1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#owner'><x "
         "xmlns='jabber:x:data' type='submit'><field "
         "var='muc#roomconfig_membersonly'><value>1</value></field></x>"
         "</query></iq>");
    ck_assert_int_ge(find(0, A, "type='result'", "id='c1'"), 0);
    clear();
    join(B, "bob", 21, NULL);
    ck_assert_int_ge(find(0, B, "<registration-required", NULL), 0);
    /* ban carol, then she is refused with forbidden */
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='b1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='outcast' jid='carol@localhost'/></query></iq>");
    ck_assert_int_ge(find(0, A, "type='result'", "id='b1'"), 0);
    clear();
    join(C, "carol", 31, NULL);
    ck_assert_int_ge(find(0, C, "<forbidden", NULL), 0);
    /* a non-occupant's message is refused and nothing is delivered */
    clear();
    say(B, 21, "let me in");
    ck_assert_int_ge(find(0, B, "<not-acceptable", NULL), 0);
    ck_assert_uint_eq(count_multicast(), 0);
}
END_TEST

START_TEST(history_on_join_R_PERF_7)
{
    join(A, "alice", 11, NULL);
    for (int i = 0; i < 30; i++)
        say(A, 11, "msg");
    clear();
    join(B, "bob", 21, NULL);
    size_t n = 0;
    for (size_t i = 0; i < nout; i++)
        n += strcmp(outs[i].to, B) == 0 &&
             strstr(outs[i].payload, "urn:xmpp:delay") != NULL;
    ck_assert_uint_eq(n, 25); /* room default */
    clear();
    join(C, "carol", 31, "<history maxstanzas='3'/>");
    n = 0;
    for (size_t i = 0; i < nout; i++)
        n += strcmp(outs[i].to, C) == 0 &&
             strstr(outs[i].payload, "urn:xmpp:delay") != NULL;
    ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(two_devices_share_one_nick_R_GRP_10)
{
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    clear();
    join(A2, "alice", 12, NULL);
    /* nobody else hears of the second device */
    ck_assert_uint_eq(count_multicast(), 0);
    ck_assert_int_ge(find(0, A2, "code='110'", NULL), 0);
    ck_assert_int_ge(find(0, A2, "from='" ROOM "/bob'", NULL), 0);
    muc_room_t *r = muc_room_find(&M, ROOM);
    ck_assert_uint_eq(r->nocc, 2);
    clear();
    say(B, 21, "to both devices");
    ck_assert_uint_eq(nout, 1);
    ck_assert_uint_eq(outs[0].ntargets, 3);
    ck_assert(targets_has(&outs[0], 11) && targets_has(&outs[0], 12));
    /* one device leaves: the occupant stays */
    clear();
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_DOWN;
    e.from = A;
    e.from_len = strlen(A);
    muc_service_handle(&M, &e, NULL, 0);
    ck_assert_uint_eq(count_multicast(), 0);
    ck_assert_ptr_nonnull(muc_occ_find(r, "alice"));
    /* the other session ends too: bob sees alice leave */
    clear();
    e.from = A2;
    e.from_len = strlen(A2);
    muc_service_handle(&M, &e, NULL, 0);
    ck_assert_uint_eq(count_multicast(), 1);
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "type='unavailable'"));
    ck_assert(targets_has(&outs[0], 21));
    ck_assert_ptr_null(muc_occ_find(r, "alice"));
}
END_TEST

static void make_group(void)
{
    join(A, "alice", 11, NULL);
    muc_room_t *r = muc_room_find(&M, ROOM);
    muc_config_group(&r->cfg);
    muc_room_set_aff(r, "bob@localhost", MUC_AFF_MEMBER, NULL);
    muc_room_set_aff(r, "carol@localhost", MUC_AFF_MEMBER, NULL);
}

START_TEST(offline_delivery_to_members_R_GRP_4)
{
    make_group();
    join(B, "bob", 21, NULL);
    clear();
    say(A, 11, "while you were out");
    /* occupants: one multicast with the stanza-id */
    ck_assert_uint_eq(count_multicast(), 1);
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "urn:xmpp:sid:0"));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "id='1'"));
    /* carol (member, not in the room) gets it at her bare JID, once */
    int c = find(0, "carol@localhost", "while you were out", NULL);
    ck_assert_int_ge(c, 0);
    ck_assert_ptr_nonnull(strstr(outs[c].payload, "type='normal'"));
    ck_assert_ptr_nonnull(strstr(outs[c].payload, "urn:xmpp:sid:0"));
    ck_assert_ptr_nonnull(strstr(outs[c].payload, "type='ofrom'"));
    ck_assert_ptr_nonnull(strstr(outs[c].payload, "from='" ROOM "'"));
    ck_assert_int_lt(find((size_t)c + 1, "carol@localhost", NULL, NULL), 0);
    /* bob is in the room: no offline copy */
    ck_assert_int_lt(find(0, "bob@localhost", NULL, NULL), 0);
    clear();
    say(A, 11, "second");
    ck_assert_int_ge(find(0, "carol@localhost", "id='2'", NULL), 0);
}
END_TEST

START_TEST(admin_member_grant_visible_at_once_R_GRP_2)
{
    join(A, "alice", 11, NULL);
    clear();
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='g1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='member' jid='bob@localhost'/></query></iq>");
    ck_assert_int_ge(find(0, A, "type='result'", "id='g1'"), 0);
    /* idempotent */
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='g2' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='member' jid='bob@localhost'/></query></iq>");
    ck_assert_int_ge(find(0, A, "type='result'", "id='g2'"), 0);
    clear();
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='get' id='l1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='member'/></query></iq>");
    int l = find(0, A, "id='l1'", "jid='bob@localhost'");
    ck_assert_int_ge(l, 0);
    /* bob may not list or grant */
    join(B, "bob", 21, NULL);
    clear();
    feed(B, ROOM, 21,
         "<iq xmlns='jabber:client' type='set' id='g3' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='member' jid='carol@localhost'/></query></iq>");
    ck_assert_int_ge(find(0, B, "id='g3'", "<forbidden"), 0);
    /* the last owner cannot step down */
    clear();
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='o1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "affiliation='member' jid='alice@localhost'/></query></iq>");
    ck_assert_int_ge(find(0, A, "id='o1'", "<conflict"), 0);
}
END_TEST

START_TEST(kick_by_moderator)
{
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    clear();
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='k1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "nick='bob' role='none'><reason>spam</reason></item></query></iq>");
    int self = find(0, B, "code='307'", "code='110'");
    ck_assert_int_ge(self, 0);
    ck_assert_ptr_nonnull(strstr(outs[self].payload, "<reason>spam</reason>"));
    ck_assert_int_ge(find(0, A, "id='k1'", "type='result'"), 0);
    ck_assert_ptr_null(muc_occ_find(muc_room_find(&M, ROOM), "bob"));
    /* bob cannot kick alice */
    join(B, "bob", 21, NULL);
    clear();
    feed(B, ROOM, 21,
         "<iq xmlns='jabber:client' type='set' id='k2' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#admin'><item "
         "nick='alice' role='none'/></query></iq>");
    ck_assert_int_ge(find(0, B, "id='k2'", "<not-allowed"), 0);
}
END_TEST

START_TEST(leave_and_temporary_room_goes)
{
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    clear();
    feed(B, ROOM "/bob", 21,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'><status>bye</status></presence>");
    ck_assert_int_ge(find(0, B, "type='unavailable'", "code='110'"), 0);
    ck_assert_uint_eq(count_multicast(), 1);
    ck_assert_ptr_nonnull(strstr(outs[find(0, NULL, "bye", NULL)].payload,
                                 "<status>bye</status>"));
    feed(A, ROOM "/alice", 11,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    ck_assert_ptr_null(muc_room_find(&M, ROOM));
}
END_TEST

START_TEST(disco_of_group_R_GRP_1)
{
    make_group();
    clear();
    feed(B, ROOM, 21,
         "<iq xmlns='jabber:client' type='get' id='d1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    int d = find(0, B, "id='d1'", "type='result'");
    ck_assert_int_ge(d, 0);
    const char *p = outs[d].payload;
    ck_assert_ptr_nonnull(strstr(p, "muc_persistent"));
    ck_assert_ptr_nonnull(strstr(p, "muc_membersonly"));
    ck_assert_ptr_nonnull(strstr(p, "muc_nonanonymous"));
    ck_assert_ptr_nonnull(strstr(p, "muc_hidden"));
    ck_assert_ptr_nonnull(strstr(p, "urn:xmpp:mam:2"));
    /* hidden: not in the service's items */
    clear();
    feed(B, "conference.localhost", 21,
         "<iq xmlns='jabber:client' type='get' id='d2' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    d = find(0, B, "id='d2'", NULL);
    ck_assert_int_ge(d, 0);
    ck_assert_ptr_null(strstr(outs[d].payload, ROOM));
}
END_TEST

START_TEST(mam_paging_from_ring_R_GRP_5)
{
    make_group();
    muc_room_t *r = muc_room_find(&M, ROOM);
    r->cfg.history_mode = MUC_HISTORY_NUMBER;
    r->cfg.history_max = 100;
    for (int i = 0; i < 25; i++)
        say(A, 11, "m");
    clear();
    feed(A, ROOM, 11,
         "<iq xmlns='jabber:client' type='set' id='q1' from='%s' to='%s'>"
         "<query xmlns='urn:xmpp:mam:2' queryid='x'><set "
         "xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>5</after>"
         "</set></query></iq>");
    size_t n = 0;
    for (size_t i = 0; i < nout; i++)
        n += strstr(outs[i].payload, "<result") != NULL;
    ck_assert_uint_eq(n, 10);
    ck_assert_int_ge(find(0, A, "<result", "id='6'"), 0);
    int fin = find(0, A, "<fin", NULL);
    ck_assert_int_eq(fin, (int)nout - 1);
    ck_assert_ptr_nonnull(strstr(outs[fin].payload, "<last>15</last>"));
    ck_assert_ptr_null(strstr(outs[fin].payload, "complete="));
    /* a non-member may not read the group's archive */
    clear();
    feed("dave@localhost/x", ROOM, 41,
         "<iq xmlns='jabber:client' type='set' id='q2' from='%s' to='%s'>"
         "<query xmlns='urn:xmpp:mam:2'/></iq>");
    ck_assert_int_ge(find(0, "dave@localhost/x", "<forbidden", NULL), 0);
}
END_TEST

#define VOICE_REQ                                                              \
    "<message xmlns='jabber:client' from='%s' to='%s'><x "                     \
    "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"       \
    "http://jabber.org/protocol/muc#request</value></field><field "            \
    "var='muc#role'><value>participant</value></field></x></message>"

START_TEST(voice_request_and_grant_XEP_0045)
{
    M.set.voice_interval = 60;
    join(A, "alice", 11, NULL);
    muc_room_find(&M, ROOM)->cfg.moderated = true;
    join(B, "bob", 21, NULL);
    muc_occ_t *bob = muc_occ_find(muc_room_find(&M, ROOM), "bob");
    ck_assert_int_eq(bob->role, MUC_ROLE_VISITOR);
    clear();
    feed(B, ROOM, 21, VOICE_REQ);
    /* alice, the moderator, gets the approval form; bob nothing yet */
    int f = find(0, A, "muc#request_allow", "muc#roomnick");
    ck_assert_int_ge(f, 0);
    ck_assert_ptr_nonnull(strstr(outs[f].payload, "<value>" B "</value>"));
    ck_assert_ptr_nonnull(strstr(outs[f].payload, "<value>bob</value>"));
    ck_assert_int_lt(find(0, B, NULL, NULL), 0);
    /* a second request waits */
    clear();
    feed(B, ROOM, 21, VOICE_REQ);
    ck_assert_int_ge(find(0, B, "<resource-constraint", NULL), 0);
    ck_assert_int_lt(find(0, A, NULL, NULL), 0);
    /* bob cannot answer his own request */
    clear();
    feed(B, ROOM, 21,
         "<message xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
         "http://jabber.org/protocol/muc#request</value></field><field "
         "var='muc#roomnick'><value>bob</value></field><field "
         "var='muc#request_allow'><value>true</value></field></x></message>");
    ck_assert_int_ge(find(0, B, "<forbidden", NULL), 0);
    ck_assert_int_eq(bob->role, MUC_ROLE_VISITOR);
    /* alice grants it: bob's presence with the new role, to both */
    clear();
    feed(A, ROOM, 11,
         "<message xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
         "http://jabber.org/protocol/muc#request</value></field><field "
         "var='muc#jid'><value>" B "</value></field><field "
         "var='muc#roomnick'><value>bob</value></field><field "
         "var='muc#request_allow'><value>true</value></field></x></message>");
    ck_assert_int_eq(bob->role, MUC_ROLE_PARTICIPANT);
    ck_assert_int_ge(find(0, B, "code='110'", "role='participant'"), 0);
    bool seen = false;
    for (size_t i = 0; i < nout; i++)
        seen |= outs[i].kind == KN_ENV_MULTICAST && targets_has(&outs[i], 11) &&
                strstr(outs[i].payload, "role='participant'") != NULL;
    ck_assert(seen);
    /* now a participant: no more requests */
    clear();
    feed(B, ROOM, 21, VOICE_REQ);
    ck_assert_int_ge(find(0, B, "<not-allowed", NULL), 0);
    /* a bad form */
    clear();
    feed(B, ROOM, 21,
         "<message xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
         "http://jabber.org/protocol/muc#request</value></field><field "
         "var='muc#role'><value>owner</value></field></x></message>");
    ck_assert_int_ge(find(0, B, "<bad-request", NULL), 0);
    /* a visitor with no moderator in the room to ask */
    join(C, "carol", 31, NULL);
    feed(A, ROOM "/alice", 11,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    clear();
    feed(C, ROOM, 31, VOICE_REQ);
    ck_assert_int_ge(find(0, C, "<recipient-unavailable", NULL), 0);
}
END_TEST

#define REG_SET(nick)                                                          \
    "<iq xmlns='jabber:client' type='set' id='r1' from='%s' to='%s'><query "   \
    "xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"       \
    "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register"    \
    "</value></field><field var='muc#register_roomnick'><value>" nick          \
    "</value></field></x></query></iq>"

START_TEST(registration_and_approval_R_GRP_7)
{
    make_group(); /* alice owner; bob, carol members */
    muc_room_t *r = muc_room_find(&M, ROOM);
    muc_room_set_aff(r, "adam@localhost", MUC_AFF_ADMIN, NULL);
    const char *D = "dave@localhost/pc";
    clear();
    join(D, "dave", 41, NULL);
    ck_assert_int_ge(find(0, D, "<registration-required", NULL), 0);
    clear();
    feed(D, ROOM, 41,
         "<iq xmlns='jabber:client' type='get' id='g1' from='%s' to='%s'>"
         "<query xmlns='jabber:iq:register'/></iq>");
    int g = find(0, D, "id='g1'", "muc#register_roomnick");
    ck_assert_int_ge(g, 0);
    ck_assert_ptr_null(strstr(outs[g].payload, "<registered"));
    /* a member registering again: conflict; bob's nick: conflict */
    clear();
    feed(B, ROOM, 21, REG_SET("again"));
    ck_assert_int_ge(find(0, B, "<conflict", NULL), 0);
    feed(B, ROOM "/bob", 21,
         "<presence xmlns='jabber:client' from='%s' to='%s'/>");
    clear();
    feed(D, ROOM, 41, REG_SET("bob"));
    ck_assert_int_ge(find(0, D, "<conflict", NULL), 0);
    /* the request goes to the owner and the admin, by bare JID, once */
    clear();
    feed(D, ROOM, 41, REG_SET("dave"));
    ck_assert_int_ge(find(0, D, "id='r1'", "type='result'"), 0);
    int fa = find(0, "alice@localhost", "muc#register_allow", NULL);
    int fd = find(0, "adam@localhost", "muc#register_allow", NULL);
    ck_assert_int_ge(fa, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_ptr_nonnull(
        strstr(outs[fa].payload, "<value>dave@localhost</value>"));
    ck_assert_ptr_nonnull(strstr(outs[fa].payload, "<body>"));
    ck_assert_int_lt(find(0, "bob@localhost", NULL, NULL), 0);
    ck_assert_ptr_nonnull(muc_regreq_find(r, "dave@localhost"));
    clear();
    feed(D, ROOM, 41, REG_SET("dave"));
    ck_assert_int_ge(find(0, D, "type='result'", NULL), 0);
    ck_assert_int_lt(find(0, "alice@localhost", NULL, NULL), 0);
    /* erin cannot ask for the nick dave asked for */
    clear();
    feed("erin@localhost/pc", ROOM, 51, REG_SET("dave"));
    ck_assert_int_ge(find(0, "erin@localhost/pc", "<conflict", NULL), 0);
    /* bob (a member) cannot approve */
#define APPROVE(allow)                                                         \
    "<message xmlns='jabber:client' from='%s' to='%s'><x "                     \
    "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"       \
    "http://jabber.org/protocol/muc#register</value></field><field "           \
    "var='muc#jid'><value>dave@localhost</value></field><field "               \
    "var='muc#register_allow'><value>" allow "</value></field></x></message>"
    clear();
    feed(B, ROOM, 21, APPROVE("1"));
    ck_assert_int_ge(find(0, B, "<forbidden", NULL), 0);
    ck_assert_int_eq(muc_room_aff(r, "dave@localhost"), MUC_AFF_NONE);
    /* the admin approves: member, nick from the request, bookmarked */
    clear();
    feed("adam@localhost/x", ROOM, 61, APPROVE("1"));
    ck_assert_int_eq(muc_room_aff(r, "dave@localhost"), MUC_AFF_MEMBER);
    ck_assert_str_eq(muc_room_affrec(r, "dave@localhost")->nick, "dave");
    ck_assert_ptr_null(muc_regreq_find(r, "dave@localhost"));
    ck_assert_int_ge(find(0, "dave@localhost", "urn:xmpp:bookmarks:1", NULL),
                     0);
    clear();
    join(D, "dave", 41, NULL);
    ck_assert_int_ge(find(0, D, "code='110'", "affiliation='member'"), 0);
    clear();
    feed(D, ROOM, 41,
         "<iq xmlns='jabber:client' type='get' id='g2' from='%s' to='%s'>"
         "<query xmlns='jabber:iq:register'/></iq>");
    ck_assert_int_ge(find(0, D, "id='g2'", "<registered"), 0);
    /* a denial only drops the request */
    feed("erin@localhost/pc", ROOM, 51, REG_SET("erin"));
    ck_assert_ptr_nonnull(muc_regreq_find(r, "erin@localhost"));
    clear();
    feed(A, ROOM, 11,
         "<message xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
         "http://jabber.org/protocol/muc#register</value></field><field "
         "var='muc#jid'><value>erin@localhost</value></field><field "
         "var='muc#register_allow'><value>0</value></field></x></message>");
    ck_assert_ptr_null(muc_regreq_find(r, "erin@localhost"));
    ck_assert_int_eq(muc_room_aff(r, "erin@localhost"), MUC_AFF_NONE);
    ck_assert_uint_eq(nout, 0);
    /* an approval without muc#jid is a bad request */
    feed(A, ROOM, 11,
         "<message xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
         "http://jabber.org/protocol/muc#register</value></field><field "
         "var='muc#register_allow'><value>1</value></field></x></message>");
    ck_assert_int_ge(find(0, A, "<bad-request", NULL), 0);
}
END_TEST

START_TEST(group_list_from_memory_R_GRP_6)
{
    make_group(); /* room: a group, alice owner, bob member */
    join(B, "bob", 21, NULL);
    /* a plain room where bob is owner is no group */
    feed(B, "plain@conference.localhost/bob", 21,
         "<presence xmlns='jabber:client' from='%s' to='%s'/>");
    ck_assert_ptr_nonnull(muc_room_find(&M, "plain@conference.localhost"));
    clear();
    feed(B, "conference.localhost", 21,
         "<iq xmlns='jabber:client' type='get' id='l1' from='%s' to='%s'>"
         "<query xmlns='urn:kiln:groups:0'/></iq>");
    int l = find(0, B, "id='l1'", "type='result'");
    ck_assert_int_ge(l, 0);
    ck_assert_ptr_nonnull(strstr(outs[l].payload, "jid='" ROOM "'"));
    ck_assert_ptr_nonnull(strstr(outs[l].payload, "affiliation='member'"));
    ck_assert_ptr_null(strstr(outs[l].payload, "plain@"));
    /* an outcast is in no list */
    muc_room_set_aff(muc_room_find(&M, ROOM), "bob@localhost", MUC_AFF_OUTCAST,
                     NULL);
    clear();
    feed(B, "conference.localhost", 21,
         "<iq xmlns='jabber:client' type='get' id='l2' from='%s' to='%s'>"
         "<query xmlns='urn:kiln:groups:0'/></iq>");
    l = find(0, B, "id='l2'", "type='result'");
    ck_assert_int_ge(l, 0);
    ck_assert_ptr_null(strstr(outs[l].payload, "<item"));
    /* read-only; advertised by the service */
    clear();
    feed(B, "conference.localhost", 21,
         "<iq xmlns='jabber:client' type='set' id='l3' from='%s' to='%s'>"
         "<query xmlns='urn:kiln:groups:0'/></iq>");
    ck_assert_int_ge(find(0, B, "id='l3'", "<not-allowed"), 0);
    feed(B, "conference.localhost", 21,
         "<iq xmlns='jabber:client' type='get' id='l4' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    ck_assert_int_ge(find(0, B, "id='l4'", "urn:kiln:groups:0"), 0);
}
END_TEST

START_TEST(retired_name_refused_R_GRP_7)
{
    /* What muc_lookup.c hands on when PostgreSQL holds a tombstone. */
    const char *xml =
        "<presence xmlns='jabber:client' from='" A "' to='" ROOM "/alice'><x "
        "xmlns='http://jabber.org/protocol/muc'/></presence>";
    kn_stanza_t *st = NULL;
    ck_assert_int_eq(kn_xml_parse_stanza(xml, strlen(xml), NULL, &st), 0);
    muc_in_t in = {st,
                   11,
                   A,
                   "alice@localhost",
                   ROOM,
                   "alice",
                   MUC_LOOKUP_RETIRED,
                   "2030-01-01 00:00:00 UTC"};
    muc_service_dispatch(&M, &in);
    int e = find(0, A, "<not-allowed", "retired until 2030-01-01");
    ck_assert_int_ge(e, 0);
    ck_assert_ptr_null(muc_room_find(&M, ROOM));
    /* a free name creates the room (201) */
    clear();
    in.lookup = MUC_LOOKUP_FREE;
    muc_service_dispatch(&M, &in);
    ck_assert_int_ge(find(0, A, "code='201'", NULL), 0);
    kn_stanza_unref(&st);
}
END_TEST

/* A join of room name (at conference.localhost) as nick. */
static void join_room(const char *from, const char *name, const char *nick,
                      uint64_t conn)
{
    char to[256];
    snprintf(to, sizeof(to), "%s@conference.localhost/%s", name, nick);
    feed(from, to, conn,
         "<presence xmlns='jabber:client' from='%s' to='%s'><x "
         "xmlns='http://jabber.org/protocol/muc'/></presence>");
}

START_TEST(rooms_per_user_not_allowed_issue_16)
{
    M.set.max_rooms_per_user = 2;
    join_room(A, "r1", "alice", 11);
    join_room(A, "r2", "alice", 11);
    ck_assert_ptr_nonnull(muc_room_find(&M, "r2@conference.localhost"));
    clear();
    /* A third creation: not-allowed (XEP-0045 10.1.1), with the limit. */
    join_room(A, "r3", "alice", 11);
    ck_assert_int_ge(find(0, A, "<not-allowed", "at most 2"), 0);
    ck_assert_int_ge(find(0, A, "type='error'", NULL), 0);
    ck_assert_ptr_null(muc_room_find(&M, "r3@conference.localhost"));
    /* Joining a room somebody else owns is no creation. */
    join_room(B, "bobs", "bob", 21);
    clear();
    join_room(A, "bobs", "alice", 11);
    ck_assert_int_ge(find(0, A, "code='110'", NULL), 0);
    ck_assert_int_lt(find(0, A, "<not-allowed", NULL), 0);
    /* Others still create; and when alice's temporary room goes, so does
     * its place in her count. */
    join_room(C, "r3", "carol", 31);
    ck_assert_ptr_nonnull(muc_room_find(&M, "r3@conference.localhost"));
    feed(A, "r1@conference.localhost/alice", 11,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    ck_assert_ptr_null(muc_room_find(&M, "r1@conference.localhost"));
    clear();
    join_room(A, "r4", "alice", 11);
    ck_assert_int_ge(find(0, A, "code='201'", NULL), 0);
}
END_TEST

START_TEST(occupants_ceiling_service_unavailable_XEP_0045_7_2_10)
{
    M.set.max_occupants = 2;
    join(A, "alice", 11, NULL);
    join(B, "bob", 21, NULL);
    clear();
    join(C, "carol", 31, NULL);
    int e = find(0, C, "<service-unavailable", "at most 2 occupants");
    ck_assert_int_ge(e, 0);
    ck_assert_ptr_nonnull(strstr(outs[e].payload, "type='error'"));
    ck_assert_uint_eq(muc_room_find(&M, ROOM)->nocc, 2);
    /* Nobody else heard of carol. */
    ck_assert_uint_eq(count_multicast(), 0);
    /* A higher room maxusers does not lift the ceiling. */
    muc_room_find(&M, ROOM)->cfg.max_occupants = 10;
    clear();
    join(C, "carol", 31, NULL);
    ck_assert_int_ge(find(0, C, "at most 2 occupants", NULL), 0);
    /* Once bob leaves, carol gets in. */
    feed(B, ROOM "/bob", 21,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    clear();
    join(C, "carol", 31, NULL);
    ck_assert_int_ge(find(0, C, "code='110'", NULL), 0);
}
END_TEST

START_TEST(bad_input_never_crashes)
{
    feed(A, ROOM "/alice", 11, "<presence xmlns='jabber:client'");
    feed(A, ROOM, 11,
         "<message xmlns='jabber:client' type='groupchat'>"
         "<body>x</body></message>");
    ck_assert_int_ge(find(0, NULL, "<item-not-found", NULL), 0);
    feed(A, ROOM, 11, "<iq xmlns='jabber:client' type='get' id='z'/>");
    feed(A, "other.localhost", 11,
         "<presence xmlns='jabber:client' from='%s' to='%s'/>");
    feed(A, ROOM, 11, "<presence xmlns='jabber:client' from='%s' to='%s'/>");
    ck_assert_int_ge(find(0, A, "<jid-malformed", NULL), 0);
}
END_TEST

/* First contact (issue 10): what a real client sees. */

static void session_down(const char *full)
{
    kn_env_t e = {0};
    e.kind = KN_ENV_SESSION_DOWN;
    e.from = full;
    e.from_len = strlen(full);
    muc_service_handle(&M, &e, NULL, 0);
}

/* The one multicast in outs whose targets include conn, or -1. */
static int find_mc(uint64_t conn, const char *n1)
{
    for (size_t i = 0; i < nout; i++)
        if (outs[i].kind == KN_ENV_MULTICAST && targets_has(&outs[i], conn) &&
            (n1 == NULL || strstr(outs[i].payload, n1)))
            return (int)i;
    return -1;
}

START_TEST(leave_shows_full_jid_XEP_0045_7_14)
{
    join(A, "alice", 11, NULL); /* owner: moderator */
    join(C, "carol", 31, NULL); /* participant */
    join(B, "bob", 21, NULL);
    clear();
    /* semi-anonymous: the moderator sees bob's full JID, carol none */
    feed(B, ROOM "/bob", 21,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    int ma = find_mc(11, "type='unavailable'");
    ck_assert_int_ge(ma, 0);
    ck_assert_ptr_nonnull(strstr(outs[ma].payload, "jid='" B "'"));
    int mc = find_mc(31, "type='unavailable'");
    ck_assert_int_ge(mc, 0);
    ck_assert_ptr_null(strstr(outs[mc].payload, "jid="));
    ck_assert_int_ge(find(0, B, "code='110'", "jid='" B "'"), 0);
    /* non-anonymous, the session ends: everyone sees the full JID */
    muc_room_find(&M, ROOM)->cfg.whois = MUC_WHOIS_ANYONE;
    join(B, "bob", 21, NULL);
    clear();
    session_down(B);
    ck_assert_uint_eq(count_multicast(), 1);
    ck_assert(targets_has(&outs[0], 11) && targets_has(&outs[0], 31));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "jid='" B "'"));
    /* one device of two leaves: it sees its own full JID */
    join(A2, "alice", 12, NULL);
    clear();
    feed(A2, ROOM "/alice", 12,
         "<presence xmlns='jabber:client' type='unavailable' from='%s' "
         "to='%s'/>");
    ck_assert_uint_eq(count_multicast(), 0);
    ck_assert_int_ge(find(0, A2, "type='unavailable'", "jid='" A2 "'"), 0);
}
END_TEST

START_TEST(rejoin_gets_join_sequence_XEP_0045_7_2)
{
    join(A, "alice", 11, NULL);
    muc_room_find(&M, ROOM)->cfg.whois = MUC_WHOIS_ANYONE;
    say(A, 11, "before bob");
    join(B, "bob", 21, NULL);
    clear();
    /* the same join again, on a new connection: the whole sequence to
     * bob, nothing to anyone else */
    join(B, "bob", 22, NULL);
    ck_assert_uint_eq(count_multicast(), 0);
    int ap = find(0, B, "from='" ROOM "/alice'", NULL);
    int self = find(0, B, "code='110'", "code='100'");
    int hist = find(0, B, "before bob", "urn:xmpp:delay");
    int subj = find(0, B, "<subject", NULL);
    ck_assert_int_ge(ap, 0);
    ck_assert_int_gt(self, ap);
    ck_assert_int_gt(hist, self);
    ck_assert_int_gt(subj, hist);
    ck_assert_int_lt(find(0, B, "code='201'", NULL), 0);
    for (size_t i = 0; i < nout; i++)
        ck_assert_str_eq(outs[i].to, B);
    /* the seat follows the new connection */
    clear();
    say(A, 11, "after");
    ck_assert(targets_has(&outs[0], 22) && !targets_has(&outs[0], 21));
    /* a rejoin with another presence: the others hear it once */
    clear();
    join(B, "bob", 22, NULL);
    ck_assert_uint_eq(count_multicast(), 0);
    clear();
    feed(B, ROOM "/bob", 22,
         "<presence xmlns='jabber:client' from='%s' to='%s'><show>away"
         "</show><x xmlns='http://jabber.org/protocol/muc'/></presence>");
    ck_assert_uint_eq(count_multicast(), 1);
    int mc = find_mc(11, "<show>away</show>");
    ck_assert_int_ge(mc, 0);
    ck_assert(!targets_has(&outs[mc], 22));
    ck_assert_int_ge(find(0, B, "code='110'", "<show>away</show>"), 0);
}
END_TEST

START_TEST(probe_answers_XEP_0045_17_3)
{
    join(A, "alice", 11, NULL);
    feed(B, ROOM "/bob", 21,
         "<presence xmlns='jabber:client' from='%s' to='%s'><status>busy"
         "</status><x xmlns='http://jabber.org/protocol/muc'/></presence>");
    muc_room_t *r = muc_room_find(&M, ROOM);
    muc_room_set_aff(r, "dave@localhost", MUC_AFF_MEMBER, "dave");
    clear();
    /* a participant probes the moderator: no real JID, no 110 */
    feed(B, ROOM "/alice", 21,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_uint_eq(nout, 1);
    ck_assert_str_eq(outs[0].to, B);
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "from='" ROOM "/alice'"));
    ck_assert_ptr_null(strstr(outs[0].payload, "type="));
    ck_assert_ptr_nonnull(strstr(outs[0].payload, "role='moderator'"));
    ck_assert_ptr_null(strstr(outs[0].payload, "jid="));
    ck_assert_ptr_null(strstr(outs[0].payload, "code='110'"));
    /* the moderator probes bob: his status and real JID */
    clear();
    feed(A, ROOM "/bob", 11,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_int_ge(find(0, A, "<status>busy</status>", "jid='" B "'"), 0);
    /* an absent member's reserved nick: unavailable */
    clear();
    feed(A, ROOM "/dave", 11,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_int_ge(find(0, A, "type='unavailable'", "affiliation='member'"),
                     0);
    /* a nick nobody has: nothing */
    clear();
    feed(A, ROOM "/nobody", 11,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_uint_eq(nout, 0);
    /* a non-occupant: not-acceptable, by the room */
    feed(C, ROOM "/bob", 31,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_int_ge(find(0, C, "<not-acceptable", "by='" ROOM "'"), 0);
    ck_assert_uint_eq(nout, 1);
    /* a room that does not exist: item-not-found, by the service */
    clear();
    feed(C, "none@conference.localhost/x", 31,
         "<presence xmlns='jabber:client' type='probe' from='%s' to='%s'/>");
    ck_assert_int_ge(find(0, C, "<item-not-found", "by='conference.localhost'"),
                     0);
}
END_TEST

START_TEST(errors_say_by_RFC_6120_8_3_2)
{
    join(A, "alice", 11, NULL);
    clear();
    join(B, "alice", 21, NULL); /* conflict */
    ck_assert_int_ge(find(0, B, "<conflict", "by='" ROOM "'"), 0);
    feed(B, ROOM "/nobody", 21,
         "<message xmlns='jabber:client' type='chat' from='%s' to='%s'>"
         "<body>x</body></message>");
    ck_assert_int_ge(find(0, B, "type='error'", "by='" ROOM "'"), 0);
    clear();
    feed(B, "conference.localhost", 21,
         "<message xmlns='jabber:client' from='%s' to='%s'><body>x</body>"
         "</message>");
    ck_assert_int_ge(
        find(0, B, "<service-unavailable", "by='conference.localhost'"), 0);
    clear();
    feed(B, ROOM, 21,
         "<iq xmlns='jabber:client' type='get' id='o1' from='%s' to='%s'>"
         "<query xmlns='http://jabber.org/protocol/muc#owner'/></iq>");
    ck_assert_int_ge(find(0, B, "<forbidden", "by='" ROOM "'"), 0);
    /* the <error/> is the element that says it, nothing else does */
    const char *e = strstr(outs[0].payload, "<error ");
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(strstr(e, "by='" ROOM "'"));
    ck_assert_ptr_eq(strstr(outs[0].payload, "by="), strstr(e, "by="));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mucd_room");
    TCase *tc = tcase_create("room");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_join_and_status_codes);
    tcase_add_test(tc, groupchat_is_one_multicast);
    tcase_add_test(tc, nick_conflict_and_change);
    tcase_add_test(tc, members_only_refusals_R_GRP_3);
    tcase_add_test(tc, history_on_join_R_PERF_7);
    tcase_add_test(tc, two_devices_share_one_nick_R_GRP_10);
    tcase_add_test(tc, offline_delivery_to_members_R_GRP_4);
    tcase_add_test(tc, admin_member_grant_visible_at_once_R_GRP_2);
    tcase_add_test(tc, kick_by_moderator);
    tcase_add_test(tc, leave_and_temporary_room_goes);
    tcase_add_test(tc, disco_of_group_R_GRP_1);
    tcase_add_test(tc, mam_paging_from_ring_R_GRP_5);
    tcase_add_test(tc, voice_request_and_grant_XEP_0045);
    tcase_add_test(tc, registration_and_approval_R_GRP_7);
    tcase_add_test(tc, group_list_from_memory_R_GRP_6);
    tcase_add_test(tc, retired_name_refused_R_GRP_7);
    tcase_add_test(tc, rooms_per_user_not_allowed_issue_16);
    tcase_add_test(tc, occupants_ceiling_service_unavailable_XEP_0045_7_2_10);
    tcase_add_test(tc, bad_input_never_crashes);
    tcase_add_test(tc, leave_shows_full_jid_XEP_0045_7_14);
    tcase_add_test(tc, rejoin_gets_join_sequence_XEP_0045_7_2);
    tcase_add_test(tc, probe_answers_XEP_0045_17_3);
    tcase_add_test(tc, errors_say_by_RFC_6120_8_3_2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
