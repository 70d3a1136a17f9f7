/*
 * c2s_idle.c - the idle policy (R-DROP-4) without a clock or a socket:
 * what a connection silent since last_in needs now, the period of the
 * server's sweep timer, and the server ping written to a bound stream.
 *
 * With timeout T: a bound session silent for T/2 gets one ping (once per
 * silence: any inbound byte clears `pinged`); anything silent for T is
 * closed with <connection-timeout/>, an unbound or unauthenticated one
 * without a ping first. One timer per server walks the slots (libev's
 * "be smart about timeouts"): c2s_conn_sweep_idle() returns the earliest
 * next step over all connections and the timer is re-armed for it, never
 * later than c2s_idle_period().
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "c2s_sm.h"
#include "c2s_stream.h"
#include "kn_err.h"

/* A deadline this close counts as reached: ev_now() arithmetic rounds. */
#define IDLE_SLACK_S 0.01

c2s_idle_act_t c2s_idle_decide(double now, double last_in, bool bound,
                               bool pinged, double timeout, bool ping,
                               double *next)
{
    *next = HUGE_VAL;
    if (timeout <= 0)
        return C2S_IDLE_NONE;
    double silent = now - last_in;
    if (silent + IDLE_SLACK_S >= timeout)
        return C2S_IDLE_CLOSE;
    *next = last_in + timeout;
    if (!bound || !ping || pinged)
        return C2S_IDLE_NONE;
    if (silent + IDLE_SLACK_S >= timeout / 2)
        return C2S_IDLE_PING;
    *next = last_in + timeout / 2;
    return C2S_IDLE_NONE;
}

double c2s_idle_period(double timeout)
{
    if (timeout <= 0 || timeout / 4 > C2S_IDLE_PERIOD_MAX_S)
        return C2S_IDLE_PERIOD_MAX_S;
    return timeout / 4;
}

void c2s_stream_ping(c2s_stream_t *s, uint32_t seq)
{
    KN_ASSERT(seq != 0 && s->jid.str != NULL);
    size_t off = s->out->len;
    kn_buf_printf(s->out, "<iq type='get' id='" C2S_PING_ID_PREFIX "%u' from='",
                  (unsigned)seq);
    kn_buf_append_xml_escaped(s->out, s->cf->domain, strlen(s->cf->domain));
    kn_buf_append_str(s->out, "' to='");
    kn_buf_append_xml_escaped(s->out, kn_jid_str(&s->jid), kn_jid_len(&s->jid));
    kn_buf_append_str(s->out, "'><ping xmlns='" C2S_NS_PING "'/></iq>");
    s->ping_id = seq;
    c2s_sm_sent(s, off, NULL);
}

bool c2s_stream_is_ping_reply(const c2s_stream_t *s, const char *id)
{
    if (s->ping_id == 0 || id == NULL)
        return false;
    char want[sizeof(C2S_PING_ID_PREFIX) + 10];
    snprintf(want, sizeof(want), C2S_PING_ID_PREFIX "%u", (unsigned)s->ping_id);
    return strcmp(id, want) == 0;
}
