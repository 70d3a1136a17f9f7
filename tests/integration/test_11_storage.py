"""11 storage and small server IQs answered by kiln-presenced: private XML
storage (XEP-0049), software version (XEP-0092), entity time (XEP-0202),
vCards (XEP-0054) and blocking (XEP-0191).

Blocking is enforced in three places, all exercised here across the two
c2s nodes: presenced (the list, pushes, presence both ways, offline
storage, IQs to the account), c2s (deliveries from a blocked JID, sends
to one; the list it gets from presenced at login), and the router (one
refusal per message however many resources it reached).
"""

import asyncio
import re
import time
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import D, presenced, presences, roster_row, sql  # noqa: F401
from xmpp_client import iq, login, run

PW = "secret-pw"
NS_PRIV = "jabber:iq:private"
NS_BLOCK = "urn:xmpp:blocking"


async def iq_error(c, itype, to, payload):
    try:
        r = await iq(c, itype, to, payload)
    except IqError as e:
        return e.iq["error"]["condition"]
    raise AssertionError("expected an error, got %s" % r)


def test_private_storage_XEP_0049(presenced, make_user):
    make_user("s11priva", PW)
    make_user("s11privb", PW)
    frag = ("<query xmlns='jabber:iq:private'><prefs xmlns='s11:prefs'>"
            "<colour>blue</colour></prefs></query>")
    probe = ("<query xmlns='jabber:iq:private'><prefs xmlns='s11:prefs'/>"
             "</query>")

    async def scenario():
        a = await login(presenced, "s11priva", PW, "c2s-a", "r")
        # nothing stored yet: the empty element comes back
        r = await iq(a, "get", None, probe)
        p = r.xml.find("{%s}query/{s11:prefs}prefs" % NS_PRIV)
        assert p is not None and len(p) == 0
        await iq(a, "set", None, frag)
        r = await iq(a, "get", None, probe)
        p = r.xml.find("{%s}query/{s11:prefs}prefs" % NS_PRIV)
        assert p is not None
        assert p.findtext("{s11:prefs}colour") == "blue"
        # overwritten by a second set
        await iq(a, "set", None, frag.replace("blue", "red"))
        await a.stop()
        # persisted: another session on the other node reads it
        a = await login(presenced, "s11priva", PW, "c2s-b", "r2")
        r = await iq(a, "get", "s11priva@" + D, probe)
        p = r.xml.find("{%s}query/{s11:prefs}prefs" % NS_PRIV)
        assert p is not None and p.findtext("{s11:prefs}colour") == "red"
        # jabber:* namespaces are refused (XEP-0049 section 3)
        assert await iq_error(a, "set", None,
                              "<query xmlns='jabber:iq:private'>"
                              "<x xmlns='jabber:iq:roster'/></query>") \
            == "not-acceptable"
        # another user cannot read (nor write) it
        b = await login(presenced, "s11privb", PW, "c2s-a", "r")
        assert await iq_error(b, "get", "s11priva@" + D, probe) == "forbidden"
        assert await iq_error(b, "set", "s11priva@" + D,
                              frag.replace("blue", "evil")) == "forbidden"
        # B's own storage is separate
        r = await iq(b, "get", None, probe)
        p = r.xml.find("{%s}query/{s11:prefs}prefs" % NS_PRIV)
        assert p is not None and len(p) == 0
        await b.stop()
        await a.stop()

    run(scenario())
    assert "red" in sql("select xml from private_storage where "
                        "username = 's11priva'")


def test_version_XEP_0092(presenced, make_user):
    make_user("s11ver", PW)

    async def scenario():
        a = await login(presenced, "s11ver", PW, "c2s-a", "r")
        r = await iq(a, "get", D, "<query xmlns='jabber:iq:version'/>")
        assert str(r["from"]) == D
        q = r.xml.find("{jabber:iq:version}query")
        assert q is not None
        assert q.findtext("{jabber:iq:version}name") == "Kiln"
        assert (q.findtext("{jabber:iq:version}version") or "").strip()
        await a.stop()

    run(scenario())


