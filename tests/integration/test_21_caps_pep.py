"""21 Entity capabilities (XEP-0115) and the PEP notifications they drive
(XEP-0163 4.3), issue 11: avatars (XEP-0084), nicknames (XEP-0172),
bookmarks (XEP-0402) and OMEMO device lists between slixmpp clients on
different c2s nodes.

Clients load slixmpp's xep_0115, xep_0163, xep_0084 and xep_0172
plugins: their +notify interests go into their caps, and presenced must
resolve those caps (one disco#info per ver, hash verified) to know whom to
notify. Raw XML where slixmpp hides what we check: the forged caps
presence, and the PEP event messages (caught with test_12's handler).

Negative checks need no sleeps: an event that must not arrive is checked
against a later stanza that travels the same path (presenced -> router ->
the same c2s node) and so arrives after it: the owner's next presence
(for subscribed contacts) or a publish to another node the party does
receive.
"""

import asyncio
import time
import uuid
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import roster_row
from test_12_pep import NS_EV, item_of, publish, retract_xml, retracted
from xmpp_client import Client, iq, login, run

PW = "secret-pw"
D = "localhost"
NS_AVATAR_META = "urn:xmpp:avatar:metadata"
NS_NICK = "http://jabber.org/protocol/nick"
NS_BM = "urn:xmpp:bookmarks:1"
NS_OMEMO = "eu.siacs.conversations.axolotl.devicelist"
NS_INFO = "http://jabber.org/protocol/disco#info"


def plog(cluster, since):
    """presenced's log written since a log_mark()."""
    return cluster.procs["presenced"].text(since=since)


async def logged(cluster, needle, since, timeout=20, *others):
    """Wait for needle (or one of others) in presenced's log since a mark,
    without blocking the loop the clients run on (they must answer the
    disco#info). Returns the one found."""
    deadline = time.monotonic() + timeout
    while True:
        text = plog(cluster, since)
        for n in (needle,) + others:
            if n in text:
                return n
        assert time.monotonic() < deadline, "presenced did not log %r" % (
            needle,)
        await asyncio.sleep(0.05)


def friends(a, b):
    """a and b subscribed to each other (both rows, as presenced writes
    them)."""
    roster_row(a, b, "both")
    roster_row(b, a, "both")


def watch(c):
    """Everything c receives that a negative check must see past: PEP
    events and presences, in arrival order."""
    q = asyncio.Queue()

    def on_msg(m):
        ev = m.xml.find("{%s}event" % NS_EV)
        if ev is not None:
            q.put_nowait(("event", ev))

    c.register_handler(Callback("kiln-test pep events 21",
                                MatchXPath("{jabber:client}message"), on_msg))
    c.add_event_handler("presence", lambda p: q.put_nowait(("presence", p)))
    return q


def node_of(ev):
    its = ev.find("{%s}items" % NS_EV)
    return its.get("node") if its is not None else None


async def next_ev(q, pred, timeout=10):
    """The first event matching pred; events before it are returned too."""
    seen = []
    while True:
        kind, x = await asyncio.wait_for(q.get(), timeout)
        if kind == "event":
            if pred(x):
                return x, seen
            seen.append(x)


async def until_status(q, frm, status, timeout=10):
    """Events received before frm's presence with this status."""
    seen = []
    while True:
        kind, x = await asyncio.wait_for(q.get(), timeout)
        if kind == "event":
            seen.append(x)
        elif str(x["from"]) == frm and x["status"] == status:
            return seen


async def device(cluster, user, node, resource, interests=(), avatar=False,
                 nick=False, extra=()):
    """A slixmpp client with caps (xep_0115) whose +notify interests are
    the given PEP nodes (xep_0084: avatar metadata, xep_0172: nick; the
    others through xep_0163.add_interest). Returns (client, events queue)
    once presenced has resolved its caps."""
    full = "%s@%s/%s" % (user, D, resource)
    c = Client(full, PW, cluster.ports[node]["starttls"], cluster.cert)
    for plugin in ("xep_0030", "xep_0060", "xep_0115", "xep_0163"):
        c.register_plugin(plugin)
    if avatar:
        c.register_plugin("xep_0084")
    if nick:
        c.register_plugin("xep_0172")
    q = watch(c)
    await c.start(presence=False)
    for ns in interests:
        c["xep_0030"].add_feature(ns + "+notify")
    for f in extra:
        c["xep_0030"].add_feature(f)
    await c["xep_0115"].update_caps(broadcast=False)
    ver = await c["xep_0115"].get_verstring()
    mark = cluster.log_mark("presenced")
    c.send_presence()
    await logged(cluster, "caps %s: sha-1 %s " % (full, ver), mark)
    return c, q, ver


