/*
 * c2s_flood.h - admission of new client connections under a flood
 * (issue 16): a token bucket of new connections per second for each
 * address (IPv4 address, IPv6 /64) and one for the node, and a count of
 * unauthenticated connections per address and for the node, each with
 * its cap. Pure: the caller passes the time and the address key; no
 * socket, no loop, so tests/unit/test_c2s_flood.c drives it.
 *
 * A refused connection is the listener's business (c2s_listen.c closes
 * it at once, before any TLS or XML work). An admitted one is counted as
 * unauthenticated (c2s_flood_unauth_add) by whoever owns it until it
 * authenticates or ends (c2s_flood_unauth_done), exactly once.
 */
#ifndef C2S_FLOOD_H
#define C2S_FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct c2s_flood_conf {
    double addr_rate; /* new connections per second per address; 0: off */
    double addr_burst;
    double global_rate; /* the same for the node; 0: off */
    double global_burst;
    size_t addr_unauth;   /* concurrent unauthenticated per address; 0: off */
    size_t global_unauth; /* the same for the node; 0: off */
} c2s_flood_conf_t;

typedef enum c2s_flood_verdict {
    C2S_FLOOD_OK = 0,
    C2S_FLOOD_ADDR_UNAUTH,
    C2S_FLOOD_GLOBAL_UNAUTH,
    C2S_FLOOD_ADDR_RATE,
    C2S_FLOOD_GLOBAL_RATE,
    C2S_FLOOD_COUNT_
} c2s_flood_verdict_t;

typedef struct c2s_flood c2s_flood_t;

/* A new table (cf borrowed, must outlive it). Never NULL. */
c2s_flood_t *c2s_flood_new(const c2s_flood_conf_t *cf, double now);
/* Free *fp and set it to NULL; idempotent. */
void c2s_flood_free(c2s_flood_t **fp);

/* The address key of sa: IPv4 as IPv4-mapped IPv6, IPv6 cut to its /64
 * (one client), anything else all zeros. */
void c2s_flood_key(const struct sockaddr *sa, uint8_t key[16]);

/* May a new connection from key be accepted at now? On C2S_FLOOD_OK it
 * took one token from the address's and the node's buckets (the caller
 * then counts it with c2s_flood_unauth_add); a refusal takes nothing
 * from the node's bucket. */
c2s_flood_verdict_t c2s_flood_admit(c2s_flood_t *f, const uint8_t key[16],
                                    double now);

/* One more / one fewer unauthenticated connection from key. */
void c2s_flood_unauth_add(c2s_flood_t *f, const uint8_t key[16]);
void c2s_flood_unauth_done(c2s_flood_t *f, const uint8_t key[16]);

/* Unauthenticated connections from key, and on the node. */
size_t c2s_flood_unauth(const c2s_flood_t *f, const uint8_t key[16]);
size_t c2s_flood_unauth_total(const c2s_flood_t *f);

/* Forget the addresses with nothing to remember (no unauthenticated
 * connection, a full bucket). Returns how many addresses stay. */
size_t c2s_flood_gc(c2s_flood_t *f, double now);

/* "per-address connection rate" etc., for the log. */
const char *c2s_flood_verdict_name(c2s_flood_verdict_t v);

#endif
