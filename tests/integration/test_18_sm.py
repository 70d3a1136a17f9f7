"""18 XEP-0198 stream management and resumption (R-DROP-5, R-PRES-5).

Byte-level clients (the counters and the exact elements matter): each
counts the stanzas it received with an incremental XML parser, so its
<a h=.../> and <resume h=.../> are exact. A dropped connection is an RST
(SO_LINGER 0), as a phone losing its network looks to the server.
Resumption is tested on the other node and on the same node; failures:
unknown id, the owning node killed -9, the resume timeout (on c2s-c,
sm.resume_timeout = 4). Parties are on different nodes.
"""

import re
import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from test_01_stream import Raw
from test_05_roster import roster_row, sql

PW = "pw-sm18"
D = "localhost"
SM = "urn:xmpp:sm:3"
C = "{jabber:client}"
RESUME_T = 4.0  # c2s-c's sm.resume_timeout (deploy/dev/kiln.conf.in)


class SMClient:
    """A bound raw client that counts what it receives (XEP-0198 h)."""

    def __init__(self, cluster, node, user, resource=None, bind=True):
        self.cluster = cluster
        self.raw = Raw(cluster.ports[node]["tls"], cluster.cert,
                       direct_tls=True)
        self.raw.open()
        import base64
        auth = base64.b64encode(("\0%s\0%s" % (user, PW)).encode()).decode()
        r = self.raw.ask("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                         "mechanism='PLAIN'>%s</auth>" % auth, "</")
        assert "<success" in r, r
        self.features = self.raw.open()
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.parser.feed("<stream:stream xmlns='jabber:client' xmlns:stream="
                         "'http://etherx.jabber.org/streams'>")
        self.depth = 0
        self.elems = []  # top-level elements received, in order
        self.h = 0       # stanzas received (message, presence, iq)
        self.seen = 0    # elems already returned by wait()
        self.jid = None
        if self.raw.buf:
            self._feed(self.raw.buf)
            self.raw.buf = b""
        if bind:
            res = "<resource>%s</resource>" % resource if resource else ""
            self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:"
                      "params:xml:ns:xmpp-bind'>%s</bind></iq>" % res)
            iq = self.wait(lambda e: e.tag == C + "iq")
            self.jid = iq.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid").text

    def _feed(self, data):
        self.parser.feed(data)
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:  # a child of the stream root
                    self.elems.append(el)
                    if el.tag == "{%s}enabled" % SM:
                        self.h = 0  # counting starts here (XEP-0198 4)
                    if el.tag in (C + "message", C + "presence", C + "iq"):
                        self.h += 1

    def send(self, data):
        self.raw.send(data)

    def wait(self, pred, timeout=10):
        """The next unseen top-level element matching pred (elements
        before it are marked seen)."""
        deadline = time.monotonic() + timeout
        while True:
            while self.seen < len(self.elems):
                el = self.elems[self.seen]
                self.seen += 1
                if pred(el):
                    return el
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timeout; last elements: %s" % [
                    ET.tostring(e)[:200] for e in self.elems[-5:]])
            self.raw.sock.settimeout(left)
            try:
                chunk = self.raw.sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, "connection closed"
            self._feed(chunk)

    def sync(self):
        """Round trip to the server: everything sent to us before is in."""
        self.send("<iq type='get' id='sync' to='%s'><ping xmlns='urn:xmpp:"
                  "ping'/></iq>" % D)
        self.wait(lambda e: e.tag == C + "iq" and e.get("id") == "sync")

    def enable(self, resume=True):
        self.send("<enable xmlns='%s'%s/>" % (SM, " resume='true'"
                                               if resume else ""))
        el = self.wait(lambda e: e.tag in ("{%s}enabled" % SM,
                                           "{%s}failed" % SM))
        assert el.tag == "{%s}enabled" % SM, ET.tostring(el)
        return el

    def ack(self):
        self.send("<a xmlns='%s' h='%d'/>" % (SM, self.h))

    def messages(self):
        return [e for e in self.elems if e.tag == C + "message"]

    def drop(self):
        """Lose the connection the hard way: RST, no close tag."""
        self.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        self.raw.sock.close()

    def close(self):
        try:
            self.raw.sock.close()
        except OSError:
            pass


def bodies(els):
    out = []
    for e in els:
        b = e.find(C + "body")
        if b is not None:
            out.append(b.text)
    return out