def test_avatar_nick_omemo_bookmarks_reach_only_interested_XEP_0163(
        live, make_user):
    for u in ("c21al", "c21bob", "c21car", "c21dave"):
        make_user(u, PW)
    friends("c21al", "c21bob")  # avatar, nick, OMEMO, bookmarks +notify
    friends("c21al", "c21car")  # nick only
    roster_row("c21al", "c21dave", "none")  # a contact, no subscription
    roster_row("c21dave", "c21al", "none")
    al = "c21al@" + D

    async def scenario():
        a = await login(live, "c21al", PW, "c2s-a", "pc")
        for plugin in ("xep_0060", "xep_0163", "xep_0084", "xep_0172"):
            a.register_plugin(plugin)
        b, qb, _ = await device(live, "c21bob", "c2s-b", "phone",
                                interests=(NS_OMEMO, NS_BM), avatar=True,
                                nick=True)
        c, qc, _ = await device(live, "c21car", "c2s-b", "phone", nick=True)
        d, qd, _ = await device(live, "c21dave", "c2s-b", "phone",
                                interests=(NS_OMEMO,), avatar=True)
        # the avatar, with slixmpp's XEP-0084 plugin (presence access)
        await a["xep_0084"].publish_avatar(b"\x89PNG kiln")
        await a["xep_0084"].publish_avatar_metadata(
            items=[{"id": "av1", "type": "image/png", "bytes": 9}])
        ev, before = await next_ev(qb, lambda e: node_of(e) ==
                                   NS_AVATAR_META)
        assert before == []
        info = item_of(ev).find("{%s}metadata/{%s}info" % (
            NS_AVATAR_META, NS_AVATAR_META))
        assert info.get("id") == "av1"
        # the nick (XEP-0172): bob and carol asked for it
        await a["xep_0172"].publish_nick("Al")
        for q in (qb, qc):
            ev, before = await next_ev(q, lambda e: node_of(e) == NS_NICK)
            assert item_of(ev)[0].text == "Al"
            # carol (no avatar+notify) got nothing before it
            assert [node_of(e) for e in before] == []
        # the OMEMO device list (open access, as Conversations publishes
        # it): bob and dave asked; dave has no subscription but the node
        # is open, while the presence-access avatar never reached him
        await publish(a, NS_OMEMO, "current",
                      "<list xmlns='%s'><device id='42'/></list>" % NS_OMEMO,
                      access_model="open")
        for q in (qb, qd):
            ev, before = await next_ev(q, lambda e: node_of(e) == NS_OMEMO)
            assert item_of(ev)[0][0].get("id") == "42"
            assert before == []
        # a retract reaches them on the same terms
        await iq(a, "set", None, retract_xml(NS_OMEMO, "current"))
        for q in (qb, qd):
            await next_ev(q, retracted(NS_OMEMO, "current"))
        # bookmarks (XEP-0402, whitelist): the owner's resources only
        await publish(a, NS_BM, "room@conference." + D,
                      "<conference xmlns='%s' autojoin='true'/>" % NS_BM,
                      access_model="whitelist", persist_items="true",
                      max_items="max")
        a.send_presence(pstatus="after-bookmarks")
        assert [node_of(e) for e in await until_status(
            qb, al + "/pc", "after-bookmarks")] == []
        for x in (a, b, c, d):
            await x.stop()

    run(scenario(), timeout=90)


def test_last_items_on_coming_online_XEP_0163(live, make_user):
    for u in ("c21own", "c21fr"):
        make_user(u, PW)
    friends("c21own", "c21fr")
    own = "c21own@" + D

    async def scenario():
        o = await login(live, "c21own", PW, "c2s-a", "pc")
        await publish(o, NS_AVATAR_META, "av2",
                      "<metadata xmlns='%s'><info id='av2' type='image/png' "
                      "bytes='3'/></metadata>" % NS_AVATAR_META)
        await publish(o, NS_NICK, "current",
                      "<nick xmlns='%s'>Owner</nick>" % NS_NICK)
        await publish(o, NS_OMEMO, "current",
                      "<list xmlns='%s'><device id='7'/></list>" % NS_OMEMO,
                      access_model="open")
        await publish(o, NS_BM, "r@conference." + D,
                      "<conference xmlns='%s'/>" % NS_BM,
                      access_model="whitelist")
        # the friend comes online on the other node: the last item of
        # each node it is interested in, bookmarks excepted (whitelist)
        f, qf, _ = await device(live, "c21fr", "c2s-b", "phone",
                                interests=(NS_OMEMO, NS_BM), avatar=True,
                                nick=True)
        got = {}
        while len(got) < 3:
            ev, _ = await next_ev(qf, lambda e: True)
            got[node_of(ev)] = item_of(ev)
        assert set(got) == {NS_AVATAR_META, NS_NICK, NS_OMEMO}
        assert got[NS_NICK][0].text == "Owner"
        assert got[NS_OMEMO][0][0].get("id") == "7"
        o.send_presence(pstatus="barrier")
        assert [node_of(e) for e in await until_status(
            qf, own + "/pc", "barrier")] == []
        # the owner's own second device gets its bookmarks too
        o2, qo2, _ = await device(live, "c21own", "c2s-b", "tablet",
                                  interests=(NS_BM,))
        ev, _ = await next_ev(qo2, lambda e: node_of(e) == NS_BM)
        assert item_of(ev).get("id") == "r@conference." + D
        for x in (o, f, o2):
            await x.stop()

    run(scenario(), timeout=90)


