"""12 PEP: the Personal Eventing Protocol service of kiln-presenced
(XEP-0163 on XEP-0060) and the group bookmarks kiln-mucd keeps in it.

Requirement IDs: R-GRP-6 (a group member's XEP-0402 bookmarks node gets
the room when the member is added, loses it when the member is removed or
the room destroyed; every device is notified), R-GRP-7 (a banned or
removed member loses the bookmark). The rest is named after the XEP.

slixmpp's pubsub plugins are not loaded: requests are raw XML, and the
event messages, which carry no <body/> (slixmpp raises its "message" event
only for messages with one), are caught with a handler of our own.
"""

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import roster_row, sql
from test_07_muc import NS_ADMIN, NS_OWNER, SVC, kilnctl
from xmpp_client import iq, login, run

PW = "secret-pw"
D = "localhost"
NS_PS = "http://jabber.org/protocol/pubsub"
NS_PSO = NS_PS + "#owner"
NS_EV = NS_PS + "#event"
NS_ERR = NS_PS + "#errors"
NS_BM = "urn:xmpp:bookmarks:1"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"


@pytest.fixture
def pep(live):
    return live


# ---- helpers ---------------------------------------------------------------

async def iq_error(c, itype, to, payload):
    """(stanza condition, pubsub#errors condition or None) of the error."""
    try:
        r = await iq(c, itype, to, payload)
    except IqError as e:
        err = e.iq.xml.find("{jabber:client}error")
        app = [ch.tag.split("}")[1] for ch in err
               if ch.tag.startswith("{%s}" % NS_ERR)]
        return e.iq["error"]["condition"], (app[0] if app else None)
    raise AssertionError("expected an error, got %s" % r)


def form(form_type, **fields):
    f = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
         "type='hidden'><value>%s</value></field>" % form_type)
    for k, v in fields.items():
        f += "<field var='pubsub#%s'><value>%s</value></field>" % (k, v)
    return f + "</x>"


def publish_xml(node, item_id, payload, **opts):
    ida = " id='%s'" % item_id if item_id is not None else ""
    x = ("<pubsub xmlns='%s'><publish node='%s'><item%s>%s</item></publish>"
         % (NS_PS, node, ida, payload))
    if opts:
        x += "<publish-options>%s</publish-options>" % form(
            NS_PS + "#publish-options", **opts)
    return x + "</pubsub>"


async def publish(c, node, item_id, payload, to=None, **opts):
    r = await iq(c, "set", to, publish_xml(node, item_id, payload, **opts))
    it = r.xml.find("{%s}pubsub/{%s}publish/{%s}item" % (NS_PS, NS_PS, NS_PS))
    return it.get("id")


def retract_xml(node, item_id):
    return ("<pubsub xmlns='%s'><retract node='%s' notify='true'><item "
            "id='%s'/></retract></pubsub>" % (NS_PS, node, item_id))


async def items(c, owner, node, inner="", max_items=None):
    m = " max_items='%d'" % max_items if max_items else ""
    r = await iq(c, "get", owner, "<pubsub xmlns='%s'><items node='%s'%s>%s"
                 "</items></pubsub>" % (NS_PS, node, m, inner))
    return [(i.get("id"), i[0] if len(i) else None)
            for i in r.xml.iter("{%s}item" % NS_PS)]


def items_xml(node):
    return "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PS, node)


def watch_events(c):
    """A queue of the PEP event messages c receives."""
    q = asyncio.Queue()

    def on_msg(m):
        ev = m.xml.find("{%s}event" % NS_EV)
        if ev is not None:
            q.put_nowait(ev)

    c.register_handler(Callback("kiln-test pep events",
                                MatchXPath("{jabber:client}message"), on_msg))
    return q