def is_unavailable_from(jid):
    return lambda e: (e.tag == C + "presence" and
                      e.get("type") == "unavailable" and
                      e.get("from", "").startswith(jid))


@pytest.fixture
def pair(live, make_user):
    """Two users who are each other's contacts (both)."""
    def make(a, b):
        make_user(a, PW)
        make_user(b, PW)
        roster_row(a, b, "both")
        roster_row(b, a, "both")
        return live
    return make


def test_sm_advertised_enable_and_enable_twice(live, make_user):
    make_user("sm18adv", PW)
    c = SMClient(live, "c2s-a", "sm18adv", bind=False)
    try:
        assert "<sm xmlns='%s'/>" % SM in c.features, c.features
        # Before binding: unexpected-request.
        c.send("<enable xmlns='%s'/>" % SM)
        f = c.wait(lambda e: e.tag == "{%s}failed" % SM)
        assert f.find("{urn:ietf:params:xml:ns:xmpp-stanzas}"
                      "unexpected-request") is not None
        c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
               "xmpp-bind'/></iq>")
        c.wait(lambda e: e.tag == C + "iq")
        en = c.enable(resume=True)
        assert en.get("resume") == "true" and len(en.get("id")) == 32
        assert int(en.get("max")) > 0
        # A second <enable/>: failed, unexpected-request; the stream lives.
        c.send("<enable xmlns='%s' resume='true'/>" % SM)
        f = c.wait(lambda e: e.tag == "{%s}failed" % SM)
        assert f.find("{urn:ietf:params:xml:ns:xmpp-stanzas}"
                      "unexpected-request") is not None
        c.sync()
    finally:
        c.close()


def test_r_answered_with_h_and_server_requests_acks(pair):
    live = pair("sm18ra", "sm18rb")
    a = SMClient(live, "c2s-a", "sm18ra", "r")
    b = SMClient(live, "c2s-b", "sm18rb", "r")
    try:
        a.enable(resume=False)
        # Three stanzas from the client: h = 3.
        a.send("<presence/>")
        a.sync()
        a.sync()
        a.send("<r xmlns='%s'/>" % SM)
        el = a.wait(lambda e: e.tag == "{%s}a" % SM)
        assert el.get("h") == "3", ET.tostring(el)
        # The server asks for acks once 5 stanzas are unacked.
        for i in range(6):
            b.send("<message to='%s' type='chat'><body>r%d</body></message>"
                   % (a.jid, i))
        a.wait(lambda e: e.tag == "{%s}r" % SM)
        a.wait(lambda e: bodies([e]) == ["r5"])
        a.ack()
        a.sync()
        # An h beyond what was sent is a stream error.
        a.send("<a xmlns='%s' h='%d'/>" % (SM, a.h + 100))
        err = a.wait(lambda e: e.tag ==
                     "{http://etherx.jabber.org/streams}error")
        assert err.find("{urn:ietf:params:xml:ns:xmpp-streams}"
                        "undefined-condition") is not None
    finally:
        a.close()
        b.close()


def resume_scenario(live, node_a, node_resume, ua, ub):
    """A (resumable, on node_a) loses its connection while B (on the other
    node) sends it 20 messages; A resumes on node_resume: every one of the
    20 exactly once and in order, and B never saw A unavailable."""
    node_b = "c2s-b" if node_a == "c2s-a" else "c2s-a"
    a = SMClient(live, node_a, ua, "phone")
    b = SMClient(live, node_b, ub, "desk")
    a2 = None
    try:
        en = a.enable(resume=True)
        a.send("<presence/>")
        b.send("<presence/>")
        a.wait(lambda e: e.tag == C + "presence" and
               e.get("from", "").startswith(b.jid))
        b.wait(lambda e: e.tag == C + "presence" and
               e.get("from", "").startswith(a.jid))
        a.sync()
        a.drop()
        sent = ["sm%02d" % i for i in range(20)]
        for body in sent:
            b.send("<message to='%s' type='chat'><body>%s</body></message>"
                   % (a.jid, body))
        b.sync()
        a2 = SMClient(live, node_resume, ua, bind=False)
        a2.h = a.h  # the client's count goes on
        t0 = time.monotonic()
        a2.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                % (SM, en.get("id"), a.h))
        r = a2.wait(lambda e: e.tag in ("{%s}resumed" % SM,
                                        "{%s}failed" % SM))
        print("resume %s -> %s: <resumed/> after %.1f ms" % (
            node_a, node_resume, (time.monotonic() - t0) * 1000))
        assert r.tag == "{%s}resumed" % SM, ET.tostring(r)
        assert r.get("previd") == en.get("id")
        # The server's h: presence + one sync iq from the first connection.
        assert r.get("h") == "2", ET.tostring(r)
        a2.wait(lambda e: bodies([e]) == [sent[-1]], timeout=15)
        a2.sync()
        got = bodies(a2.messages())
        assert got == sent, got
        # Still the same session: a message from it reaches B, and B never
        # got an unavailable from A.
        a2.send("<message to='%s' type='chat'><body>back</body></message>"
                % b.jid)
        b.wait(lambda e: bodies([e]) == ["back"])
        assert not [e for e in b.elems if is_unavailable_from(a.jid)(e)]
        # Acknowledging everything leaves nothing to resend.
        a2.ack()
        a2.send("<r xmlns='%s'/>" % SM)
        el = a2.wait(lambda e: e.tag == "{%s}a" % SM)
        assert el.get("h") == "4", ET.tostring(el)  # + sync + message
    finally:
        a.close()
        b.close()
        if a2:
            a2.close()