def test_forged_caps_hash_not_trusted_XEP_0115(live, make_user):
    for u in ("c21pub", "c21eve"):
        make_user(u, PW)
    friends("c21pub", "c21eve")
    pub = "c21pub@" + D
    forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    cnode = "http://kiln.test/forger"

    async def scenario():
        p = await login(live, "c21pub", PW, "c2s-a", "pc")
        # eve's disco#info answer for the claimed node lists the avatar
        # +notify interest, but does not hash to the ver she claims
        full = "c21eve@%s/phone" % D
        e = Client(full, PW, live.ports["c2s-b"]["starttls"], live.cert)
        e.register_plugin("xep_0030")
        q = watch(e)
        await e.start(presence=False)
        e["xep_0030"].add_identity("client", "pc", node=cnode + "#" + forged)
        for f in (NS_INFO, NS_AVATAR_META + "+notify"):
            e["xep_0030"].add_feature(f, node=cnode + "#" + forged)
        mark = live.log_mark("presenced")
        pres = e.make_presence()
        pres.append(ET.fromstring(
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
            "node='%s' ver='%s'/>" % (cnode, forged)))
        pres.send()
        # the resolution ends one way or the other
        await logged(live, "answered for sha-1 %s with " % forged, mark, 20,
                     "caps %s: sha-1 %s resolved" % (full, forged))
        await publish(p, NS_AVATAR_META, "av3",
                      "<metadata xmlns='%s'><info id='av3' type='image/png' "
                      "bytes='3'/></metadata>" % NS_AVATAR_META)
        p.send_presence(pstatus="after-avatar")
        assert [node_of(x) for x in await until_status(
            q, pub + "/pc", "after-avatar")] == []
        assert "answered for sha-1 %s with " % forged in plog(live, mark)
        assert "not trusted" in plog(live, mark)
        for x in (p, e):
            await x.stop()

    run(scenario(), timeout=60)


def test_caps_cache_one_disco_per_ver_XEP_0115(live, make_user, redis):
    for u in ("c21k1", "c21k2", "c21k3"):
        make_user(u, PW)
    # a feature of our own makes the ver new to this cluster
    extra = ("urn:kiln:test:caps:" + uuid.uuid4().hex,)

    def queries(since):
        return plog(live, since).count("caps: disco#info to ")

    async def scenario():
        mark = live.log_mark("presenced")
        k1, _, ver = await device(live, "c21k1", "c2s-a", "r",
                                  avatar=True, extra=extra)
        assert "caps: disco#info to c21k1@%s/r for sha-1 %s" % (D, ver) in \
            plog(live, mark)
        assert queries(mark) == 1
        # the same ver from another session on the other node: a hit
        k2, _, ver2 = await device(live, "c21k2", "c2s-b", "r",
                                   avatar=True, extra=extra)
        assert ver2 == ver
        assert "caps c21k2@%s/r: sha-1 %s known" % (D, ver) in \
            plog(live, mark)
        assert queries(mark) == 1
        # cluster-wide: the feature list is in Redis, with a TTL
        feats = redis("GET", "caps:sha-1:%s" % ver).split("\n")
        assert NS_AVATAR_META + "+notify" in feats and extra[0] in feats
        assert 0 < int(redis("TTL", "caps:sha-1:%s" % ver)) <= 2592000
        for x in (k1, k2):
            await x.stop()

    run(scenario(), timeout=60)
    # a restarted presenced (empty memory) finds the ver in Redis
    live.restart("presenced")

    async def after():
        mark = live.log_mark("presenced")
        k3, _, ver = await device(live, "c21k3", "c2s-a", "r",
                                  avatar=True, extra=extra)
        assert "caps: sha-1 %s from redis" % ver in \
            plog(live, mark)
        assert queries(mark) == 0
        await k3.stop()

    run(after(), timeout=60)