def test_entity_time_XEP_0202(presenced, make_user):
    make_user("s11time", PW)

    async def scenario():
        a = await login(presenced, "s11time", PW, "c2s-b", "r")
        before = time.time()
        r = await iq(a, "get", D, "<time xmlns='urn:xmpp:time'/>")
        after = time.time()
        assert str(r["from"]) == D
        t = r.xml.find("{urn:xmpp:time}time")
        assert t is not None
        assert re.fullmatch(r"[+-]\d\d:\d\d",
                            t.findtext("{urn:xmpp:time}tzo") or "")
        utc = t.findtext("{urn:xmpp:time}utc") or ""
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", utc)
        assert m, utc
        stamp = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) \
            - time.timezone
        assert before - 5 <= stamp <= after + 5, (utc, before)
        await a.stop()

    run(scenario())


def test_vcard_set_get_XEP_0054(presenced, make_user):
    make_user("s11vca", PW)
    make_user("s11vcb", PW)
    card = ("<vCard xmlns='vcard-temp'><FN>Sam Eleven</FN>"
            "<NICKNAME>s11</NICKNAME><EMAIL><USERID>s11@example.org</USERID>"
            "</EMAIL></vCard>")

    async def scenario():
        a = await login(presenced, "s11vca", PW, "c2s-a", "r")
        b = await login(presenced, "s11vcb", PW, "c2s-b", "r")
        # no vCard yet: an empty one
        r = await iq(b, "get", "s11vca@" + D, "<vCard xmlns='vcard-temp'/>")
        v = r.xml.find("{vcard-temp}vCard")
        assert v is not None and len(v) == 0
        await iq(a, "set", None, card)
        # own vCard: get without 'to'
        r = await iq(a, "get", None, "<vCard xmlns='vcard-temp'/>")
        v = r.xml.find("{vcard-temp}vCard")
        assert v is not None
        assert v.findtext("{vcard-temp}FN") == "Sam Eleven"
        assert v.findtext("{vcard-temp}NICKNAME") == "s11"
        assert v.findtext("{vcard-temp}EMAIL/{vcard-temp}USERID") \
            == "s11@example.org"
        # a contact on the other node, via the user's bare JID
        r = await iq(b, "get", "s11vca@" + D, "<vCard xmlns='vcard-temp'/>")
        assert str(r["from"]) == "s11vca@" + D
        v = r.xml.find("{vcard-temp}vCard")
        assert v is not None and v.findtext("{vcard-temp}FN") == "Sam Eleven"
        # nobody else may set it
        assert await iq_error(b, "set", "s11vca@" + D, card) == "forbidden"
        # a second set replaces it
        await iq(a, "set", None,
                 "<vCard xmlns='vcard-temp'><FN>Renamed</FN></vCard>")
        r = await iq(b, "get", "s11vca@" + D, "<vCard xmlns='vcard-temp'/>")
        v = r.xml.find("{vcard-temp}vCard")
        assert v.findtext("{vcard-temp}FN") == "Renamed"
        assert v.find("{vcard-temp}NICKNAME") is None
        await a.stop()
        await b.stop()

    run(scenario())


def watch_block_pushes(c):
    q = asyncio.Queue()
    for op in ("block", "unblock"):
        c.register_handler(Callback(
            "s11 %s push" % op,
            MatchXPath("{jabber:client}iq/{%s}%s" % (NS_BLOCK, op)),
            lambda st, op=op: q.put_nowait((op, st))))
    return q


async def blocklist(c):
    r = await iq(c, "get", None, "<blocklist xmlns='urn:xmpp:blocking'/>")
    bl = r.xml.find("{%s}blocklist" % NS_BLOCK)
    assert bl is not None
    return sorted(i.get("jid") for i in bl.findall("{%s}item" % NS_BLOCK))


def from_bare(ps, bare):
    return [p for p in ps if str(p["from"]).split("/")[0] == bare]