def test_resume_on_other_node_R_DROP_5(pair, redis):
    live = pair("sm18xa", "sm18xb")
    resume_scenario(live, "c2s-a", "c2s-b", "sm18xa", "sm18xb")
    # The session cache follows the route (R-CACHE-2).
    full = "sm18xa@localhost/phone"
    assert redis("HGET", "sessions:sm18xa@localhost", full).startswith(
        "c2s-b|")
    assert redis("SISMEMBER", "node:c2s-a:sessions", full).strip() == "0"
    assert redis("SISMEMBER", "node:c2s-b:sessions", full).strip() == "1"


def test_resume_on_same_node_R_DROP_5(pair):
    live = pair("sm18sa", "sm18sb")
    resume_scenario(live, "c2s-b", "c2s-b", "sm18sa", "sm18sb")


def test_unknown_previd_item_not_found(live, make_user):
    make_user("sm18unk", PW)
    c = SMClient(live, "c2s-a", "sm18unk", bind=False)
    try:
        c.send("<resume xmlns='%s' previd='%s' h='0'/>" % (SM, "ab" * 16))
        f = c.wait(lambda e: e.tag == "{%s}failed" % SM)
        assert f.find("{urn:ietf:params:xml:ns:xmpp-stanzas}"
                      "item-not-found") is not None
        # The stream goes on: binding works.
        c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:"
               "xmpp-bind'/></iq>")
        iq = c.wait(lambda e: e.tag == C + "iq")
        assert iq.get("type") == "result"
    finally:
        c.close()


def wait_rows(user, n, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = int(sql("select count(*) from offline_messages where "
                      "username = '%s'" % user))
        if got >= n:
            return got
        time.sleep(0.1)
    return int(sql("select count(*) from offline_messages where "
                   "username = '%s'" % user))


def test_owner_killed_resume_fails_and_nothing_is_lost_R_DROP_5(pair):
    """The node holding a detached session is killed -9 while 20 messages
    wait there: <resume/> on the other node fails (item-not-found), and the
    20 are in offline storage (the router's copies), delivered at the next
    login, in order, none lost."""
    live = pair("sm18ka", "sm18kb")
    a = SMClient(live, "c2s-b", "sm18ka", "phone")
    b = SMClient(live, "c2s-a", "sm18kb", "desk")
    a2 = a3 = None
    try:
        en = a.enable(resume=True)
        a.send("<presence/>")
        b.send("<presence/>")
        b.wait(lambda e: e.tag == C + "presence" and
               e.get("from", "").startswith(a.jid))
        a.sync()
        a.drop()
        sent = ["k%02d" % i for i in range(20)]
        for body in sent:
            b.send("<message to='%s' type='chat'><body>%s</body></message>"
                   % (a.jid, body))
        b.sync()
        live.wait_log("c2s-b", "sm18ka@localhost/phone: connection lost")
        mark = live.log_mark("router")
        live.kill9("c2s-b")
        a2 = SMClient(live, "c2s-a", "sm18ka", bind=False)
        a2.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                % (SM, en.get("id"), a.h))
        f = a2.wait(lambda e: e.tag in ("{%s}resumed" % SM,
                                        "{%s}failed" % SM), timeout=20)
        assert f.tag == "{%s}failed" % SM, ET.tostring(f)
        assert f.find("{urn:ietf:params:xml:ns:xmpp-stanzas}"
                      "item-not-found") is not None
        live.wait_log("router", "node c2s-b lost", timeout=20, since=mark)
        # Contacts see it gone (R-DROP-6).
        b.wait(is_unavailable_from(a.jid), timeout=15)
        assert wait_rows("sm18ka", 20) == 20
        a3 = SMClient(live, "c2s-a", "sm18ka", "again")
        a3.send("<presence/>")
        a3.wait(lambda e: bodies([e]) == [sent[-1]], timeout=15)
        a3.sync()
        assert bodies(a3.messages()) == sent
    finally:
        for c in (a, b, a2, a3):
            if c:
                c.close()
        live.ensure()


