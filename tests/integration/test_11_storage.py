"""11 storage and small server IQs answered by kiln-presenced: private XML
storage (XEP-0049), software version (XEP-0092), entity time (XEP-0202),
vCards (XEP-0054) and blocking (XEP-0191, presence side).

Refusing messages from blocked senders belongs to c2s's delivery path,
which lacks it (docs/ARCHITECTURE.md, known gaps), so no test claims it.
"""

import asyncio
import re
import time
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import D, presenced, presences, roster_row, sql  # noqa: F401
from xmpp_client import login, run

PW = "secret-pw"
NS_PRIV = "jabber:iq:private"
NS_BLOCK = "urn:xmpp:blocking"


async def iq(c, itype, to, payload):
    q = c.make_iq(ito=to, itype=itype)
    q.xml.append(ET.fromstring(payload))
    return await q.send(timeout=10)


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


def test_blocking_XEP_0191(presenced, make_user, redis):
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
        assert contact in redis("SMEMBERS", "blocklist:" + me)
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
        assert contact not in redis("SMEMBERS", "blocklist:" + me)
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
