/*
 * load_scache.h - the SCRAM key cache kept in a file between runs
 * (--scram-cache FILE).
 *
 * PBKDF2 (4,096 iterations: about 1.7 ms of CPU) is what a SCRAM login
 * costs the client, and in a run where each user logs in once the
 * in-memory slot never hits: the load tool, on the same cores as the
 * server, would spend more per login than a fast server. The file keeps
 * each user's derived keys with the salt and iteration count they belong
 * to, so later runs against the same accounts cost the tool two HMACs
 * and a hash per login. A salt that changed (accounts re-created, or a
 * server that draws a new salt at every login) is a miss: the keys are
 * derived again, as without the file.
 *
 * One line per user: "USER PWTAG ITERATIONS SALT_HEX CLIENT_KEY_HEX
 * SERVER_KEY_HEX", PWTAG being the first 4 bytes of SHA-1(password) in hex
 * (a changed password is a miss too). A user's line is appended once,
 * after the first run that derived its keys; workers append with one
 * write each (O_APPEND), so several processes can share the file.
 */
#ifndef LOAD_SCACHE_H
#define LOAD_SCACHE_H

#include <stddef.h>

#include "load.h"
#include "load_conn.h"

/* Fill the key slots of conns[0..count) (users first..first+count-1) from
 * path; a missing file is an empty cache. Returns the number of slots
 * filled, or -KN_EIO (message on stderr) when the file is unreadable or
 * malformed. */
int load_scache_load(const char *path, const load_opts_t *opts,
                     load_conn_t *conns, size_t count);
/* Append the keys derived in this run for users the file did not know.
 * Returns the number of lines written or -KN_EIO. */
int load_scache_save(const char *path, const load_opts_t *opts,
                     load_conn_t *conns, size_t count);

#endif