@pytest.fixture
def node_c(cluster):
    cluster.ensure()
    cluster.start("c2s-c")
    try:
        yield cluster
    finally:
        cluster.stop("c2s-c")


def test_resume_timeout_then_unavailable_and_offline_R_DROP_5(node_c,
                                                             make_user):
    """Not resumed within sm.resume_timeout (4 s on c2s-c): contacts see
    nothing until then, then unavailable (R-DROP-2); what arrived while
    detached goes to offline storage; a late <resume/> fails."""
    live = node_c
    for u in ("sm18ta", "sm18tb"):
        make_user(u, PW)
    roster_row("sm18ta", "sm18tb", "both")
    roster_row("sm18tb", "sm18ta", "both")
    a = SMClient(live, "c2s-c", "sm18ta", "phone")
    b = SMClient(live, "c2s-a", "sm18tb", "desk")
    a2 = a3 = None
    try:
        en = a.enable(resume=True)
        assert en.get("max") == "4"
        a.send("<presence/>")
        b.send("<presence/>")
        b.wait(lambda e: e.tag == C + "presence" and
               e.get("from", "").startswith(a.jid))
        a.sync()
        a.drop()
        live.wait_log("c2s-c", "sm18ta@localhost/phone: connection lost")
        t0 = time.monotonic()
        for i in range(3):
            b.send("<message to='%s' type='chat'><body>t%d</body></message>"
                   % (a.jid, i))
        b.wait(is_unavailable_from(a.jid), timeout=RESUME_T + 5)
        waited = time.monotonic() - t0
        assert waited >= RESUME_T - 1, waited
        assert wait_rows("sm18ta", 3) == 3
        a2 = SMClient(live, "c2s-a", "sm18ta", bind=False)
        a2.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                % (SM, en.get("id"), a.h))
        f = a2.wait(lambda e: e.tag in ("{%s}resumed" % SM,
                                        "{%s}failed" % SM))
        assert f.tag == "{%s}failed" % SM
        a3 = SMClient(live, "c2s-b", "sm18ta", "again")
        a3.send("<presence/>")
        a3.wait(lambda e: bodies([e]) == ["t2"])
        assert bodies(a3.messages()) == ["t0", "t1", "t2"]
    finally:
        for c in (a, b, a2, a3):
            if c:
                c.close()


def test_offline_rows_deleted_on_client_ack_R_PRES_5(live, make_user):
    """With stream management, a stored offline message's row goes when
    the client's <a/> covers it, not when it was written: written but
    unacked, it survives the connection and comes again."""
    make_user("sm18oa", PW)
    make_user("sm18ob", PW)
    b = SMClient(live, "c2s-a", "sm18ob", "desk")
    a = a2 = a3 = None
    try:
        for i in range(3):
            b.send("<message to='sm18oa@%s' type='chat'><body>o%d</body>"
                   "</message>" % (D, i))
        assert wait_rows("sm18oa", 3) == 3
        a = SMClient(live, "c2s-b", "sm18oa", "one")
        a.enable(resume=False)
        a.send("<presence/>")
        a.wait(lambda e: bodies([e]) == ["o2"])
        a.sync()
        # Written, not acked: the rows stay.
        assert wait_rows("sm18oa", 3) == 3
        a.send("</stream:stream>")
        a.close()
        # Not acked when the session ended: delivered again.
        a2 = SMClient(live, "c2s-b", "sm18oa", "two")
        a2.enable(resume=False)
        a2.send("<presence/>")
        a2.wait(lambda e: bodies([e]) == ["o2"])
        assert bodies(a2.messages()) == ["o0", "o1", "o2"]
        assert int(sql("select count(*) from offline_messages where "
                       "username = 'sm18oa'")) == 3
        a2.ack()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and int(sql(
                "select count(*) from offline_messages where "
                "username = 'sm18oa'")) != 0:
            time.sleep(0.1)
        assert int(sql("select count(*) from offline_messages where "
                       "username = 'sm18oa'")) == 0
        a2.send("</stream:stream>")
        a2.close()
        a3 = SMClient(live, "c2s-b", "sm18oa", "three")
        a3.send("<presence/>")
        a3.sync()
        a3.sync()
        assert bodies(a3.messages()) == []
    finally:
        for c in (a, b, a2, a3):
            if c:
                c.close()


