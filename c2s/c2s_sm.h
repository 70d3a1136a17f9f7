/*
 * c2s_sm.h - XEP-0198 stream management on one stream: <enable/>, <r/>
 * and <a/>, the unacked queue (c2s_smq.h), and both halves of
 * resumption: the stream that asks (<resume/> on a new connection, maybe
 * on another node) and the stream that gives its session away.
 *
 * The stream layer calls in at a few points: stream features, every
 * top-level element in the SM namespace (c2s_sm_handle), every stanza
 * from the client (c2s_sm_counted), every stanza written to the client
 * (c2s_sm_sent with the output offset where it starts), and the end of
 * the session (c2s_sm_end). The connection (c2s_conn.c) decides when a
 * dropped connection detaches instead of ending (c2s_sm_resumable), and
 * c2s_sm_node.c carries the router's SM envelopes to the right stream.
 * Never touches sockets.
 */
#ifndef C2S_SM_H
#define C2S_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "c2s_smq.h"
#include "c2s_stream.h"

/* Append <sm xmlns='urn:xmpp:sm:3'/> to the post-authentication features. */
void c2s_sm_features(const c2s_stream_t *s, kn_buf_t *out);

/* A top-level element in urn:xmpp:sm:3 (any state after the header):
 * enable, r, a, resume. */
c2s_act_t c2s_sm_handle(c2s_stream_t *s, const kn_stanza_t *st);

/* A stanza from the client (message, presence, iq) was handled: h + 1. */
void c2s_sm_counted(c2s_stream_t *s);

/* The bytes out[off..len) just written are one stanza for the client:
 * queue it until acked (env: the delivery's envelope, NULL for a stanza
 * c2s made itself). Sends <r/> when the queue grew by request_after
 * since the last one. Returns C2S_ACT_CLOSE when the queue passed
 * max_unacked (the stream was closed; the owner ends the session), else
 * C2S_ACT_MORE. No-op without SM. */
c2s_act_t c2s_sm_sent(c2s_stream_t *s, size_t off, const kn_env_t *env);

/* Whether a delivery with KN_F_ACK_WANTED is acknowledged by the
 * client's <a/> (SM on) rather than by the socket write. */
bool c2s_sm_acks_offline(const c2s_stream_t *s);

/* Whether the session may detach instead of ending (resume enabled,
 * bound, not closed). */
bool c2s_sm_resumable(const c2s_stream_t *s);

/* The connection is gone but the session waits for <resume/>: nothing
 * more is written; stanzas keep being queued. */
void c2s_sm_detach(c2s_stream_t *s);
bool c2s_sm_detached(const c2s_stream_t *s);

/* Re-send the ENABLE of a resumable session (router restart). */
void c2s_sm_reannounce(c2s_stream_t *s);

/* The session ends without resumption (after SESSION_DOWN): every
 * unacked stanza that wants an answer goes back to the router as for a
 * vanished connection (c2s_reroute_env: another resource, offline
 * storage, a bounce; a stored offline message back to its row). */
void c2s_sm_end(c2s_stream_t *s);

/* Free the SM state (stream freed). Nothing is sent. */
void c2s_sm_free(c2s_stream_t *s);

/* ---- resumption, the giving side ---------------------------------------- */

/* Another connection resumes this session with the client's h: apply h
 * (acked offline rows go to ops->ack_done), then fill *out (kind SM,
 * STATE) and payload with the session and its unacked queue, give the
 * session up (no SESSION_DOWN will be sent, the queue is no longer ours)
 * and return 0. Returns a KN_SM_FAIL_* condition (> 0) or -1 for "not
 * resumable" (item-not-found) without changing anything; *h_out gets
 * the server's h when it is known. previd and bare (prepared bare JID)
 * must match the session's. out borrows from s until s is freed. */
int c2s_sm_handover(c2s_stream_t *s, const char *previd, size_t previd_len,
                    const char *bare, size_t bare_len, uint32_t client_h,
                    kn_env_t *out, kn_buf_t *payload, uint32_t *h_out);

/* ---- resumption, the asking side ---------------------------------------- */

/* Whether this stream waits for the router's answer to its <resume/>. */
bool c2s_sm_resuming(const c2s_stream_t *s);

/* The answer (kind SM, STATE or FAILED, payload a queue or empty):
 * <resumed/> and the unacked stanzas again, or <failed/>; the stream
 * goes on. Returns what the owner must do, like c2s_stream_input. */
c2s_act_t c2s_sm_answer(c2s_stream_t *s, const kn_env_t *env,
                        const void *payload, size_t len);

/* A queue nobody will resume (payload of a FAILED, or a STATE whose
 * connection is gone): reroute its items as c2s_sm_end does, through
 * route(ud, env, payload, len). */
void c2s_sm_reroute_queue(const void *payload, size_t len,
                          int (*route)(void *ud, const kn_env_t *env,
                                       const void *pl, size_t len),
                          void *ud);

#endif
