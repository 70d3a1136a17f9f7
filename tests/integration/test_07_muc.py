"""07 MUC: rooms (XEP-0045) and persistent groups on kiln-mucd.

Requirement IDs: R-PERF-7 (history on join), R-GRP-1 (group profile,
survives a mucd restart), R-GRP-2 (membership via muc#admin and kilnctl
visible at once), R-GRP-3 (non-members and outcasts refused, nothing
delivered), R-GRP-4 (absent member gets every message once, with
stanza-id), R-GRP-5 (MAM paging with no gaps), R-GRP-6 (bookmarks),
R-GRP-7 (kick/ban, kilnctl admin), R-GRP-10 (two devices, one nick, no
duplicates across c2s nodes), R-DROP-2/6 for occupants (a killed c2s
node's occupants leave their rooms).

Occupants are spread over c2s-a and c2s-b. Until conftest starts
kiln-mucd itself (mucd/NEEDS.md), the `mucd` fixture below does.
"""

import asyncio
import os
import subprocess
import time

import pytest

from conftest import BIN, CONF

from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from xmpp_client import (codes, drain, iq, join, joined,  # noqa: E402
                         next_message, next_presence, run, say)
from xmpp_client import login as client_login  # noqa: E402

PW = "secret-pw"
SVC = "conference.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = "http://jabber.org/protocol/muc#user"
NS_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_OWNER = "http://jabber.org/protocol/muc#owner"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_SID = "urn:xmpp:sid:0"


@pytest.fixture
def mucd(live):
    """kiln-mucd as started by the shared cluster fixture."""
    return live.procs["mucd"]


@pytest.fixture
def muc(live):
    return live