def test_blocking_XEP_0191(presenced, make_user):
    make_user("s11blk", PW)
    make_user("s11blkc", PW)
    roster_row("s11blk", "s11blkc", "both")
    roster_row("s11blkc", "s11blk", "both")
    me, contact = "s11blk@" + D, "s11blkc@" + D

    async def scenario():
        c = await login(presenced, "s11blkc", PW, "c2s-b", "c")
        a1 = await login(presenced, "s11blk", PW, "c2s-a", "one")
        a2 = await login(presenced, "s11blk", PW, "c2s-b", "two")
        pushes = watch_block_pushes(a2)
        await asyncio.sleep(0.5)
        for x in (c, a1, a2):
            await presences(x, 0.3)
        assert await blocklist(a1) == []
        # before: presence flows both ways
        a1.send_presence(pstatus="before")
        assert from_bare(await presences(c, 1.5), me)
        c.send_presence(pstatus="c before")
        assert from_bare(await presences(a1, 1.5), contact)

        await iq(a1, "set", None,
                 "<block xmlns='urn:xmpp:blocking'><item jid='%s'/></block>"
                 % contact)
        op, push = await asyncio.wait_for(pushes.get(), 5)
        assert op == "block"
        items = push.xml.findall("{%s}block/{%s}item" % (NS_BLOCK, NS_BLOCK))
        assert [i.get("jid") for i in items] == [contact]
        assert await blocklist(a2) == [contact]
        await presences(c, 0.5)
        await presences(a1, 0.3)
        # blocked: no presence from the user to the contact, nor back
        a1.send_presence(pstatus="while blocked")
        assert not from_bare(await presences(c, 1.5), me)
        c.send_presence(pstatus="c while blocked")
        assert not from_bare(await presences(a1, 1.5), contact)
        # a new session of the blocked contact gets none of the user's
        # presence at login either
        c2 = await login(presenced, "s11blkc", PW, "c2s-a", "c2")
        assert not from_bare(await presences(c2, 1.5), me)
        await c2.stop()
        await presences(a1, 0.5)

        await iq(a2, "set", None,
                 "<unblock xmlns='urn:xmpp:blocking'><item jid='%s'/>"
                 "</unblock>" % contact)
        assert await blocklist(a1) == []
        await presences(c, 0.3)
        await presences(a1, 0.3)
        a1.send_presence(pstatus="after")
        got = from_bare(await presences(c, 1.5), me)
        assert got and got[-1]["status"] == "after"
        c.send_presence(pstatus="c after")
        got = from_bare(await presences(a1, 1.5), contact)
        assert got and got[-1]["status"] == "c after"
        for x in (a1, a2, c):
            await x.stop()

    run(scenario())
    assert sql("select count(*) from blocklist where username = 's11blk'") \
        == "0"


# ---- XEP-0191 enforcement ------------------------------------------------

BLOCK = "<block xmlns='urn:xmpp:blocking'>%s</block>"
UNBLOCK = "<unblock xmlns='urn:xmpp:blocking'>%s</unblock>"


def items(*jids):
    return "".join("<item jid='%s'/>" % j for j in jids)


async def block(c, *jids):
    await iq(c, "set", None, BLOCK % items(*jids))


async def unblock(c, *jids):
    await iq(c, "set", None, UNBLOCK % items(*jids))


async def error_of(c, mid, timeout=5):
    """The next message c receives must be the error for message mid."""
    m = await c.next_message(timeout)
    assert m["type"] == "error", "expected an error, got %s" % m
    assert m["id"] == mid, m
    return m


def blocked_error(m):
    """True if m carries XEP-0191's not-acceptable + <blocked/>."""
    err = m.xml.find("{jabber:client}error")
    return (err is not None and err.get("type") == "cancel" and
            err.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable")
            is not None and
            err.find("{urn:xmpp:blocking:errors}blocked") is not None)


def test_message_from_blocked_refused_across_nodes_XEP_0191(presenced,
                                                            make_user):
    make_user("s11bm", PW)
    make_user("s11bmc", PW)
    make_user("s11bmd", PW)
    me = "s11bm@" + D

    async def scenario():
        # the blocker on both nodes, equal priority: a message to the bare
        # JID reaches both resources
        u1 = await login(presenced, "s11bm", PW, "c2s-a", "one")
        u2 = await login(presenced, "s11bm", PW, "c2s-b", "two")
        c = await login(presenced, "s11bmc", PW, "c2s-b", "c")
        d = await login(presenced, "s11bmd", PW, "c2s-a", "d")
        await block(u1, "s11bmc@" + D)
        await asyncio.sleep(0.3)
        for mid, to in (("m1", me), ("m2", me + "/one"), ("m3", me + "/two")):
            msg = c.make_message(mto=to, mbody="hello " + mid, mtype="chat")
            msg["id"] = mid
            msg.send()
            m = await error_of(c, mid)
            assert m["error"]["condition"] == "service-unavailable"
            assert m["error"]["type"] == "cancel"
        # one error per message, even for the two copies of m1
        assert await c.no_message(1.0)
        assert await u1.no_message(0.3)
        assert await u2.no_message(0.3)
        # a normal message too; a headline is dropped without an error
        msg = c.make_message(mto=me, mbody="normal", mtype="normal")
        msg["id"] = "m4"
        msg.send()
        await error_of(c, "m4")
        c.send_message(mto=me, mbody="news", mtype="headline")
        assert await c.no_message(1.0)
        assert await u1.no_message(0.2)
        assert await u2.no_message(0.2)
        # someone else still gets through, to both nodes
        d.send_message(mto=me + "/two", mbody="from d", mtype="chat")
        assert await u2.next_message(5, body_only=True) == "from d"
        # the blocked contact's own resource block does not hurt others
        await unblock(u2, "s11bmc@" + D)
        await asyncio.sleep(0.3)
        c.send_message(mto=me + "/one", mbody="after", mtype="chat")
        assert await u1.next_message(5, body_only=True) == "after"
        for x in (u1, u2, c, d):
            await x.stop()

    run(scenario())


