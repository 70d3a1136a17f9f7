"""21 external components (XEP-0114) on the c2s nodes.

Requirement IDs: R-GW-1 (handshake, routing of a component's domain from
any node, presence to a component in the roster), R-GW-2 (server
disco#items lists connected components), R-GW-3 (the user's available and
unavailable broadcast reaches the component, also when the connection
drops).

The component is a raw socket (xmpp_component.py) on gw.localhost, whose
secret is in deploy/dev/kiln.conf.in.
"""

import asyncio
import os

from slixmpp.exceptions import IqError

from xmpp_client import iq, login, next_presence, run
from xmpp_component import Component, q

PW = "secret-pw"
GW = "gw.localhost"
SECRET = "gw-secret"
PORT_A = int(os.environ["KILN_COMPONENT_PORT"])
PORT_B = int(os.environ["KILN_COMPONENT_B_PORT"])
NS_ITEMS = "http://jabber.org/protocol/disco#items"


def is_msg(body=None):
    def pred(e):
        if e.tag != q("message"):
            return False
        b = e.find(q("body"))
        return body is None or (b is not None and b.text == body)
    return pred


def test_handshake_refusals_R_GW_1(live):
    async def scenario():
        # Wrong secret: not-authorized, stream closed.
        c = await Component.open(PORT_A, GW)
        assert not await c.handshake("wrong")
        assert await c.closed() == "not-authorized"
        # Unknown domain: host-unknown, before any handshake.
        c = await Component.open(PORT_B, "nope.localhost")
        assert await c.closed() == "host-unknown"
        # The right secret works on both nodes.
        a = await Component.connect(PORT_A, GW, SECRET)
        b = await Component.connect(PORT_B, GW, SECRET)
        await a.close()
        await b.close()

    run(scenario())


def test_route_both_ways_across_nodes_R_GW_1(live, make_user):
    make_user("c21alice", PW)

    async def scenario():
        comp = await Component.connect(PORT_A, GW, SECRET)
        # The user is on node B, the component on node A.
        u = await login(live, "c21alice", PW, "c2s-b", "r1")
        u.send_message(mto="bob@" + GW, mbody="to the gateway", mtype="chat")
        m = await comp.next_stanza(is_msg("to the gateway"))
        assert m.get("from") == "c21alice@localhost/r1"
        assert m.get("to") == "bob@" + GW
        # Any JID of its domain may write to a local user.
        comp.send("<message from='bob@%s/irc' to='c21alice@localhost' "
                  "type='chat'><body>from the gateway</body></message>" % GW)
        got = await u.next_message()
        assert got["body"] == "from the gateway"
        assert str(got["from"]) == "bob@%s/irc" % GW
        # An IQ from the user, answered by the component.
        fut = asyncio.ensure_future(
            iq(u, "get", "room@" + GW, "<query xmlns='urn:example:q'/>"))
        req = await comp.next_stanza(lambda e: e.tag == q("iq"))
        comp.send("<iq type='result' id='%s' from='room@%s' to='%s'>"
                  "<query xmlns='urn:example:q'><v>42</v></query></iq>"
                  % (req.get("id"), GW, req.get("from")))
        res = await fut
        assert res.xml.find("{urn:example:q}query/{urn:example:q}v").text \
            == "42"
        # A forged from on the main domain: invalid-from, closed.
        comp.send("<message from='c21alice@localhost' to='c21alice@localhost'>"
                  "<body>forged</body></message>")
        assert await comp.closed() == "invalid-from"
        await u.no_message(0.5)
        await u.stop()

    run(scenario())


