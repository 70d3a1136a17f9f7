/*
 * muc_types.h - the data of kiln-mucd, types only (no functions), so the
 * protocol modules can share them without include cycles.
 *
 * A note on the room model. The service (muc_t) holds rooms by their
 * bare JID (room@conference.domain). A room holds:
 *   - its configuration (muc_config_t), persisted when persistent;
 *   - affiliations by real bare JID (muc_affrec_t): owner, admin, member,
 *     outcast; "none" is the absence of a record. This is membership, and
 *     it is independent of presence (R-GRP-2);
 *   - occupants by nick (muc_occ_t): one per (nick, real bare JID), with
 *     a role, the last presence it sent, and one seat (muc_seat_t) per
 *     real full JID joined under that nick: two devices of one member
 *     share one nick and one occupant (R-GRP-10);
 *   - the history ring (recent groupchat messages for joins, R-PERF-7)
 *     and the next stanza-id (XEP-0359), monotonically increasing;
 *   - pending registration requests by bare JID (muc_regreq_t, XEP-0045
 *     7.10), dropped when the JID gets an affiliation.
 * The service also indexes seats by real full JID (muc_user_t) so that a
 * SESSION_DOWN finds every room the session was in without a scan.
 *
 * Invariants: every seat is in exactly one occupant's list and exactly
 * one user's list; an occupant with no seat is removed at once; a user
 * with no seat is removed at once; occupant nicks are unique per room.
 */
#ifndef MUC_TYPES_H
#define MUC_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uthash.h>

#include "kn_buf.h"
#include "kn_env.h"
#include "kn_stanza.h"

#define MUC_NS          "http://jabber.org/protocol/muc"
#define MUC_NS_USER     "http://jabber.org/protocol/muc#user"
#define MUC_NS_ADMIN    "http://jabber.org/protocol/muc#admin"
#define MUC_NS_OWNER    "http://jabber.org/protocol/muc#owner"
#define MUC_NS_CONFIG   "http://jabber.org/protocol/muc#roomconfig"
#define MUC_NS_INFO     "http://jabber.org/protocol/disco#info"
#define MUC_NS_ITEMS    "http://jabber.org/protocol/disco#items"
#define MUC_NS_DATA     "jabber:x:data"
#define MUC_NS_MAM      "urn:xmpp:mam:2"
#define MUC_NS_RSM      "http://jabber.org/protocol/rsm"
#define MUC_NS_SID      "urn:xmpp:sid:0"
#define MUC_NS_DELAY    "urn:xmpp:delay"
#define MUC_NS_FORWARD  "urn:xmpp:forward:0"
#define MUC_NS_ADDRESS  "http://jabber.org/protocol/address"
#define MUC_NS_REQUEST  "http://jabber.org/protocol/muc#request"
#define MUC_NS_REGFORM  "http://jabber.org/protocol/muc#register"
#define MUC_NS_REGISTER "jabber:iq:register"
/* Kiln's group-list IQ (R-GRP-6): the groups a bare JID belongs to. */
#define MUC_NS_GROUPS "urn:kiln:groups:0"

/* Affiliations, ordered by rank (compare with < and >). */
typedef enum muc_aff {
    MUC_AFF_OUTCAST = 0,
    MUC_AFF_NONE = 1,
    MUC_AFF_MEMBER = 2,
    MUC_AFF_ADMIN = 3,
    MUC_AFF_OWNER = 4,
} muc_aff_t;

/* Roles, ordered by rank. */
typedef enum muc_role {
    MUC_ROLE_NONE = 0,
    MUC_ROLE_VISITOR = 1,
    MUC_ROLE_PARTICIPANT = 2,
    MUC_ROLE_MODERATOR = 3,
} muc_role_t;

typedef enum muc_whois {
    MUC_WHOIS_MODERATORS = 0, /* semi-anonymous */
    MUC_WHOIS_ANYONE = 1,     /* non-anonymous */
} muc_whois_t;

typedef enum muc_history_mode {
    MUC_HISTORY_NONE = 0,
    MUC_HISTORY_NUMBER = 1,
    MUC_HISTORY_ALL = 2,
} muc_history_mode_t;

/* Who may send private messages to occupants. */
typedef enum muc_pm {
    MUC_PM_ANYONE = 0,
    MUC_PM_PARTICIPANTS = 1,
    MUC_PM_MODERATORS = 2,
    MUC_PM_NONE = 3,
} muc_pm_t;

typedef struct muc_config {
    char *title;       /* muc#roomconfig_roomname; NULL: none */
    char *description; /* muc#roomconfig_roomdesc */
    char *password;    /* NULL or "": no password */
    bool persistent;
    bool members_only;
    bool moderated;
    bool public_room;      /* listed in disco#items of the service */
    bool change_subject;   /* participants may change the subject */
    bool allow_invites;    /* members-only: occupants (not only admins) may
                            * invite */
    bool mam;              /* archive (XEP-0313) and stanza-ids */
    bool offline_delivery; /* R-GRP-4(b) */
    bool invite_adds_member;
    bool is_group; /* created with the group profile (R-GRP-1) */
    muc_whois_t whois;
    muc_pm_t allow_pm;
    muc_history_mode_t history_mode;
    size_t history_max;           /* for MUC_HISTORY_NUMBER */
    size_t max_occupants;         /* 0: unlimited */
    size_t max_occupant_presence; /* presences sent on join; 0: unlimited */
    bool occupant_presence; /* false: no occupant flood at all (R-GRP-9) */
} muc_config_t;