def test_message_to_offline_blocker_not_stored_XEP_0191(presenced, make_user):
    make_user("s11bo", PW)
    make_user("s11boc", PW)
    make_user("s11bod", PW)
    me = "s11bo@" + D

    async def scenario():
        u = await login(presenced, "s11bo", PW, "c2s-a", "u")
        await block(u, "s11boc@" + D)
        await u.stop()
        await asyncio.sleep(0.5)
        c = await login(presenced, "s11boc", PW, "c2s-b", "c")
        d = await login(presenced, "s11bod", PW, "c2s-a", "d")
        msg = c.make_message(mto=me, mbody="while away", mtype="chat")
        msg["id"] = "off1"
        msg.send()
        m = await error_of(c, "off1")
        assert m["error"]["condition"] == "service-unavailable"
        d.send_message(mto=me, mbody="from d", mtype="chat")
        await asyncio.sleep(1.0)
        assert sql("select count(*) from offline_messages where username ="
                   " 's11bo' and sender like 's11boc@%'") == "0"
        assert sql("select count(*) from offline_messages where username ="
                   " 's11bo' and sender like 's11bod@%'") == "1"
        u = await login(presenced, "s11bo", PW, "c2s-b", "u")
        assert await u.next_message(5, body_only=True) == "from d"
        assert await u.no_message(1.5)
        for x in (u, c, d):
            await x.stop()

    run(scenario())


def test_iq_from_blocked_service_unavailable_XEP_0191(presenced, make_user):
    make_user("s11bi", PW)
    make_user("s11bic", PW)
    make_user("s11bid", PW)
    me = "s11bi@" + D

    async def scenario():
        u = await login(presenced, "s11bi", PW, "c2s-a", "u")
        c = await login(presenced, "s11bic", PW, "c2s-b", "c")
        d = await login(presenced, "s11bid", PW, "c2s-b", "d")
        await iq(u, "set", None, "<vCard xmlns='vcard-temp'><FN>Bi</FN>"
                                  "</vCard>")
        await block(u, "s11bic@" + D)
        await asyncio.sleep(0.3)
        # to the full JID (router -> c2s): the client would answer a ping
        assert await iq_error(c, "get", me + "/u",
                              "<ping xmlns='urn:xmpp:ping'/>") \
            == "service-unavailable"
        assert await iq_error(c, "set", me + "/u",
                              "<query xmlns='s11:private-proto'/>") \
            == "service-unavailable"
        # to the account (answered by presenced): vCard and last activity
        assert await iq_error(c, "get", me,
                              "<vCard xmlns='vcard-temp'/>") \
            == "service-unavailable"
        assert await iq_error(c, "get", me,
                              "<query xmlns='jabber:iq:last'/>") \
            == "service-unavailable"
        # others are answered
        await iq(d, "get", me + "/u", "<ping xmlns='urn:xmpp:ping'/>")
        r = await iq(d, "get", me, "<vCard xmlns='vcard-temp'/>")
        assert r.xml.find("{vcard-temp}vCard/{vcard-temp}FN").text == "Bi"
        for x in (u, c, d):
            await x.stop()

    run(scenario())