def test_two_connections_spread_and_failover_R_GW_1(live, make_user):
    make_user("c21carol", PW)

    async def scenario():
        a = await Component.connect(PORT_A, GW, SECRET)
        b = await Component.connect(PORT_B, GW, SECRET)
        u = await login(live, "c21carol", PW, "c2s-a", "r1")
        n = 24
        for rnd in range(2):
            for i in range(n):
                u.send_message(mto="user%d@%s" % (i, GW),
                               mbody="m%d-%d" % (rnd, i), mtype="chat")
        seen = {}  # bare JID -> set of connections
        got = 0
        deadline = asyncio.get_event_loop().time() + 20
        while got < 2 * n:
            assert asyncio.get_event_loop().time() < deadline, seen
            for name, c in (("a", a), ("b", b)):
                try:
                    e = await c.next_stanza(is_msg(), timeout=0.2)
                except (AssertionError, asyncio.TimeoutError):
                    continue
                seen.setdefault(e.get("to"), set()).add(name)
                got += 1
        # Each conversation stays on one connection, and both are used.
        assert all(len(v) == 1 for v in seen.values()), seen
        used = set().union(*seen.values())
        assert used == {"a", "b"}, seen
        # One connection drops: once the router knows, everything goes
        # to the other.
        mark = live.log_mark("router")
        b.abort()
        await asyncio.get_event_loop().run_in_executor(
            None, lambda: live.wait_log("router", "a connection on c2s-b left",
                                        since=mark))
        for i in range(n):
            u.send_message(mto="user%d@%s" % (i, GW), mbody="after-%d" % i,
                           mtype="chat")
        for i in range(n):
            e = await a.next_stanza(is_msg("after-%d" % i), timeout=10)
            assert e is not None
        # None left: a message bounces with remote-server-not-found and
        # an iq with service-unavailable, at once.
        mark = live.log_mark("router")
        await a.close()
        await asyncio.get_event_loop().run_in_executor(
            None, lambda: live.wait_log("router", "left (0 left)", since=mark))
        u.send_message(mto="user1@" + GW, mbody="nobody", mtype="chat")
        err = await u.next_message(timeout=5)
        assert err["type"] == "error"
        assert err["error"]["condition"] == "remote-server-not-found"
        try:
            await iq(u, "get", "user1@" + GW, "<query xmlns='urn:example:q'/>")
            raise AssertionError("iq to a gone component answered")
        except IqError as e:
            assert e.iq["error"]["condition"] == "service-unavailable"
        await u.stop()

    run(scenario())


def test_disco_items_lists_components_R_GW_2(live, make_user):
    make_user("c21dave", PW)

    def items(res):
        return {(i.get("jid"), i.get("name"))
                for i in res.xml.iter("{%s}item" % NS_ITEMS)}

    async def scenario():
        u = await login(live, "c21dave", PW, "c2s-a", "r1")
        res = await iq(u, "get", "localhost", "<query xmlns='%s'/>" % NS_ITEMS)
        assert (GW, "Test gateway") not in items(res)
        comp = await Component.connect(PORT_B, GW, SECRET)
        res = await iq(u, "get", "localhost", "<query xmlns='%s'/>" % NS_ITEMS)
        assert (GW, "Test gateway") in items(res)
        assert ("conference.localhost", None) in items(res)
        mark = live.log_mark("router")
        await comp.close()
        await asyncio.get_event_loop().run_in_executor(
            None, lambda: live.wait_log("router", "left (0 left)", since=mark))
        res = await iq(u, "get", "localhost", "<query xmlns='%s'/>" % NS_ITEMS)
        assert (GW, "Test gateway") not in items(res)
        await u.stop()

    run(scenario())


def test_presence_reaches_component_in_roster_R_GW_1_R_GW_3(live, make_user):
    make_user("c21erin", PW)

    def pres(frm, ptype=None):
        def pred(e):
            return (e.tag == q("presence") and
                    (e.get("from") or "").startswith(frm) and
                    e.get("type") == ptype)
        return pred

    async def scenario():
        comp = await Component.connect(PORT_A, GW, SECRET)
        u = await login(live, "c21erin", PW, "c2s-b", "r1")
        # Subscribe to the gateway; it approves and subscribes back
        # (slixmpp approves automatically): subscription both.
        u.send_presence(pto=GW, ptype="subscribe")
        sub = await comp.next_stanza(pres("c21erin@localhost", "subscribe"))
        assert sub.get("to") == GW
        comp.send("<presence from='%s' to='c21erin@localhost' "
                  "type='subscribed'/>" % GW)
        comp.send("<presence from='%s' to='c21erin@localhost' "
                  "type='subscribe'/>" % GW)
        await comp.next_stanza(pres("c21erin@localhost", "subscribed"))
        comp.send("<presence from='%s' to='c21erin@localhost'/>" % GW)
        p = await next_presence(u, lambda p: str(p["from"]) == GW and
                                p["type"] == "available")
        res = await iq(u, "get", None, "<query xmlns='jabber:iq:roster'/>")
        items = {i.get("jid"): i.get("subscription")
                 for i in res.xml.iter("{jabber:iq:roster}item")}
        assert items.get(GW) == "both", items
        # R-GW-1: a new login's available presence reaches the gateway.
        u2 = await login(live, "c21erin", PW, "c2s-a", "r2")
        p = await comp.next_stanza(pres("c21erin@localhost/r2"))
        assert p.get("to") == GW
        # R-GW-3: the connection drops (no unavailable from the client):
        # the gateway still learns it.
        u2.abort()
        p = await comp.next_stanza(pres("c21erin@localhost/r2",
                                        "unavailable"), timeout=15)
        assert p.get("to") == GW
        await u.stop()
        p = await comp.next_stanza(pres("c21erin@localhost/r1",
                                        "unavailable"), timeout=15)
        await comp.close()

    run(scenario())