def test_replaced_by_new_login_resume_fails_nothing_lost_R_DROP_5(pair):
    """A new login with the same full JID replaces a detached session
    (R-DROP-7): its unacked messages are rerouted (here: offline storage,
    the new session has no presence yet), and resuming the old session
    fails with item-not-found."""
    live = pair("sm18ra2", "sm18rb2")
    a = SMClient(live, "c2s-a", "sm18ra2", "phone")
    b = SMClient(live, "c2s-b", "sm18rb2", "desk")
    a2 = a3 = None
    try:
        en = a.enable(resume=True)
        a.send("<presence/>")
        b.send("<presence/>")
        b.wait(lambda e: e.tag == C + "presence" and
               e.get("from", "").startswith(a.jid))
        a.sync()
        a.drop()
        live.wait_log("c2s-a", "sm18ra2@localhost/phone: connection lost")
        for i in range(2):
            b.send("<message to='%s' type='chat'><body>n%d</body></message>"
                   % (a.jid, i))
        b.sync()
        mark = live.log_mark("c2s-a")
        a3 = SMClient(live, "c2s-b", "sm18ra2", "phone")  # same full JID
        live.wait_log("c2s-a", "phone: session ended with",
                      since=mark)
        assert wait_rows("sm18ra2", 2) == 2
        a2 = SMClient(live, "c2s-b", "sm18ra2", bind=False)
        a2.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                % (SM, en.get("id"), a.h))
        f = a2.wait(lambda e: e.tag in ("{%s}resumed" % SM,
                                        "{%s}failed" % SM))
        assert f.tag == "{%s}failed" % SM
        assert f.find("{urn:ietf:params:xml:ns:xmpp-stanzas}"
                      "item-not-found") is not None
        a3.send("<presence/>")
        a3.wait(lambda e: bodies([e]) == ["n1"])
        assert bodies(a3.messages()) == ["n0", "n1"]
    finally:
        for c in (a, b, a2, a3):
            if c:
                c.close()