def test_blocker_sends_to_blocked_not_acceptable_XEP_0191(presenced,
                                                          make_user):
    make_user("s11bs", PW)
    make_user("s11bsc", PW)
    contact = "s11bsc@" + D

    async def scenario():
        u = await login(presenced, "s11bs", PW, "c2s-a", "u")
        c = await login(presenced, "s11bsc", PW, "c2s-b", "c")
        await block(u, contact)
        for mid, to in (("o1", contact), ("o2", contact + "/c")):
            msg = u.make_message(mto=to, mbody="can you hear me", mtype="chat")
            msg["id"] = mid
            msg.send()
            m = await error_of(u, mid)
            assert blocked_error(m), m
            assert m["error"]["condition"] == "not-acceptable"
            assert str(m["from"]) == to
        # an IQ too
        q = u.make_iq_get(ito=contact + "/c")
        q.xml.append(ET.fromstring("<ping xmlns='urn:xmpp:ping'/>"))
        try:
            await q.send(timeout=5)
            raise AssertionError("iq to a blocked JID was answered")
        except IqError as e:
            assert e.iq["error"]["condition"] == "not-acceptable"
            assert e.iq.xml.find("{jabber:client}error/"
                                 "{urn:xmpp:blocking:errors}blocked") \
                is not None
        # directed presence
        u.send_presence(pto=contact + "/c", pstatus="directed")
        assert await c.no_message(1.0)
        got = [p for p in await presences(c, 1.0)
               if str(p["from"]).startswith("s11bs@")]
        assert not got, got
        for x in (u, c):
            await x.stop()

    run(scenario())


def test_domain_and_resource_blocks_XEP_0191(presenced, make_user):
    make_user("s11bd", PW)
    make_user("s11bdc", PW)
    me = "s11bd@" + D

    async def scenario():
        u1 = await login(presenced, "s11bd", PW, "c2s-a", "one")
        u2 = await login(presenced, "s11bd", PW, "c2s-b", "two")
        evil = await login(presenced, "s11bdc", PW, "c2s-b", "evilbot")
        good = await login(presenced, "s11bdc", PW, "c2s-a", "laptop")
        # domain/resource: only that resource, whoever the user
        await block(u1, D + "/evilbot")
        await asyncio.sleep(0.3)
        msg = evil.make_message(mto=me + "/one", mbody="x", mtype="chat")
        msg["id"] = "e1"
        msg.send()
        await error_of(evil, "e1")
        good.send_message(mto=me + "/one", mbody="fine", mtype="chat")
        assert await u1.next_message(5, body_only=True) == "fine"
        # the whole domain: every user at it, never the user's own
        # resources nor the server itself
        await block(u1, D)
        await asyncio.sleep(0.3)
        msg = good.make_message(mto=me + "/one", mbody="y", mtype="chat")
        msg["id"] = "g1"
        msg.send()
        await error_of(good, "g1")
        u2.send_message(mto=me + "/one", mbody="own", mtype="chat")
        assert await u1.next_message(5, body_only=True) == "own"
        assert sorted(await blocklist(u2)) == sorted([D, D + "/evilbot"])
        r = await iq(u1, "get", D, "<query xmlns='jabber:iq:version'/>")
        assert str(r["from"]) == D
        await unblock(u2)  # everything
        await asyncio.sleep(0.3)
        good.send_message(mto=me + "/one", mbody="back", mtype="chat")
        assert await u1.next_message(5, body_only=True) == "back"
        for x in (u1, u2, evil, good):
            await x.stop()

    run(scenario())


def test_block_sends_unavailable_unblock_restores_XEP_0191(presenced,
                                                          make_user):
    make_user("s11bp", PW)
    make_user("s11bpc", PW)
    roster_row("s11bp", "s11bpc", "both")
    roster_row("s11bpc", "s11bp", "both")
    me, contact = "s11bp@" + D, "s11bpc@" + D

    async def scenario():
        c = await login(presenced, "s11bpc", PW, "c2s-b", "c")
        u1 = await login(presenced, "s11bp", PW, "c2s-a", "one")
        u2 = await login(presenced, "s11bp", PW, "c2s-b", "two")
        u1.send_presence(pstatus="one here")
        u2.send_presence(pstatus="two here")
        c.send_presence(pstatus="c here")
        await asyncio.sleep(1.0)
        for x in (c, u1, u2):
            await presences(x, 0.3)

        await block(u1, contact)
        # the contact sees every resource of the user go offline
        got = from_bare(await presences(c, 1.5), me)
        gone = {str(p["from"]) for p in got if p["type"] == "unavailable"}
        assert gone == {me + "/one", me + "/two"}, got
        # and the user's resources see the contact go offline
        for x in (u1, u2):
            got = from_bare(await presences(x, 0.5), contact)
            assert [p["type"] for p in got] == ["unavailable"], got

        await unblock(u2, contact)
        # current presence again, both ways
        got = from_bare(await presences(c, 1.5), me)
        back = {str(p["from"]): p["status"] for p in got
                if p["type"] == "available"}
        assert back == {me + "/one": "one here", me + "/two": "two here"}, got
        for x in (u1, u2):
            got = from_bare(await presences(x, 0.5), contact)
            assert [(p["type"], p["status"]) for p in got] == \
                [("available", "c here")], got
        for x in (u1, u2, c):
            await x.stop()

    run(scenario())