def kilnctl(*args):
    r = subprocess.run([os.path.join(BIN, "kilnctl"), "-c", CONF, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---- helpers ---------------------------------------------------------------

async def login(*args, **kw):
    """xmpp_client.login, plus the body-less messages a MUC client needs.

    slixmpp raises its "message" event (which fills c.messages) only for
    messages with a <body/>. The room subject sent after a join (XEP-0045
    7.2.15: <subject/> and no <body/>) and MAM results (XEP-0313: the
    archived message is inside <result/>) have none, so they are queued
    here too. Nothing else body-less is (PEP notifications stay out)."""
    c = await client_login(*args, **kw)

    def bodiless(m):
        x = m.xml
        if x.find("{jabber:client}body") is not None:
            return  # already queued by the "message" event
        if (x.find("{jabber:client}subject") is not None or
                x.find("{%s}result" % NS_MAM) is not None):
            c.messages.put_nowait(m)

    c.register_handler(Callback("kiln-test bodiless",
                                MatchXPath("{jabber:client}message"),
                                bodiless))
    return c


def sid(m):
    e = m.xml.find("{%s}stanza-id" % NS_SID)
    return None if e is None else e.get("id")


# ---- XEP-0045 core -----------------------------------------------------------

def test_join_talk_leave_across_nodes_R_GRP_10(muc, make_user):
    """Rooms across c2s nodes: create (201), join (110), groupchat
    reflected once to each occupant, leave; no duplicates (R-GRP-10)."""
    make_user("m7alice", PW)
    make_user("m7bob", PW)
    room = "lobby1@" + SVC

    async def scenario():
        a = await login(muc, "m7alice", PW, "c2s-a", "pc")
        b = await login(muc, "m7bob", PW, "c2s-b", "pc")
        p = await joined(a, room, "alice")
        assert {"110", "201"} <= codes(p)
        p = await joined(b, room, "bob")
        assert "201" not in codes(p)
        await next_presence(a, lambda p: str(p["from"]) == room + "/bob")
        drain(a.messages)
        drain(b.messages)
        say(b, room, "hi from node b")
        for c in (a, b):
            m = await next_message(c, lambda m: m["type"] == "groupchat" and
                                   m["body"] == "hi from node b")
            assert str(m["from"]) == room + "/bob"
        await a.no_message(1.0)
        await b.no_message(0.2)
        b.send_presence(pto=room + "/bob", ptype="unavailable")
        p = await next_presence(a, lambda p: str(p["from"]) == room + "/bob")
        assert p["type"] == "unavailable"
        await a.stop()
        await b.stop()

    run(scenario())


def test_nick_conflict_and_change(muc, make_user):
    make_user("m7carl", PW)
    make_user("m7dora", PW)
    room = "lobby2@" + SVC

    async def scenario():
        a = await login(muc, "m7carl", PW, "c2s-a")
        b = await login(muc, "m7dora", PW, "c2s-b")
        await joined(a, room, "carl")
        join(b, room, "carl")
        p = await next_presence(b, lambda p: p["type"] == "error")
        assert p["error"]["condition"] == "conflict"
        await joined(b, room, "dora")
        join(b, room, "dorothy")
        p = await next_presence(a, lambda p: "303" in codes(p))
        assert p.xml.find("{%s}x/{%s}item" % (NS_USER, NS_USER)).get(
            "nick") == "dorothy"
        p = await next_presence(a, lambda p: str(p["from"]) ==
                                room + "/dorothy")
        assert p["type"] != "unavailable"
        await a.stop()
        await b.stop()

    run(scenario())


def test_history_on_join_R_PERF_7(muc, make_user):
    make_user("m7hist", PW)
    make_user("m7late", PW)
    room = "history1@" + SVC

    async def scenario():
        a = await login(muc, "m7hist", PW, "c2s-a")
        await joined(a, room, "h")
        for i in range(30):
            say(a, room, "old %d" % i)
        for i in range(30):
            await next_message(a, lambda m: m["body"] == "old %d" % i)
        b = await login(muc, "m7late", PW, "c2s-b")
        await joined(b, room, "late", history=5)
        got = []
        while True:
            m = await next_message(b, lambda m: True)
            if m.xml.find("{%s}subject" % "jabber:client") is not None:
                break
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            got.append(m["body"])
        assert got == ["old %d" % i for i in range(25, 30)]
        await b.stop()
        c = await login(muc, "m7late", PW, "c2s-b", "r2")
        await joined(c, room, "late2")  # no <history/>: the room's 25
        n = 0
        while True:
            m = await next_message(c, lambda m: True)
            if m["subject"] or m.xml.find(
                    "{jabber:client}subject") is not None:
                break
            n += 1
        assert n == 25
        await c.stop()
        await a.stop()

    run(scenario())


# ---- groups ------------------------------------------------------------------

def test_non_member_refused_R_GRP_3(muc, make_user):
    make_user("m7own", PW)
    make_user("m7out", PW)
    make_user("m7stranger", PW)
    kilnctl("group-room", "create", "g3", "--owner", "m7own")
    room = "g3@" + SVC

    async def scenario():
        o = await login(muc, "m7own", PW, "c2s-a")
        s = await login(muc, "m7stranger", PW, "c2s-b")
        x = await login(muc, "m7out", PW, "c2s-b")
        await joined(o, room, "owner")
        await iq(o, "set", room,
                 "<query xmlns='%s'><item affiliation='outcast' "
                 "jid='m7out@localhost'/></query>" % NS_ADMIN)
        p = await joined(s, room, "stranger")
        assert p["type"] == "error"
        assert p["error"]["condition"] == "registration-required"
        p = await joined(x, room, "outcast")
        assert p["error"]["condition"] == "forbidden"
        drain(o.messages)
        say(s, room, "let me in")
        m = await next_message(s, lambda m: m["type"] == "error")
        assert m["error"]["condition"] in ("not-acceptable", "forbidden")
        await o.no_message(1.0)
        for c in (o, s, x):
            await c.stop()

    run(scenario())


def test_member_grant_visible_at_once_R_GRP_2(muc, make_user):
    make_user("m7gown", PW)
    make_user("m7gnew", PW)
    kilnctl("group-room", "create", "g2", "--owner", "m7gown")
    room = "g2@" + SVC

    async def scenario():
        o = await login(muc, "m7gown", PW, "c2s-a")
        for _ in range(2):  # idempotent
            await iq(o, "set", room,
                     "<query xmlns='%s'><item affiliation='member' "
                     "jid='m7gnew@localhost'/></query>" % NS_ADMIN)
        r = await iq(o, "get", room, "<query xmlns='%s'><item "
                     "affiliation='member'/></query>" % NS_ADMIN)
        jids = [i.get("jid") for i in r.xml.iter("{%s}item" % NS_ADMIN)]
        assert jids.count("m7gnew@localhost") == 1
        n = await login(muc, "m7gnew", PW, "c2s-b")
        p = await joined(n, room, "newbie")
        assert p["type"] != "error"
        await n.stop()
        await o.stop()

    run(scenario())
    # ... and in the database, for every other node and kilnctl.
    assert "m7gnew@localhost\tmember" in kilnctl("group-room", "list", "g2")


def test_kilnctl_membership_is_seen_by_mucd_R_GRP_2(muc, make_user):
    make_user("m7ctl", PW)
    kilnctl("group-room", "create", "gctl")
    room = "gctl@" + SVC

    async def scenario():
        c = await login(muc, "m7ctl", PW, "c2s-a")
        p = await joined(c, room, "ctl")
        assert p["error"]["condition"] == "registration-required"
        kilnctl("group-room", "add-member", "gctl", "m7ctl")
        deadline = time.monotonic() + 2
        while True:
            p = await joined(c, room, "ctl")
            if p["type"] != "error" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert p["type"] != "error"
        await c.stop()

    run(scenario())


def test_group_survives_mucd_restart_R_GRP_1(muc, mucd, make_user):
    make_user("m7per", PW)
    make_user("m7mem", PW)
    kilnctl("group-room", "create", "g1", "--name", "Team One", "--owner",
            "m7per")
    kilnctl("group-room", "add-member", "g1", "m7mem")
    room = "g1@" + SVC

    async def before():
        o = await login(muc, "m7per", PW, "c2s-a")
        await joined(o, room, "per")
        say(o, room, "remember me")
        m = await next_message(o, lambda m: m["body"] == "remember me")
        assert sid(m) is not None
        o.send_presence(pto=room + "/per", ptype="unavailable")
        await o.stop()
        return sid(m)

    first_id = run(before())
    mucd.stop()
    mucd.start()

    async def after():
        o = await login(muc, "m7per", PW, "c2s-b")
        info = await iq(o, "get", room,
                        "<query xmlns='http://jabber.org/protocol/"
                        "disco#info'/>")
        feats = {f.get("var") for f in info.xml.iter(
            "{http://jabber.org/protocol/disco#info}feature")}
        assert {"muc_persistent", "muc_membersonly", "muc_nonanonymous",
                "muc_hidden"} <= feats
        r = await iq(o, "get", room, "<query xmlns='%s'><item "
                     "affiliation='member'/></query>" % NS_ADMIN)
        assert "m7mem@localhost" in [
            i.get("jid") for i in r.xml.iter("{%s}item" % NS_ADMIN)]
        drain(o.messages)
        await iq(o, "set", room, "<query xmlns='%s' queryid='q'/>" % NS_MAM)
        m = await next_message(o, lambda m: m.xml.find(
            "{%s}result" % NS_MAM) is not None)
        assert m.xml.find("{%s}result" % NS_MAM).get("id") == first_id
        await o.stop()

    run(after())


def test_offline_member_gets_messages_once_R_GRP_4(muc, make_user):
    make_user("m7poster", PW)
    make_user("m7away", PW)
    kilnctl("group-room", "create", "g4", "--owner", "m7poster")
    kilnctl("group-room", "add-member", "g4", "m7away")
    room = "g4@" + SVC

    async def post():
        a = await login(muc, "m7poster", PW, "c2s-a")
        await joined(a, room, "poster")
        for i in range(50):
            say(a, room, "missed %d" % i)
        for i in range(50):
            await next_message(a, lambda m: m["body"] == "missed %d" % i)
        await a.stop()

    run(post())

    async def later():
        c = await login(muc, "m7away", PW, "c2s-b")
        got = []
        while len(got) < 50:
            m = await next_message(c, lambda m: m["body"].startswith(
                "missed"), timeout=10)
            assert sid(m) is not None
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            got.append(m["body"])
        assert got == ["missed %d" % i for i in range(50)]
        await c.no_message(1.0)
        await c.stop()

    run(later())


def test_mam_paging_no_gaps_R_GRP_5(muc, make_user):
    make_user("m7arch", PW)
    kilnctl("group-room", "create", "g5", "--owner", "m7arch")
    room = "g5@" + SVC

    async def scenario():
        a = await login(muc, "m7arch", PW, "c2s-a")
        await joined(a, room, "arch")
        for i in range(500):
            say(a, room, "n%d" % i)
        for i in range(500):
            await next_message(a, lambda m: m["body"] == "n%d" % i)
        drain(a.messages)
        seen, after = [], None
        while True:
            rsm = "<max>100</max>" + ("<after>%s</after>" % after
                                      if after else "")
            r = await iq(a, "set", room, "<query xmlns='%s'><set xmlns='%s'>"
                         "%s</set></query>" % (NS_MAM, NS_RSM, rsm))
            page = []
            while not a.messages.empty():
                m = a.messages.get_nowait()
                res = m.xml.find("{%s}result" % NS_MAM)
                if res is not None:
                    body = res.find(".//{jabber:client}body")
                    page.append(body.text)
            fin = r.xml.find("{%s}fin" % NS_MAM)
            seen += page
            if fin.get("complete") == "true":
                break
            after = fin.find("{%s}set/{%s}last" % (NS_RSM, NS_RSM)).text
            assert len(page) == 100
        assert seen == ["n%d" % i for i in range(500)]
        await a.stop()

    run(scenario())


def test_two_devices_one_nick_R_GRP_10(muc, make_user):
    make_user("m7multi", PW)
    make_user("m7other", PW)
    room = "lobby10@" + SVC

    async def scenario():
        d1 = await login(muc, "m7multi", PW, "c2s-a", "d1")
        d2 = await login(muc, "m7multi", PW, "c2s-b", "d2")
        o = await login(muc, "m7other", PW, "c2s-b")
        await joined(d1, room, "multi")
        await joined(o, room, "other")
        p = await joined(d2, room, "multi")
        assert p["type"] != "error"
        drain(d1.messages)
        drain(d2.messages)
        say(o, room, "to both")
        for d in (d1, d2):
            await next_message(d, lambda m: m["body"] == "to both")
            await d.no_message(0.5)
        for c in (d1, d2, o):
            await c.stop()

    run(scenario())


def test_kick_and_ban_R_GRP_7(muc, make_user):
    make_user("m7mod", PW)
    make_user("m7bad", PW)
    room = "lobby7@" + SVC

    async def scenario():
        m = await login(muc, "m7mod", PW, "c2s-a")
        b = await login(muc, "m7bad", PW, "c2s-b")
        await joined(m, room, "mod")
        await joined(b, room, "bad")
        await iq(m, "set", room, "<query xmlns='%s'><item nick='bad' "
                 "role='none'/></query>" % NS_ADMIN)
        p = await next_presence(b, lambda p: "307" in codes(p))
        assert "110" in codes(p)
        await joined(b, room, "bad")
        await iq(m, "set", room, "<query xmlns='%s'><item "
                 "affiliation='outcast' jid='m7bad@localhost'/></query>"
                 % NS_ADMIN)
        p = await next_presence(b, lambda p: "301" in codes(p))
        p = await joined(b, room, "bad")
        assert p["error"]["condition"] == "forbidden"
        await m.stop()
        await b.stop()

    run(scenario())


def test_killed_node_removes_its_occupants_R_DROP_6(muc, make_user):
    make_user("m7stay", PW)
    make_user("m7gone", PW)
    room = "lobby6@" + SVC

    async def before():
        s = await login(muc, "m7stay", PW, "c2s-a")
        g = await login(muc, "m7gone", PW, "c2s-b")
        await joined(s, room, "stay")
        await joined(g, room, "gone")
        # Take g's join presence off s's queue, so that the next presence
        # from room/gone below is the one caused by the node loss.
        p = await next_presence(s, lambda p: str(p["from"]) == room + "/gone")
        assert p["type"] != "unavailable"
        return s

    s = run(before())
    muc.kill9("c2s-b")

    async def after():
        p = await next_presence(s, lambda p: str(p["from"]) == room + "/gone",
                                timeout=15)
        assert p["type"] == "unavailable"
        await s.stop()

    run(after())