typedef struct muc_affrec {
    char *bare; /* key */
    muc_aff_t aff;
    char *nick; /* reserved nick, may be NULL */
    UT_hash_handle hh;
} muc_affrec_t;

/* A registration request waiting for an owner or admin (XEP-0045 7.10,
 * 9.9). In memory only: the form forwarded to the owners carries all an
 * approval needs, so an approval after a restart still works. */
typedef struct muc_regreq {
    char *bare; /* requester's bare JID, key */
    char *nick; /* requested room nick */
    time_t at;
    UT_hash_handle hh;
} muc_regreq_t;

struct muc_occ;
struct muc_room;
struct muc_user;

typedef struct muc_seat {
    struct muc_occ *occ;
    struct muc_user *user;
    uint64_t conn;              /* cluster-wide connection id */
    struct muc_seat *next_occ;  /* in occ->seats */
    struct muc_seat *next_user; /* in user->seats */
} muc_seat_t;

typedef struct muc_occ {
    char *nick; /* key in room->occs */
    char *bare; /* real bare JID */
    struct muc_room *room;
    muc_role_t role;
    kn_stanza_t *pres; /* last available presence (owned), for new joiners */
    muc_seat_t *seats;
    time_t voice_req_at; /* last voice request forwarded (0: none) */
    UT_hash_handle hh;
} muc_occ_t;

typedef struct muc_user {
    char *full; /* real full JID, key */
    muc_seat_t *seats;
    UT_hash_handle hh;
} muc_user_t;

typedef struct muc_hist {
    kn_stanza_t *msg; /* stamped, from room/nick (owned) */
    time_t at;
    uint64_t seq;
    size_t chars;
} muc_hist_t;

typedef struct muc_room {
    char *jid;  /* bare room JID, key */
    char *node; /* local part */
    muc_config_t cfg;
    muc_affrec_t *affs;
    muc_occ_t *occs;
    size_t nocc;
    char *subject;      /* NULL: never set */
    char *subject_from; /* nick (or room JID) that set it */
    muc_hist_t *hist;   /* ring of cap hist_cap */
    size_t hist_cap, hist_head, hist_len;
    uint64_t next_seq;  /* next stanza-id */
    bool stored;        /* a row exists in PostgreSQL */
    muc_regreq_t *regs; /* pending registration requests */
    size_t nregs;
    UT_hash_handle hh;
} muc_room_t;

/* Where the service's output goes: one kn_link_send in the daemon, a
 * capture list in unit tests. payload is borrowed for the call. */
typedef struct muc_sink {
    void (*send)(void *ud, const kn_env_t *env, const char *payload,
                 size_t len);
    void *ud;
} muc_sink_t;

struct muc_store;

/* What a PostgreSQL look-up said about a room this node did not hold
 * (muc_lookup.c). */
typedef enum muc_lookup_res {
    MUC_LOOKUP_NONE = 0, /* not looked up (the room was in memory, or no
                          * store) */
    MUC_LOOKUP_FREE,     /* no room of that name: it may be created */
    MUC_LOOKUP_RETIRED,  /* a destroyed room's name, still retired */
} muc_lookup_res_t;

/* One inbound stanza, addressed: what every handler receives. The
 * strings are prepared JIDs, borrowed for the call. */
typedef struct muc_in {
    const kn_stanza_t *st;
    uint64_t conn;         /* sender's cluster-wide connection id (0: none) */
    const char *from;      /* real full JID of the sender */
    const char *from_bare; /* its bare JID */
    const char *room;      /* bare room JID; NULL when to the service */
    const char *nick;      /* resource of `to`; NULL when none */
    muc_lookup_res_t lookup;
    const char *until; /* RETIRED: until when, for the error text */
} muc_in_t;

/* Service-wide settings (the `mucd` config section). */
typedef struct muc_settings {
    char *service;           /* "conference.<domain>"; owned */
    char *server_domain;     /* "<domain>"; owned */
    size_t history_hard_max; /* bound of any room's ring */
    bool anyone_creates;     /* false: only server-domain users create rooms */
    char *origin;         /* tag of this process in invalidations; owned, may be
                           * NULL */
    unsigned retire_days; /* a destroyed room's name stays retired */
    unsigned voice_interval;   /* seconds between one visitor's voice
                                * requests */
    size_t max_rooms_per_user; /* rooms one user may own; 0: no limit */
    size_t max_occupants;      /* every room's ceiling, whatever its own
                                * muc#roomconfig_maxusers says; 0: none */
} muc_settings_t;

struct muc_lookup;

typedef struct muc {
    muc_settings_t set;
    muc_sink_t sink;
    struct muc_store *store; /* NULL: no persistence (unit tests) */
    muc_room_t *rooms;
    muc_user_t *users;
    kn_stanza_builder_t *b; /* scratch builder */
    kn_buf_t out;           /* scratch serialisation buffer */
    uint64_t *targets;      /* scratch multicast target list */
    size_t targets_cap;
    uint64_t id_counter;        /* for ids of stanzas the service originates */
    struct muc_lookup *lookups; /* rooms being looked up (muc_lookup.c) */
    size_t nlookups;
    struct {
        uint64_t joins, leaves, messages, deliveries, offline;
    } stats;
} muc_t;

#endif