def test_block_list_enforced_from_first_moment_of_login_XEP_0191(presenced,
                                                                 make_user):
    """The list outlives the sessions: messages sent to a new session (on
    the other node) while it logs in are each refused exactly once
    (offline storage while the resource is not there or not available,
    its c2s once it is) and none reaches the client. The window between
    bind and the list's arrival is pinned down by the next test."""
    make_user("s11bl", PW)
    make_user("s11blc", PW)
    me = "s11bl@" + D

    async def scenario():
        u = await login(presenced, "s11bl", PW, "c2s-a", "first")
        await block(u, "s11blc@" + D)
        await u.stop()
        c = await login(presenced, "s11blc", PW, "c2s-a", "c")
        await asyncio.sleep(0.3)
        sent = []

        async def spam():
            for i in range(40):
                mid = "l%d" % i
                msg = c.make_message(mto=me + "/again", mbody=mid,
                                     mtype="chat")
                msg["id"] = mid
                msg.send()
                sent.append(mid)
                await asyncio.sleep(0.02)

        task = asyncio.ensure_future(spam())
        u = await login(presenced, "s11bl", PW, "c2s-b", "again")
        await task
        msg = c.make_message(mto=me + "/again", mbody="late", mtype="chat")
        msg["id"] = "late"
        msg.send()
        sent.append("late")
        errors = []
        for _ in sent:
            m = await c.next_message(5)
            assert m["type"] == "error", m
            assert m["error"]["condition"] == "service-unavailable", m
            errors.append(m["id"])
        assert sorted(errors) == sorted(sent)
        assert await c.no_message(1.0)
        assert await u.no_message(0.5)
        assert sql("select count(*) from offline_messages where"
                   " username = 's11bl'") == "0"
        for x in (u, c):
            await x.stop()

    run(scenario())


def test_new_session_holds_until_list_presenced_down_XEP_0191(presenced,
                                                              make_user):
    """c2s holds a new session's deliveries until it knows the block list;
    with presenced down, after c2s.blocklist_wait_ms (3 s) it reads the
    list from PostgreSQL itself: the blocked sender's message is refused,
    the other one delivered, nothing leaked meanwhile."""
    make_user("s11bh", PW)
    make_user("s11bhc", PW)
    make_user("s11bhd", PW)
    me = "s11bh@" + D

    async def setup():
        u = await login(presenced, "s11bh", PW, "c2s-a", "u")
        await block(u, "s11bhc@" + D)
        await u.stop()

    run(setup())
    mark = presenced.log_mark("c2s-b")
    presenced.stop("presenced")
    try:
        async def scenario():
            # c and d on the held session's node: their messages reach the
            # router over the same link as its SESSION_UP, so after it (from
            # another node they could come first, find no such resource and
            # be refused by the router: service-unavailable too, for d as
            # well, and "from d" never came)
            c = await login(presenced, "s11bhc", PW, "c2s-b", "c")
            d = await login(presenced, "s11bhd", PW, "c2s-b", "d")
            u = await login(presenced, "s11bh", PW, "c2s-b", "held")
            msg = c.make_message(mto=me + "/held", mbody="blocked one",
                                 mtype="chat")
            msg["id"] = "h1"
            msg.send()
            d.send_message(mto=me + "/held", mbody="from d", mtype="chat")
            # held: neither delivered nor refused yet
            assert await u.no_message(1.0)
            assert await c.no_message(0.1)
            m = await error_of(c, "h1", timeout=8)
            assert m["error"]["condition"] == "service-unavailable"
            assert await u.next_message(5, body_only=True) == "from d"
            assert await u.no_message(0.5)
            for x in (u, c, d):
                await x.stop()

        run(scenario())
        presenced.wait_log("c2s-b", "no block list from presenced",
                           timeout=1, since=mark)
    finally:
        presenced.start("presenced")