def test_slixmpp_xep_0198_acks_and_resumes_on_other_node_R_DROP_5(pair):
    """A real client library's XEP-0198 (slixmpp's xep_0198 plugin)
    against ours: enable with resume, the acks both ways agree (no stream
    error, the client's unacked queue empties), and after a dropped
    connection the plugin resumes on the other node and gets what was sent
    meanwhile, once."""
    import asyncio
    from xmpp_client import Client, login, run
    live = pair("sm18sx", "sm18sy")

    async def scenario():
        loop = asyncio.get_event_loop()
        c = Client("sm18sx@%s/phone" % D, PW, live.ports["c2s-a"]["starttls"],
                   live.cert)
        c.register_plugin("xep_0198")
        enabled = loop.create_future()
        resumed = loop.create_future()
        c.add_event_handler("sm_enabled", lambda s: enabled.done() or
                            enabled.set_result(s))
        c.add_event_handler("session_resumed", lambda s: resumed.done() or
                            resumed.set_result(s))
        await c.start()
        await asyncio.wait_for(enabled, 10)
        sm = c.plugin["xep_0198"]
        assert sm.sm_id and len(sm.sm_id) == 32
        o = await login(live, "sm18sy", PW, "c2s-b", "desk")
        for i in range(12):
            o.send_message(mto="sm18sx@%s/phone" % D, mbody="a%d" % i,
                           mtype="chat")
        got = [await c.next_message(5, body_only=True) for _ in range(12)]
        assert got == ["a%d" % i for i in range(12)]
        for i in range(10):
            c.send_message(mto="sm18sy@%s/desk" % D, mbody="b%d" % i,
                           mtype="chat")
        got = [await o.next_message(5, body_only=True) for _ in range(10)]
        assert got == ["b%d" % i for i in range(10)]
        # All ten were handled by the server: its <a/> acknowledges them.
        sm.request_ack()
        deadline = time.monotonic() + 10
        while sm.unacked_queue and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not sm.unacked_queue, len(sm.unacked_queue)
        assert c.stream_errors == []
        # Lose the connection; messages arrive meanwhile; resume on c2s-b.
        mark = live.log_mark("c2s-a")
        c.abort()
        live.wait_log("c2s-a", "sm18sx@localhost/phone: connection lost",
                      since=mark)
        for i in range(3):
            o.send_message(mto="sm18sx@%s/phone" % D, mbody="c%d" % i,
                           mtype="chat")
        # o's messages are routed before the resumption starts: a round
        # trip of o to the server after them.
        await o.plugin["xep_0199"].ping(jid=D, timeout=5)
        c.connect(("127.0.0.1", live.ports["c2s-b"]["starttls"]),
                  force_starttls=True)
        await asyncio.wait_for(resumed, 15)
        got = [await c.next_message(5, body_only=True) for _ in range(3)]
        assert got == ["c0", "c1", "c2"]
        assert await c.no_message(1.0)
        await c.stop()
        await o.stop()

    run(scenario())


def test_carbons_follow_a_resumed_session_through_a_router_restart(pair):
    """XEP-0280 + XEP-0198: the phone (carbons on, on node A) resumes on
    node B; the router then restarts and learns the sessions again from
    the nodes' re-announcements. The resumed stream must still say
    "carbons on" (the handover carries it), so the desk's messages keep
    reaching the phone as <sent/> copies."""
    live = pair("sm18ca", "sm18cb")
    phone = SMClient(live, "c2s-a", "sm18ca", "phone")
    desk = SMClient(live, "c2s-b", "sm18ca", "desk")
    b = SMClient(live, "c2s-b", "sm18cb", "b")
    phone2 = None
    NS_C = "urn:xmpp:carbons:2"

    def sent_copy(body):
        def pred(e):
            s = e.find("{%s}sent" % NS_C)
            return e.tag == C + "message" and s is not None and \
                bodies(s.iter(C + "message")) == [body]
        return pred

    try:
        en = phone.enable(resume=True)
        phone.send("<iq type='set' id='c1'><enable xmlns='%s'/></iq>" % NS_C)
        phone.wait(lambda e: e.tag == C + "iq" and e.get("id") == "c1" and
                   e.get("type") == "result")
        for c in (phone, desk, b):
            c.send("<presence/>")
        desk.send("<message to='%s' type='chat'><body>before</body>"
                  "</message>" % b.jid)
        phone.wait(sent_copy("before"))
        phone.sync()
        phone.drop()
        phone2 = SMClient(live, "c2s-b", "sm18ca", bind=False)
        phone2.h = phone.h
        phone2.send("<resume xmlns='%s' previd='%s' h='%d'/>"
                    % (SM, en.get("id"), phone.h))
        r = phone2.wait(lambda e: e.tag in ("{%s}resumed" % SM,
                                            "{%s}failed" % SM))
        assert r.tag == "{%s}resumed" % SM, ET.tostring(r)
        desk.send("<message to='%s' type='chat'><body>resumed</body>"
                  "</message>" % b.jid)
        phone2.wait(sent_copy("resumed"), timeout=15)
        live.stop("router")
        live.start("router")
        # The nodes reconnect and re-announce at their own pace: the desk
        # writes until a copy arrives (bounded); with the flag lost in
        # the re-announcement none ever would.
        deadline = time.monotonic() + 30
        got = None
        i = 0
        while got is None and time.monotonic() < deadline:
            body = "after-%d" % i
            desk.send("<message to='%s' type='chat'><body>%s</body>"
                      "</message>" % (b.jid, body))
            try:
                got = phone2.wait(sent_copy(body), timeout=1)
            except AssertionError:
                i += 1
        assert got is not None, "no carbon after the router restart"
    finally:
        for c in (phone, desk, b, phone2):
            if c:
                c.close()