async def next_event(q, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching PEP event")
        ev = await asyncio.wait_for(q.get(), left)
        if pred(ev):
            return ev


async def no_event(q, pred, wait=1.0):
    try:
        ev = await next_event(q, pred, wait)
    except (AssertionError, asyncio.TimeoutError):
        return True
    raise AssertionError("unexpected event: %s" % ET.tostring(ev))


def published(node, item_id):
    def pred(ev):
        its = ev.find("{%s}items" % NS_EV)
        return (its is not None and its.get("node") == node and any(
            i.get("id") == item_id for i in its.findall("{%s}item" % NS_EV)))
    return pred


def retracted(node, item_id):
    def pred(ev):
        its = ev.find("{%s}items" % NS_EV)
        return (its is not None and its.get("node") == node and any(
            r.get("id") == item_id
            for r in its.findall("{%s}retract" % NS_EV)))
    return pred


def item_of(ev):
    return ev.find("{%s}items/{%s}item" % (NS_EV, NS_EV))


async def seen_by(c, other_full):
    """Wait until c got available presence from other_full (so presenced
    has processed other_full's presence: it is an available resource)."""
    deadline = time.monotonic() + 5
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no presence from %s" % other_full
        p = await asyncio.wait_for(c.presences.get(), left)
        if str(p["from"]) == other_full and p["type"] != "unavailable":
            return


async def two_devices(cluster, user):
    """user on c2s-a (d1) and c2s-b (d2), both available, both watched."""
    d1 = await login(cluster, user, PW, "c2s-a", "d1")
    d2 = await login(cluster, user, PW, "c2s-b", "d2")
    await seen_by(d1, "%s@%s/d2" % (user, D))
    return d1, d2, watch_events(d1), watch_events(d2)


# ---- the PEP service -------------------------------------------------------

def test_publish_retrieve_retract_XEP_0163(pep, make_user):
    make_user("p12pub", PW)
    own = "p12pub@" + D
    node = "urn:kiln:test:mood"

    async def scenario():
        a = await login(pep, "p12pub", PW, "c2s-a", "r")
        # nothing there yet
        assert await iq_error(a, "get", None, items_xml(node)) == (
            "item-not-found", None)
        # first publish creates the node; the result names the item
        assert await publish(a, node, "one", "<m xmlns='kt'>1</m>",
                             max_items=3) == "one"
        assert await publish(a, node, "two", "<m xmlns='kt'>2</m>") == "two"
        got = await items(a, own, node)
        assert [i for i, _ in got] == ["one", "two"]
        assert got[0][1].tag == "{kt}m" and got[0][1].text == "1"
        # same id: replaced (and now the newest), never duplicated
        await publish(a, node, "one", "<m xmlns='kt'>1b</m>")
        got = await items(a, None, node)
        assert [i for i, _ in got] == ["two", "one"]
        assert got[1][1].text == "1b"
        # max_items in the request: the newest; by id
        assert [i for i, _ in await items(a, None, node, max_items=1)] == [
            "one"]
        got = await items(a, None, node, inner="<item id='two'/>")
        assert [i for i, _ in got] == ["two"] and got[0][1].text == "2"
        # the node keeps max_items = 3: the oldest goes
        await publish(a, node, "three", "<m xmlns='kt'>3</m>")
        await publish(a, node, "four", "<m xmlns='kt'>4</m>")
        assert [i for i, _ in await items(a, None, node)] == [
            "one", "three", "four"]
        # no id: the service makes one
        gen = await publish(a, node, None, "<m xmlns='kt'>g</m>")
        assert gen and gen not in ("one", "three", "four")
        assert gen in [i for i, _ in await items(a, None, node)]
        # retract; twice is item-not-found
        await iq(a, "set", None, retract_xml(node, "three"))
        assert "three" not in [i for i, _ in await items(a, None, node)]
        assert await iq_error(a, "set", None, retract_xml(node, "three")) == (
            "item-not-found", None)
        assert await iq_error(a, "set", None,
                              retract_xml("urn:kiln:none", "x")) == (
            "item-not-found", None)
        await a.stop()

    run(scenario())


def test_bad_requests_get_pubsub_errors_XEP_0060(pep, make_user):
    make_user("p12bad", PW)

    async def scenario():
        a = await login(pep, "p12bad", PW, "c2s-a", "r")
        ps = "<pubsub xmlns='%s'>%%s</pubsub>" % NS_PS
        cases = [
            (ps % "<publish><item id='1'><x xmlns='k'/></item></publish>",
             ("bad-request", "nodeid-required")),
            (ps % "<publish node='n'/>", ("bad-request", "item-required")),
            (ps % "<publish node='n'><item id='1'/></publish>",
             ("bad-request", "payload-required")),
            (ps % "<publish node='n'><item id='1'><x xmlns='k'/><y "
             "xmlns='k'/></item></publish>", ("bad-request", "invalid-payload")),
            (ps % "<retract node='n'/>", ("bad-request", "item-required")),
            (ps % "<subscribe node='n' jid='p12bad@localhost'/>",
             ("feature-not-implemented", "unsupported")),
            (publish_xml("n", "1", "<x xmlns='k'/>", access_model="roster"),
             ("feature-not-implemented", "unsupported")),
            (publish_xml("n", "1", "<x xmlns='k'/>", max_items="zero"),
             ("bad-request", None)),
            (publish_xml("n", "1", "<x xmlns='k'/>", max_items="100000000"),
             ("not-acceptable", None)),
            (publish_xml("n", "1", "<x xmlns='k'/>", deliver_payloads="0"),
             ("not-acceptable", None)),
            ("<pubsub xmlns='%s'><create/></pubsub>" % NS_PS,
             ("not-acceptable", "nodeid-required")),
        ]
        for payload, want in cases:
            assert await iq_error(a, "set", None, payload) == want, payload
        assert await iq_error(a, "get", None, ps % "<items max_items='0' "
                              "node='n'/>") == ("bad-request", None)
        # nothing was created by the refused publishes
        assert await iq_error(a, "get", None, items_xml("n")) == (
            "item-not-found", None)
        await a.stop()

    run(scenario())


def test_items_survive_presenced_restart_XEP_0163(pep, make_user):
    make_user("p12keep", PW)
    node = "urn:kiln:test:keep"

    async def before():
        a = await login(pep, "p12keep", PW, "c2s-a", "r")
        await publish(a, node, "k1", "<v xmlns='kt'>kept</v>",
                      persist_items="true", max_items="max")
        await a.stop()

    run(before())
    mark = pep.log_mark("router")
    pep.restart("presenced")
    pep.wait_log("router", "registered 0040 '%s'" % NS_PS, since=mark)

    async def after():
        a = await login(pep, "p12keep", PW, "c2s-b", "r2")
        got = await items(a, None, node)
        assert [(i, p.text) for i, p in got] == [("k1", "kept")]
        await a.stop()

    run(after())


def test_notification_reaches_second_resource_on_other_node_XEP_0163(
        pep, make_user):
    make_user("p12two", PW)
    node = "urn:kiln:test:tune"

    async def scenario():
        d1, d2, q1, q2 = await two_devices(pep, "p12two")
        await publish(d1, node, "t1", "<tune xmlns='kt'>song</tune>")
        for q in (q1, q2):
            ev = await next_event(q, published(node, "t1"))
            assert item_of(ev)[0].text == "song"
        await iq(d1, "set", None, retract_xml(node, "t1"))
        for q in (q1, q2):
            await next_event(q, retracted(node, "t1"))
        # purge and delete are notified too
        await publish(d2, node, "t2", "<tune xmlns='kt'>b</tune>")
        await iq(d2, "set", None, "<pubsub xmlns='%s'><purge node='%s'/>"
                 "</pubsub>" % (NS_PSO, node))
        await next_event(q1, lambda ev: ev.find(
            "{%s}purge" % NS_EV) is not None)
        assert await items(d1, None, node) == []
        await iq(d2, "set", None, "<pubsub xmlns='%s'><delete node='%s'/>"
                 "</pubsub>" % (NS_PSO, node))
        ev = await next_event(q1, lambda ev: ev.find(
            "{%s}delete" % NS_EV) is not None)
        assert ev.find("{%s}delete" % NS_EV).get("node") == node
        assert await iq_error(d1, "get", None, items_xml(node)) == (
            "item-not-found", None)
        for d in (d1, d2):
            await d.stop()

    run(scenario())


def test_foreign_jid_forbidden_and_access_models_XEP_0060(pep, make_user):
    for u in ("p12own", "p12friend", "p12stranger"):
        make_user(u, PW)
    own = "p12own@" + D
    # the owner's roster gives the friend subscription from (it receives
    # the owner's presence); set before the owner's roster is cached
    roster_row("p12own", "p12friend", "from")

    async def scenario():
        o = await login(pep, "p12own", PW, "c2s-a", "r")
        await publish(o, "n-presence", "i", "<v xmlns='kt'>p</v>")
        await publish(o, "n-open", "i", "<v xmlns='kt'>o</v>",
                      access_model="open")
        await publish(o, "n-white", "i", "<v xmlns='kt'>w</v>",
                      access_model="whitelist")
        f = await login(pep, "p12friend", PW, "c2s-b", "r")
        s = await login(pep, "p12stranger", PW, "c2s-b", "r")
        # nobody but the owner writes
        for c in (f, s):
            assert await iq_error(c, "set", own, publish_xml(
                "n-open", "x", "<v xmlns='kt'>evil</v>")) == (
                "forbidden", None)
            assert await iq_error(c, "set", own, retract_xml(
                "n-open", "i")) == ("forbidden", None)
            assert await iq_error(c, "set", own, "<pubsub xmlns='%s'><delete "
                                  "node='n-open'/></pubsub>" % NS_PSO) == (
                "forbidden", None)
        # reading: open for all, presence for from/both, whitelist owner
        for c in (f, s):
            assert [p.text for _, p in await items(c, own, "n-open")] == ["o"]
            assert await iq_error(c, "get", own, items_xml("n-white")) == (
                "not-allowed", "closed-node")
        assert [p.text for _, p in await items(f, own, "n-presence")] == ["p"]
        assert await iq_error(s, "get", own, items_xml("n-presence")) == (
            "not-authorized", "presence-subscription-required")
        # the account's node list shows each only what it may read
        r = await iq(s, "get", own, "<query xmlns='%s'/>" % NS_ITEMS)
        assert [i.get("node") for i in r.xml.iter("{%s}item" % NS_ITEMS)] \
            == ["n-open"]
        r = await iq(o, "get", own, "<query xmlns='%s'/>" % NS_ITEMS)
        assert [i.get("node") for i in r.xml.iter("{%s}item" % NS_ITEMS)] \
            == ["n-open", "n-presence", "n-white"]
        # nothing changed
        assert [p.text for _, p in await items(o, None, "n-open")] == ["o"]
        for c in (o, f, s):
            await c.stop()

    run(scenario())


def test_publish_options_precondition_and_configure_XEP_0060(pep, make_user):
    make_user("p12opts", PW)
    node = "urn:kiln:test:private"

    async def scenario():
        a = await login(pep, "p12opts", PW, "c2s-a", "r")
        await publish(a, node, "1", "<v xmlns='kt'/>", access_model="whitelist",
                      max_items="max")
        # the same options again: fine; different ones: conflict
        await publish(a, node, "2", "<v xmlns='kt'/>", access_model="whitelist")
        assert await iq_error(a, "set", None, publish_xml(
            node, "3", "<v xmlns='kt'/>", access_model="open")) == (
            "conflict", "precondition-not-met")
        # the configuration form says what the node is
        r = await iq(a, "get", None, "<pubsub xmlns='%s'><configure node="
                     "'%s'/></pubsub>" % (NS_PSO, node))
        fields = {f.get("var"): f.findtext("{jabber:x:data}value")
                  for f in r.xml.iter("{jabber:x:data}field")}
        assert fields["pubsub#access_model"] == "whitelist"
        assert fields["pubsub#persist_items"] == "1"
        assert fields["pubsub#max_items"] == "1000"
        # reconfigure (max_items 1 keeps the newest item), then publish
        await iq(a, "set", None, "<pubsub xmlns='%s'><configure node='%s'>"
                 "%s</configure></pubsub>" % (NS_PSO, node, form(
                     NS_PS + "#node_config", access_model="open",
                     max_items="1")))
        assert [i for i, _ in await items(a, None, node)] == ["2"]
        await publish(a, node, "3", "<v xmlns='kt'/>", access_model="open")
        # create: conflict for an existing node, fine for a new one
        assert await iq_error(a, "set", None, "<pubsub xmlns='%s'><create "
                              "node='%s'/></pubsub>" % (NS_PS, node)) == (
            "conflict", None)
        await iq(a, "set", None, "<pubsub xmlns='%s'><create node='fresh'/>"
                 "<configure>%s</configure></pubsub>" % (NS_PS, form(
                     NS_PS + "#node_config", access_model="whitelist")))
        assert await items(a, None, "fresh") == []
        await a.stop()

    run(scenario())


def test_account_disco_advertises_pep_XEP_0163(pep, make_user):
    make_user("p12disco", PW)
    make_user("p12asker", PW)

    async def scenario():
        a = await login(pep, "p12disco", PW, "c2s-a", "r")
        b = await login(pep, "p12asker", PW, "c2s-b", "r")
        for c in (a, b):
            r = await iq(c, "get", "p12disco@" + D,
                         "<query xmlns='%s'/>" % NS_INFO)
            ids = {(i.get("category"), i.get("type"))
                   for i in r.xml.iter("{%s}identity" % NS_INFO)}
            assert ("pubsub", "pep") in ids and ("account", "registered") in ids
            feats = {f.get("var") for f in r.xml.iter("{%s}feature" % NS_INFO)}
            assert {NS_PS, NS_PS + "#publish", NS_PS + "#publish-options",
                    NS_PS + "#auto-create", NS_PS + "#retrieve-items",
                    NS_PS + "#retract-items",
                    # "max" is a max_items value: Converse.js asks for 9999
                    # (over the limit) unless it sees this feature
                    NS_PS + "#config-node-max"} <= feats
        # no such account: service-unavailable (RFC 6121 8.5.1)
        cond = await iq_error(b, "get", "p12nobody@" + D,
                              "<query xmlns='%s'/>" % NS_INFO)
        assert cond[0] == "service-unavailable"
        # the server's own disco is still the router's
        r = await iq(a, "get", D, "<query xmlns='%s'/>" % NS_INFO)
        ids = {(i.get("category"), i.get("type"))
               for i in r.xml.iter("{%s}identity" % NS_INFO)}
        assert ("server", "im") in ids and ("pubsub", "pep") not in ids
        await a.stop()
        await b.stop()

    run(scenario())


# ---- group bookmarks (mucd publishes, presenced stores and notifies) --------

def bookmark_pred(room, name=None):
    def pred(ev):
        if not published(NS_BM, room)(ev):
            return False
        conf = item_of(ev).find("{%s}conference" % NS_BM)
        return conf is not None and conf.get("autojoin") in ("true", "1") and (
            name is None or conf.get("name") == name)
    return pred


async def bookmark_ids(c):
    try:
        return [i for i, _ in await items(c, None, NS_BM)]
    except IqError as e:
        assert e.iq["error"]["condition"] == "item-not-found"
        return []


def test_bookmark_pushed_to_every_device_R_GRP_6(pep, make_user):
    make_user("p12gown", PW)
    make_user("p12gmem", PW)
    make_user("p12glate", PW)
    kilnctl("group-room", "create", "pg6", "--name", "Group Six", "--owner",
            "p12gown")
    room = "pg6@" + SVC

    async def scenario():
        o = await login(pep, "p12gown", PW, "c2s-a", "o")
        d1, d2, q1, q2 = await two_devices(pep, "p12gmem")
        t0 = time.monotonic()
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'member' jid='p12gmem@localhost'/></query>" % NS_ADMIN)
        ev = await next_event(q2, bookmark_pred(room, "Group Six"), 1.0)
        assert time.monotonic() - t0 <= 1.0
        assert ev is not None
        await next_event(q1, bookmark_pred(room), 1.0)
        # stored: an items get finds it, and the node is private
        assert room in await bookmark_ids(d1)
        r = await iq(d1, "get", None, "<pubsub xmlns='%s'><configure node="
                     "'%s'/></pubsub>" % (NS_PSO, NS_BM))
        fields = {f.get("var"): f.findtext("{jabber:x:data}value")
                  for f in r.xml.iter("{jabber:x:data}field")}
        assert fields["pubsub#access_model"] == "whitelist"
        # kilnctl remove-member: retracted on every device
        kilnctl("group-room", "remove-member", "pg6", "p12gmem")
        for q in (q1, q2):
            await next_event(q, retracted(NS_BM, room), 2.0)
        assert room not in await bookmark_ids(d2)
        # kilnctl add-member: back, within a second of kilnctl returning
        kilnctl("group-room", "add-member", "pg6", "p12gmem")
        t0 = time.monotonic()
        await next_event(q2, bookmark_pred(room, "Group Six"), 1.0)
        assert time.monotonic() - t0 <= 1.0
        # a member added while offline finds the bookmark at login
        kilnctl("group-room", "add-member", "pg6", "p12glate")
        deadline = time.monotonic() + 3
        late = await login(pep, "p12glate", PW, "c2s-b", "l")
        while room not in await bookmark_ids(late):
            assert time.monotonic() < deadline, "no bookmark for p12glate"
            await asyncio.sleep(0.1)
        # destroying the room retracts it for every member
        await iq(o, "set", room, "<query xmlns='%s'><destroy/></query>"
                 % NS_OWNER)
        for q in (q1, q2):
            await next_event(q, retracted(NS_BM, room), 2.0)
        assert room not in await bookmark_ids(d1)
        assert room not in await bookmark_ids(late)
        for c in (o, d1, d2, late):
            await c.stop()

    run(scenario())


def test_banned_or_removed_member_loses_bookmark_R_GRP_7(pep, make_user):
    make_user("p12bown", PW)
    make_user("p12bban", PW)
    make_user("p12brem", PW)
    kilnctl("group-room", "create", "pg7", "--name", "Group Seven",
            "--owner", "p12bown")
    kilnctl("group-room", "add-member", "pg7", "p12bban")
    kilnctl("group-room", "add-member", "pg7", "p12brem")
    room = "pg7@" + SVC

    async def scenario():
        o = await login(pep, "p12bown", PW, "c2s-a", "o")
        b = await login(pep, "p12bban", PW, "c2s-b", "b")
        r = await login(pep, "p12brem", PW, "c2s-a", "r")
        qb, qr = watch_events(b), watch_events(r)
        for c in (b, r):
            deadline = time.monotonic() + 3
            while room not in await bookmark_ids(c):
                assert time.monotonic() < deadline, "no bookmark yet"
                await asyncio.sleep(0.1)
        # ban via muc#admin: outcast -> retracted, gone from the node
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'outcast' jid='p12bban@localhost'/></query>" % NS_ADMIN)
        await next_event(qb, retracted(NS_BM, room), 2.0)
        assert room not in await bookmark_ids(b)
        # removal via muc#admin: affiliation none
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'none' jid='p12brem@localhost'/></query>" % NS_ADMIN)
        await next_event(qr, retracted(NS_BM, room), 2.0)
        assert room not in await bookmark_ids(r)
        for c in (o, b, r):
            await c.stop()

    run(scenario())


def test_rows_in_postgresql_XEP_0163(pep, make_user):
    """What the service stores: one node row, one item row per id."""
    make_user("p12rows", PW)

    async def scenario():
        a = await login(pep, "p12rows", PW, "c2s-a", "r")
        for _ in range(3):
            await publish(a, "urn:kiln:test:rows", "same", "<v xmlns='kt'/>")
        await a.stop()

    run(scenario())
    assert sql("select access_model, persist_items, max_items from pep_nodes "
               "where username = 'p12rows'") == "presence|t|1"
    assert sql("select count(*) from pep_items where username = "
               "'p12rows'") == "1"
