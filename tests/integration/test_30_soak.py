"""The soak's short form (issue 16; `make soak` is the long one).

For SOAK_TEST_SECONDS (60) ten users churn on the test cluster: logins
and logouts (STARTTLS and direct TLS, XEP-0198 with resume), dropped
connections, chat messages to random users online or not, presence
changes fanned out through a shared roster group, group-room traffic,
and c2s-b killed with SIGKILL and restarted once or twice. Then every
user logs in again until offline storage is drained.

Asserted: messages were accepted (stream management acks); none of them
lost (each arrived, live or from offline storage, or came back to its
sender as an error); none delivered again after a confirmed acknowledgement
(tests/soak/soak.py: only an <a/> never confirmed before the connection
ended abruptly may be followed by a redelivery, XEP-0198's
at-least-once; those are counted apart); each Kiln
process that lived through the run kept its RSS within
SOAK_TEST_RSS_GROWTH_MB (64) after the first 20 s (plus ASan's quarantine
on the ASan build: there this only catches a runaway). Found by it, and
fixed in the router (unit tests in test_router_route.c): chat messages to
a resumable session on a node just killed bounced or were lost. The CSV and the RSS
plot are left in $KILN_VAR/soak/.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "soak"))

import soak  # noqa: E402

BIN = os.environ["KILN_BIN"]
VAR = os.environ["KILN_VAR"]


def asan_build(live):
    with open("/proc/%d/maps" % live.procs["router"].popen.pid) as f:
        return "libasan" in f.read()


def test_soak_short(live, capsys):
    seconds = float(os.environ.get("SOAK_TEST_SECONDS", 60))
    bound_kb = float(os.environ.get("SOAK_TEST_RSS_GROWTH_MB", 64)) * 1024
    if asan_build(live):
        # freed memory sits in ASan's quarantine (256 MiB unless
        # ASAN_OPTIONS says otherwise) before it is reused
        q = re.search(r"quarantine_size_mb=(\d+)",
                      os.environ.get("ASAN_OPTIONS", ""))
        bound_kb += (int(q.group(1)) if q else 256) * 1024
    users = ["soakt%d" % i for i in range(10)]
    soak.setup_users(os.path.join(BIN, "kilnctl"), live.conf, users)
    out = os.path.join(VAR, "soak")
    lines = []
    s = soak.Soak(live, users, seconds, out, kill_nodes=("c2s-b",),
                  kill_every=(seconds / 3, seconds / 2), warmup=20,
                  extra_pids={"postgres": lambda: soak.pg_pids(
                      os.path.join(VAR, "pg", "data"))},
                  log=lines.append)
    try:
        rep = s.run()
    finally:
        live.ensure()
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(rep, f, indent=1, default=str)
    with open(os.path.join(out, "soak.log"), "w") as f:
        f.write("\n".join(lines) + "\n")
    soak.plot(os.path.join(out, "soak.csv"), os.path.join(out, "soak-rss.png"),
              ["router", "presenced", "mucd", "c2s-a", "c2s-b"],
              "Kiln soak (test, %d s)" % seconds)
    summary = ("chat sent %d, accepted %d, in doubt %d, received %d, "
               "bounced %d %s, lost %d, dup not allowed %d, allowed %s; "
               "logins %d, logouts %d, drops %d, kills %s; presence %d/%d, "
               "group %d/%d; rss %s" % (
                   rep["chat_sent"], rep["chat_accepted"],
                   rep["chat_in_doubt"], rep["chat_received"], rep["bounced"],
                   rep["bounce_why"], len(rep["lost"]), len(rep["dup"]),
                   rep["dup_allowed"], rep["logins"], rep["logouts"],
                   rep["drops"], rep["kills"], rep["presence_sent"],
                   rep["presence_rx"], rep["group_sent"], rep["group_rx"],
                   rep["rss"]))
    with capsys.disabled():
        print("\n---- soak (%d s): %s" % (seconds, summary))
    assert rep["chat_accepted"] > 50, summary
    assert rep["logins"] > len(users), summary
    assert rep["kills"], summary
    assert not rep["lost"], (rep["lost"][:20], "\n".join(lines[-20:]))
    assert not rep["dup"], rep["dup"][:20]
    for name, (a, b, g) in rep["rss"].items():
        if name in ("router", "presenced", "mucd", "c2s-a") and g is not None:
            assert g <= bound_kb, (name, a, b, summary)
    assert os.path.getsize(os.path.join(out, "soak-rss.png")) > 1000


class _Writer:
    def __init__(self):
        self.data = b""

    def write(self, b):
        self.data += b


def _session(stats_soak, text, closing=False):
    """A soak Session whose server wrote text in one read (then EOF);
    closing: our </stream:stream> went out before."""
    import asyncio
    s = soak.Session(stats_soak, "u1", "c2s-a", 0, False)
    s.pend_to = {}
    s.writer = _Writer()
    s.closing = closing

    async def run():
        s.reader = asyncio.StreamReader()
        s.reader.feed_data(text.encode())
        s.reader.feed_eof()
        s._new_parser()
        await s._read_loop()
    asyncio.new_event_loop().run_until_complete(run())
    return s


def test_soak_driver_counts_what_the_server_counts():
    """The driver's own XEP-0198 bookkeeping (no server): a stanza that
    comes in the same read as <enabled/> counts (the server counts it;
    the 50-minute run's driver did not, its h stayed one short, and the
    server rerouted the session's last stanza at a clean logout: a
    duplicate that was the driver's); an <a/> is confirmed only when the
    server's <a h/> covers a stanza sent after it; only an unconfirmed
    <a/> followed by an abrupt end allows a redelivery."""
    import types
    fake = types.SimpleNamespace(stats=soak.Stats(), domain="localhost",
                                 t0=0.0)
    head = ("<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams'>")
    msg = ("<message from='u2@localhost/soak' to='u1@localhost/soak' "
           "type='chat'><body>soak:m%d</body></message>")
    s = _session(fake, head + "<enabled xmlns='urn:xmpp:sm:3' id='x' "
                 "resume='true'/>" + msg % 1 + msg % 2)
    assert s.in_h == 2, s.in_h
    assert fake.stats.early == 2

    # after our </stream:stream> the server may still write and ask <r/>
    # before it reads our close: no <a/> (RFC 6120 4.4: it would never
    # be read; the 50-minute run's driver sent one, took m9 for acked,
    # and its offline redelivery for a duplicate)
    c = _session(fake, head + "<enabled xmlns='urn:xmpp:sm:3'/>" + msg % 9 +
                 "<r xmlns='urn:xmpp:sm:3'/>", closing=True)
    assert b"<a " not in c.writer.data, c.writer.data
    assert "m9" not in fake.stats.rx_acked

    # acks: the first is confirmed by the server's <a h='1'/> for our
    # stanza 1, sent after it; the second, sent last, is not
    s.closed = False                  # (as if the connection were up)
    s.send_ack()                      # covers m1, m2
    s.stanza("<presence/>", None, "presence")
    s.rx_unacked.append("m3")
    s.send_ack()                      # covers m3
    s.on_server_ack(1)
    first, ack1 = fake.stats.rx_acked["m1"]
    _, ack3 = fake.stats.rx_acked["m3"]
    assert ack1.confirmed and not ack3.confirmed
    s.dropped = True
    s.finish()
    assert s.info.ended == "dropped"

    # m1 and m3 come again in a later session
    again = _session(fake, head + "<enabled xmlns='urn:xmpp:sm:3'/>" +
                     msg % 1 + msg % 3)
    again.finish()
    run = soak.Soak.__new__(soak.Soak)
    run.stats, run.t0 = fake.stats, 0.0
    bad, ok, _ = run.duplicates()
    assert [d["id"] for d in bad] == ["m1"], bad   # its ack was read
    assert ok == {"dropped": 1}, ok                # m3: XEP-0198 allows

    # a confirmed <a/> whose node is killed at once may lose what c2s
    # forwards of it (at-least-once across a crash); seconds later not
    for mid, after in (("m5", 0.2), ("m6", 5.0)):
        k = _session(fake, head + "<enabled xmlns='urn:xmpp:sm:3'/>" +
                     msg % int(mid[1:]))
        k.closed = False
        k.send_ack()
        k.stanza("<presence/>", None, "presence")
        k.on_server_ack(1)
        k.killed = True
        k.info.killed_at = fake.stats.rx_acked[mid][1].confirmed_at + after
        k.finish()
        _session(fake, head + msg % int(mid[1:])).finish()
    bad, ok, _ = run.duplicates()
    assert [d["id"] for d in bad] == ["m1", "m6"], bad
    assert ok == {"dropped": 1, "killed just after": 1}, ok
