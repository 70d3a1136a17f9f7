"""13 MUC, continued: voice requests, registration, tombstones, the group
list IQ, joins racing kilnctl, removed members and offline delivery.

Requirement IDs: XEP-0045 7.13/8.6 (voice requests and their approval),
XEP-0045 7.10/9.9 and R-GRP-7 (registration with a room and approval by
owners and admins; invitations that add members; removed or banned
members get no more offline deliveries; a destroyed room's name is
retired), R-GRP-6 (the legacy group-list IQ, urn:kiln:groups:0), R-GRP-2
(a member's join right after `kilnctl group-room create` finds the group
even before mucd has seen the invalidation), R-GRP-9 (the occupant list
a joiner gets is bounded and can be switched off; no history in groups).

Users are spread over c2s-a and c2s-b.
"""

import asyncio
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import BIN, CONF

from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from xmpp_client import (codes, drain, iq, iq_error, join,  # noqa: E402
                         joined, next_message, next_presence, run, say)
from xmpp_client import login as client_login  # noqa: E402

PW = "secret-pw"
SVC = "conference.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = "http://jabber.org/protocol/muc#user"
NS_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_OWNER = "http://jabber.org/protocol/muc#owner"
NS_DATA = "jabber:x:data"
NS_REQUEST = "http://jabber.org/protocol/muc#request"
NS_REGFORM = "http://jabber.org/protocol/muc#register"
NS_REGISTER = "jabber:iq:register"
NS_GROUPS = "urn:kiln:groups:0"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_MAM = "urn:xmpp:mam:2"
PG = os.environ["KILN_PG"]


@pytest.fixture
def muc(live):
    return live


def kilnctl(*args, ok=True):
    r = subprocess.run([os.path.join(BIN, "kilnctl"), "-c", CONF, *args],
                       capture_output=True, text=True, timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def psql(sql):
    r = subprocess.run(["psql", PG, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c",
                        sql], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# ---- helpers ---------------------------------------------------------------

async def login(*args, **kw):
    """xmpp_client.login, plus the body-less messages these tests wait for:
    slixmpp queues only messages with a <body/>, and forwarded forms,
    invitations, errors to form messages and MAM results have none."""
    c = await client_login(*args, **kw)

    def bodiless(m):
        x = m.xml
        if x.find("{jabber:client}body") is not None:
            return
        if (x.find("{%s}x" % NS_DATA) is not None or
                x.find("{%s}x" % NS_USER) is not None or
                x.get("type") == "error" or
                x.find("{jabber:client}subject") is not None or
                x.find("{%s}result" % NS_MAM) is not None):
            c.messages.put_nowait(m)

    c.register_handler(Callback("kiln-test bodiless",
                                MatchXPath("{jabber:client}message"),
                                bodiless))
    return c


async def no_matching_message(c, pred, wait=1.0):
    try:
        m = await next_message(c, pred, wait)
    except (AssertionError, asyncio.TimeoutError):
        return
    raise AssertionError("unexpected message: %s" % m)


def item(p):
    return p.xml.find("{%s}x/{%s}item" % (NS_USER, NS_USER))


def form(form_type, fields, ftype="submit"):
    """<x xmlns='jabber:x:data'> with FORM_TYPE and fields (var, value)."""
    x = ET.Element("{%s}x" % NS_DATA, type=ftype)
    f = ET.SubElement(x, "{%s}field" % NS_DATA, var="FORM_TYPE")
    ET.SubElement(f, "{%s}value" % NS_DATA).text = form_type
    for var, value in fields:
        f = ET.SubElement(x, "{%s}field" % NS_DATA, var=var)
        if value is not None:
            ET.SubElement(f, "{%s}value" % NS_DATA).text = value
    return x


def send_form(c, to, x):
    m = c.make_message(mto=to)
    m.append(x)
    m.send()


def form_of(m, form_type):
    for x in m.xml.iter("{%s}x" % NS_DATA):
        for f in x.findall("{%s}field" % NS_DATA):
            if f.get("var") == "FORM_TYPE" and \
                    f.findtext("{%s}value" % NS_DATA) == form_type:
                return x
    return None


def fields(x):
    return {f.get("var"): f.findtext("{%s}value" % NS_DATA)
            for f in x.findall("{%s}field" % NS_DATA)}


def has_form(form_type):
    return lambda m: m["type"] != "error" and form_of(m, form_type) \
        is not None


def is_error(cond):
    return lambda m: m["type"] == "error" and \
        m["error"]["condition"] == cond


async def configure(c, room, values):
    x = form("http://jabber.org/protocol/muc#roomconfig", values)
    q = ET.Element("{%s}query" % NS_OWNER)
    q.append(x)
    await iq(c, "set", room, ET.tostring(q).decode())


def answer(x, changes):
    """The submitted copy of form x (type submit), values changed."""
    out = ET.Element("{%s}x" % NS_DATA, type="submit")
    for f in x.findall("{%s}field" % NS_DATA):
        var = f.get("var")
        if var is None:
            continue
        g = ET.SubElement(out, "{%s}field" % NS_DATA, var=var)
        value = changes.get(var, f.findtext("{%s}value" % NS_DATA))
        if value is not None:
            ET.SubElement(g, "{%s}value" % NS_DATA).text = value
    return out


async def members(c, room):
    r = await iq(c, "get", room, "<query xmlns='%s'><item "
                 "affiliation='member'/></query>" % NS_ADMIN)
    return {i.get("jid"): i.get("nick")
            for i in r.xml.iter("{%s}item" % NS_ADMIN)}


# ---- voice requests (XEP-0045 7.13, 8.6) -----------------------------------

def test_voice_request_XEP_0045(muc, make_user):
    """A visitor of a moderated room asks for voice with the muc#request
    form; the moderator gets the approval form, submits it with
    muc#request_allow true, and the visitor becomes a participant
    (presence with the new role to everyone); refusals for bad forms,
    non-visitors, repeats, non-moderators and non-occupants."""
    for u in ("m13vmod", "m13vis", "m13vout"):
        make_user(u, PW)
    room = "voice1@" + SVC

    async def scenario():
        mod = await login(muc, "m13vmod", PW, "c2s-a")
        vis = await login(muc, "m13vis", PW, "c2s-b")
        out = await login(muc, "m13vout", PW, "c2s-b")
        await joined(mod, room, "mod")
        await configure(mod, room, [("muc#roomconfig_moderatedroom", "1")])
        p = await joined(vis, room, "vis")
        assert item(p).get("role") == "visitor"
        await next_presence(mod, lambda p: str(p["from"]) == room + "/vis")
        say(vis, room, "may I?")
        await next_message(vis, is_error("forbidden"))

        # Bad forms: a role other than participant, an unsubmitted form.
        send_form(vis, room, form(NS_REQUEST, [("muc#role", "moderator")]))
        await next_message(vis, is_error("bad-request"))
        send_form(vis, room, form(NS_REQUEST, [("muc#role", "participant")],
                                  ftype="form"))
        await next_message(vis, is_error("bad-request"))
        # Not an occupant; not a visitor (the moderator has voice).
        send_form(out, room, form(NS_REQUEST, [("muc#role", "participant")]))
        await next_message(out, is_error("not-acceptable"))
        send_form(mod, room, form(NS_REQUEST, [("muc#role", "participant")]))
        await next_message(mod, is_error("not-allowed"))

        drain(mod.messages)
        send_form(vis, room, form(NS_REQUEST, [("muc#role", "participant")]))
        m = await next_message(mod, has_form(NS_REQUEST))
        assert str(m["from"]) == room
        got = fields(form_of(m, NS_REQUEST))
        assert got["muc#roomnick"] == "vis"
        assert got["muc#jid"] == "m13vis@localhost/" + vis.boundjid.resource
        assert got["muc#request_allow"] in ("false", "0")
        # A second request while the first waits.
        send_form(vis, room, form(NS_REQUEST, [("muc#role", "participant")]))
        await next_message(vis, is_error("resource-constraint"))
        # Only a moderator answers.
        send_form(vis, room, answer(form_of(m, NS_REQUEST),
                                    {"muc#request_allow": "true"}))
        await next_message(vis, is_error("forbidden"))

        drain(vis.presences)
        send_form(mod, room, answer(form_of(m, NS_REQUEST),
                                    {"muc#request_allow": "true"}))
        p = await next_presence(vis, lambda p: "110" in codes(p))
        assert item(p).get("role") == "participant"
        p = await next_presence(mod, lambda p: str(p["from"]) ==
                                room + "/vis")
        assert item(p).get("role") == "participant"
        drain(mod.messages)
        say(vis, room, "thank you")
        await next_message(mod, lambda m: m["body"] == "thank you")
        for c in (mod, vis, out):
            await c.stop()

    run(scenario())


# ---- invitations and registration (R-GRP-7, XEP-0045 7.10, 9.9) ------------

def test_invite_adds_member_R_GRP_7(muc, make_user):
    """invite_adds_member=1: a member's mediated invitation makes the
    invitee a member (muc#admin list, kilnctl list), who can then join."""
    for u in ("m13iown", "m13imem", "m13inew"):
        make_user(u, PW)
    kilnctl("group-room", "create", "ginv", "--owner", "m13iown")
    kilnctl("group-room", "add-member", "ginv", "m13imem")
    room = "ginv@" + SVC

    async def scenario():
        o = await login(muc, "m13iown", PW, "c2s-a")
        mem = await login(muc, "m13imem", PW, "c2s-b")
        new = await login(muc, "m13inew", PW, "c2s-a")
        await configure(o, room, [("kiln#invite_adds_member", "1")])
        await joined(mem, room, "mem")
        msg = mem.make_message(mto=room)
        x = ET.SubElement(msg.xml, "{%s}x" % NS_USER)
        ET.SubElement(x, "{%s}invite" % NS_USER, to="m13inew@localhost")
        msg.send()
        m = await next_message(new, lambda m: m.xml.find(
            "{%s}x/{%s}invite" % (NS_USER, NS_USER)) is not None)
        assert str(m["from"]) == room
        assert "m13inew@localhost" in await members(o, room)
        p = await joined(new, room, "new")
        assert p["type"] != "error"
        assert item(p).get("affiliation") == "member"
        for c in (o, mem, new):
            await c.stop()

    run(scenario())
    assert "m13inew@localhost\tmember" in kilnctl(
        "group-room", "list", "ginv").stdout


def test_registration_approval_R_GRP_7(muc, make_user):
    """invite_adds_member=0: the invitee is refused (registration-required),
    files a jabber:iq:register request; every owner and admin gets the
    muc#register approval form once; the owner submits it with
    register_allow=1 and the requester is a member at once (in
    muc_affiliation too) with the nick reserved; bad forms, conflicts and
    strangers' approvals are refused."""
    for u in ("m13rown", "m13radm", "m13rmem", "m13rreq", "m13rother"):
        make_user(u, PW)
    kilnctl("group-room", "create", "greg", "--owner", "m13rown")
    kilnctl("group-room", "add-member", "greg", "m13rmem", "--nick", "mem")
    room = "greg@" + SVC

    async def scenario():
        o = await login(muc, "m13rown", PW, "c2s-a")
        adm = await login(muc, "m13radm", PW, "c2s-b")
        mem = await login(muc, "m13rmem", PW, "c2s-b")
        req = await login(muc, "m13rreq", PW, "c2s-b")
        oth = await login(muc, "m13rother", PW, "c2s-a")
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'admin' jid='m13radm@localhost'/></query>" % NS_ADMIN)
        await joined(mem, room, "mem")
        msg = mem.make_message(mto=room)
        x = ET.SubElement(msg.xml, "{%s}x" % NS_USER)
        ET.SubElement(x, "{%s}invite" % NS_USER, to="m13rreq@localhost")
        msg.send()
        await next_message(req, lambda m: m.xml.find(
            "{%s}x/{%s}invite" % (NS_USER, NS_USER)) is not None)
        assert "m13rreq@localhost" not in await members(o, room)
        p = await joined(req, room, "rita")
        assert p["error"]["condition"] == "registration-required"

        r = await iq(req, "get", room, "<query xmlns='%s'/>" % NS_REGISTER)
        x = form_of(r, NS_REGFORM)
        assert x is not None and "muc#register_roomnick" in fields(x)
        assert r.xml.find("{%s}query/{%s}registered" % (
            NS_REGISTER, NS_REGISTER)) is None

        def reg(nick, ftype="submit"):
            q = ET.Element("{%s}query" % NS_REGISTER)
            q.append(form(NS_REGFORM, [("muc#register_roomnick", nick)]
                          if nick is not None else [], ftype=ftype))
            return ET.tostring(q).decode()

        # Bad: no form, no nick, a form not submitted.
        assert await iq_error(req, "set", room, "<query xmlns='%s'/>"
                              % NS_REGISTER) == "bad-request"
        assert await iq_error(req, "set", room, reg(None)) == "bad-request"
        assert await iq_error(req, "set", room,
                              reg("rita", "form")) == "bad-request"
        # Conflicts: a member registering again; a nick reserved by another.
        assert await iq_error(mem, "set", room, reg("again")) == "conflict"
        assert await iq_error(req, "set", room, reg("mem")) == "conflict"

        drain(o.messages)
        drain(adm.messages)
        await iq(req, "set", room, reg("rita"))
        asks = []
        for c in (o, adm):  # every owner and admin
            m = await next_message(c, has_form(NS_REGFORM))
            assert str(m["from"]) == room
            got = fields(form_of(m, NS_REGFORM))
            assert got["muc#jid"] == "m13rreq@localhost"
            assert got["muc#register_roomnick"] == "rita"
            assert got["muc#register_allow"] in ("0", "false")
            asks.append(m)
        # Asking again changes nothing and asks nobody again; another
        # requester cannot take the nick that is asked for.
        await iq(req, "set", room, reg("rita"))
        await no_matching_message(o, has_form(NS_REGFORM), 1.0)
        assert await iq_error(oth, "set", room, reg("rita")) == "conflict"
        # Not yet a member.
        p = await joined(req, room, "rita")
        assert p["error"]["condition"] == "registration-required"
        # A stranger cannot approve; a bad approval is a bad request.
        x = form_of(asks[0], NS_REGFORM)
        send_form(oth, room, answer(x, {"muc#register_allow": "1"}))
        await next_message(oth, is_error("forbidden"))
        send_form(o, room, answer(x, {"muc#register_allow": "maybe"}))
        await next_message(o, is_error("bad-request"))

        send_form(o, room, answer(x, {"muc#register_allow": "1"}))
        deadline = time.monotonic() + 5
        while "m13rreq@localhost" not in await members(adm, room):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert (await members(adm, room))["m13rreq@localhost"] == "rita"
        p = await joined(req, room, "rita")
        assert p["type"] != "error"
        assert item(p).get("affiliation") == "member"
        r = await iq(req, "get", room, "<query xmlns='%s'/>" % NS_REGISTER)
        assert r.xml.find("{%s}query/{%s}registered" % (
            NS_REGISTER, NS_REGISTER)) is not None
        # The nick is reserved now: someone else joining with it conflicts
        # (as would a registration asking for it).
        assert await iq_error(oth, "set", room, reg("rita")) == "conflict"
        for c in (o, adm, mem, req, oth):
            await c.stop()

    run(scenario())
    assert "m13rreq@localhost\tmember\trita" in kilnctl(
        "group-room", "list", "greg").stdout


def test_registration_open_room_XEP_0045(muc, make_user):
    """In a room that is neither members-only nor moderated, registering
    makes the user a member at once (its nick reserved); <remove/> undoes
    it; an outcast may not register."""
    for u in ("m13oown", "m13oreg", "m13oban"):
        make_user(u, PW)
    room = "openreg@" + SVC

    async def scenario():
        o = await login(muc, "m13oown", PW, "c2s-a")
        r = await login(muc, "m13oreg", PW, "c2s-b")
        b = await login(muc, "m13oban", PW, "c2s-b")
        await joined(o, room, "own")
        q = ET.Element("{%s}query" % NS_REGISTER)
        q.append(form(NS_REGFORM, [("muc#register_roomnick", "Reggie")]))
        await iq(r, "set", room, ET.tostring(q).decode())
        assert (await members(o, room)).get("m13oreg@localhost") == "Reggie"
        await iq(r, "set", room, "<query xmlns='%s'><remove/></query>"
                 % NS_REGISTER)
        assert "m13oreg@localhost" not in await members(o, room)
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'outcast' jid='m13oban@localhost'/></query>" % NS_ADMIN)
        assert await iq_error(b, "get", room, "<query xmlns='%s'/>"
                              % NS_REGISTER) == "not-allowed"
        assert await iq_error(b, "set", room, ET.tostring(q).decode()) \
            == "not-allowed"
        for c in (o, r, b):
            await c.stop()

    run(scenario())


# ---- tombstones (R-GRP-7) ----------------------------------------------------

def test_destroyed_name_retired_R_GRP_7(muc, make_user):
    """Destroying a persistent room keeps a tombstone: joining the name
    again is refused with <not-allowed/> (XEP-0045: creation restricted),
    and so is `kilnctl group-room create`, until retired_until (now +
    mucd.room_retire_days); after it the name makes a new, empty room."""
    make_user("m13town", PW)
    make_user("m13tother", PW)
    room = "tomb1@" + SVC

    async def scenario():
        o = await login(muc, "m13town", PW, "c2s-a")
        t = await login(muc, "m13tother", PW, "c2s-b")
        p = await joined(o, room, "own")
        assert "201" in codes(p)
        await configure(o, room, [("muc#roomconfig_persistentroom", "1"),
                                  ("muc#roomconfig_enablearchiving", "1")])
        say(o, room, "before the end")
        await next_message(o, lambda m: m["body"] == "before the end")
        await iq(o, "set", room, "<query xmlns='%s'><destroy><reason>done"
                 "</reason></destroy></query>" % NS_OWNER)
        await next_presence(o, lambda p: p["type"] == "unavailable")
        for c in (o, t):  # the creator, and anyone else
            p = await joined(c, room, "again")
            assert p["type"] == "error"
            assert p["error"]["condition"] == "not-allowed"
        await o.stop()
        await t.stop()

    run(scenario())
    until = psql("select retired_until > now() + interval '29 days' from "
                 "muc_room where jid = '%s'" % room)
    assert until == "t"  # room_retire_days defaults to 30
    r = kilnctl("group-room", "create", "tomb1", ok=False)
    assert r.returncode != 0 and "retired" in r.stderr
    psql("update muc_room set retired_until = now() - interval '1 second' "
         "where jid = '%s'" % room)

    async def later():
        o = await login(muc, "m13tother", PW, "c2s-b")
        p = await joined(o, room, "fresh")
        assert p["type"] != "error"
        assert "201" in codes(p)
        assert item(p).get("affiliation") == "owner"
        await o.stop()

    run(later())

    # kilnctl: the same rule for a group destroyed by its owner.
    kilnctl("group-room", "create", "tomb2", "--owner", "m13town")
    room2 = "tomb2@" + SVC

    async def destroy2():
        o = await login(muc, "m13town", PW, "c2s-b")
        await iq(o, "set", room2, "<query xmlns='%s'><destroy/></query>"
                 % NS_OWNER)
        await o.stop()

    run(destroy2())
    r = kilnctl("group-room", "create", "tomb2", ok=False)
    assert r.returncode != 0 and "retired" in r.stderr
    psql("update muc_room set retired_until = now() - interval '1 second' "
         "where jid = '%s'" % room2)
    kilnctl("group-room", "create", "tomb2", "--owner", "m13tother")
    assert psql("select count(*) from muc_room where jid = '%s' and "
                "destroyed_at is null" % room2) == "1"


# ---- group list (R-GRP-6) ----------------------------------------------------

def test_group_list_iq_R_GRP_6(muc, make_user):
    """iq get urn:kiln:groups:0 to the service lists the groups where the
    sender is owner, admin or member (not outcast, not plain rooms), with
    room JID, name and affiliation, from muc_affiliation; it is in the
    service's disco#info; it follows membership changes at once."""
    make_user("m13gu", PW)
    make_user("m13gown", PW)
    kilnctl("group-room", "create", "glist-a", "--name", "Alpha")
    kilnctl("group-room", "add-member", "glist-a", "m13gu")
    kilnctl("group-room", "create", "glist-b", "--owner", "m13gu")
    kilnctl("group-room", "create", "glist-c", "--name", "Gamma", "--owner",
            "m13gown")
    kilnctl("group-room", "create", "glist-d", "--owner", "m13gown")

    async def groups(c):
        r = await iq(c, "get", SVC, "<query xmlns='%s'/>" % NS_GROUPS)
        return [(i.get("jid"), i.get("name"), i.get("affiliation"))
                for i in r.xml.iter("{%s}item" % NS_GROUPS)]

    async def scenario():
        u = await login(muc, "m13gu", PW, "c2s-b")
        own = await login(muc, "m13gown", PW, "c2s-a")
        info = await iq(u, "get", SVC, "<query xmlns='%s'/>" % NS_INFO)
        assert NS_GROUPS in {f.get("var") for f in info.xml.iter(
            "{%s}feature" % NS_INFO)}
        await iq(own, "set", "glist-c@" + SVC, "<query xmlns='%s'><item "
                 "affiliation='admin' jid='m13gu@localhost'/></query>"
                 % NS_ADMIN)
        await iq(own, "set", "glist-d@" + SVC, "<query xmlns='%s'><item "
                 "affiliation='outcast' jid='m13gu@localhost'/></query>"
                 % NS_ADMIN)
        await joined(u, "plainroom13@" + SVC, "u")  # owner, not a group
        assert await groups(u) == [
            ("glist-a@" + SVC, "Alpha", "member"),
            ("glist-b@" + SVC, "glist-b", "owner"),
            ("glist-c@" + SVC, "Gamma", "admin"),
        ]
        kilnctl("group-room", "remove-member", "glist-a", "m13gu")
        assert [g[0] for g in await groups(u)] == ["glist-b@" + SVC,
                                                   "glist-c@" + SVC]
        assert await groups(own) == [
            ("glist-c@" + SVC, "Gamma", "owner"),
            ("glist-d@" + SVC, "glist-d", "owner"),
        ]
        assert await iq_error(u, "set", SVC, "<query xmlns='%s'/>"
                              % NS_GROUPS) == "not-allowed"
        await u.stop()
        await own.stop()

    run(scenario())


# ---- a join racing kilnctl (R-GRP-2) -----------------------------------------

def test_join_right_after_kilnctl_create_R_GRP_2(muc, make_user):
    """A member's join to a group mucd has not heard of yet (its row
    committed, the invalidation not seen) finds the group in PostgreSQL:
    the member joins as member, nobody becomes the owner of a new instant
    room. First with no notification at all (written by psql), then with
    kilnctl followed at once by the join."""
    make_user("m13jown", PW)
    make_user("m13jmem", PW)
    room = "gjoin1@" + SVC
    room2 = "gjoin2@" + SVC

    async def scenario():
        mem = await login(muc, "m13jmem", PW, "c2s-b")
        psql("begin; insert into muc_room (jid, node, service, title, "
             "persistent, members_only, whois, public_room, allow_pm, mam, "
             "offline_delivery, history_mode, is_group) values ('%s', "
             "'gjoin1', '%s', 'Join One', true, true, 'anyone', false, "
             "'none', true, true, 'none', true); insert into "
             "muc_affiliation (room_id, bare_jid, affiliation) select id, "
             "'m13jown@localhost', 'owner' from muc_room where jid = '%s'; "
             "insert into muc_affiliation (room_id, bare_jid, affiliation) "
             "select id, 'm13jmem@localhost', 'member' from muc_room where "
             "jid = '%s'; commit" % (room, SVC, room, room))
        p = await joined(mem, room, "mem")
        assert p["type"] != "error"
        assert "201" not in codes(p)
        assert item(p).get("affiliation") == "member"
        info = await iq(mem, "get", room, "<query xmlns='%s'/>" % NS_INFO)
        assert "muc_membersonly" in {f.get("var") for f in info.xml.iter(
            "{%s}feature" % NS_INFO)}

        kilnctl("group-room", "create", "gjoin2", "--owner", "m13jown")
        kilnctl("group-room", "add-member", "gjoin2", "m13jmem")
        p = await joined(mem, room2, "mem")
        assert p["type"] != "error"
        assert "201" not in codes(p)
        assert item(p).get("affiliation") == "member"
        await mem.stop()

    run(scenario())
    for r in (room, room2):
        assert psql("select string_agg(bare_jid || ':' || affiliation, ',' "
                    "order by bare_jid) from muc_affiliation a join muc_room "
                    "r on r.id = a.room_id where r.jid = '%s'" % r) == \
            "m13jmem@localhost:member,m13jown@localhost:owner"


# ---- removed members and offline delivery (R-GRP-7, R-GRP-4) -----------------

def test_removed_member_gets_no_offline_delivery_R_GRP_7(muc, make_user):
    """A member whose membership was removed (muc#admin none, or kilnctl
    remove-member) or who was banned (outcast) gets no further group
    messages while offline; a member who stays does."""
    users = ("m13down", "m13dstay", "m13dnone", "m13dban", "m13dctl")
    for u in users:
        make_user(u, PW)
    kilnctl("group-room", "create", "gdel", "--owner", "m13down")
    for u in users[1:]:
        kilnctl("group-room", "add-member", "gdel", u)
    room = "gdel@" + SVC

    async def post():
        o = await login(muc, "m13down", PW, "c2s-a")
        await joined(o, room, "own")
        say(o, room, "while all are members")
        await next_message(o, lambda m: m["body"] == "while all are members")
        await iq(o, "set", room, "<query xmlns='%s'><item affiliation="
                 "'none' jid='m13dnone@localhost'/><item affiliation="
                 "'outcast' jid='m13dban@localhost'/></query>" % NS_ADMIN)
        kilnctl("group-room", "remove-member", "gdel", "m13dctl")
        deadline = time.monotonic() + 5
        while "m13dctl@localhost" in await members(o, room):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        say(o, room, "after the removals")
        await next_message(o, lambda m: m["body"] == "after the removals")
        await o.stop()

    run(post())

    async def later():
        s = await login(muc, "m13dstay", PW, "c2s-b")
        await next_message(s, lambda m: m["body"] == "while all are members")
        await next_message(s, lambda m: m["body"] == "after the removals")
        await s.stop()
        for u, node in (("m13dnone", "c2s-a"), ("m13dban", "c2s-b"),
                        ("m13dctl", "c2s-a")):
            c = await login(muc, u, PW, node)
            await next_message(c, lambda m: m["body"] ==
                               "while all are members")
            await no_matching_message(
                c, lambda m: m["body"] == "after the removals", 1.5)
            await c.stop()

    run(later())


# ---- presence cost of a group (R-GRP-9) ---------------------------------------

def test_group_presence_cost_R_GRP_9(muc, make_user):
    """A joiner of a group gets at most kiln#max_occupant_presence of the
    other occupants' presences (none with kiln#occupant_presence off), no
    presence for members who are not in the room, and no history (groups
    default to 0; MAM covers catch-up); it still gets every new message
    and every later join."""
    users = ["m13po", "m13p1", "m13p2", "m13p3", "m13poff", "m13pj"]
    for u in users:
        make_user(u, PW)
    room = "g9cost@" + SVC
    kilnctl("group-room", "create", "g9cost", "--owner", "m13po")
    for u in users[1:]:
        kilnctl("group-room", "add-member", "g9cost", u)

    def from_room(p):
        return str(p["from"]).startswith(room + "/")

    async def scenario():
        own = await login(muc, "m13po", PW, "c2s-a")
        occ = [await login(muc, u, PW, node) for u, node in
               (("m13p1", "c2s-b"), ("m13p2", "c2s-a"), ("m13p3", "c2s-b"))]
        assert "110" in codes(await joined(own, room, "owner"))
        await configure(own, room, [("kiln#max_occupant_presence", "2")])
        for i, c in enumerate(occ):
            assert "110" in codes(await joined(c, room, "p%d" % (i + 1)))
        say(own, room, "before-join")
        await next_message(occ[0], lambda m: m["body"] == "before-join")

        j = await login(muc, "m13pj", PW, "c2s-b")
        drain(j.presences)
        join(j, room, "joiner")
        seen = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                p = await asyncio.wait_for(j.presences.get(),
                                           deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if from_room(p):
                seen.append(p)
        others = [p for p in seen if "110" not in codes(p)]
        assert any("110" in codes(p) for p in seen), "no self-presence"
        assert len(others) == 2, [str(p["from"]) for p in others]
        assert all(p["type"] != "unavailable" for p in others)
        assert room + "/m13poff" not in {str(p["from"]) for p in seen}
        # no history in a group by default: the message posted while j
        # was away comes once, through offline delivery (R-GRP-4), and not
        # a second time as groupchat history
        first = await next_message(j, lambda m: m["body"] == "before-join")
        assert first["type"] != "groupchat"
        await no_matching_message(j, lambda m: m["body"] == "before-join")
        # joined for real: new messages and later joins reach it
        say(occ[1], room, "after-join")
        await next_message(j, lambda m: m["body"] == "after-join")
        off = await login(muc, "m13poff", PW, "c2s-a")
        assert "110" in codes(await joined(off, room, "late"))
        await next_presence(j, lambda p: str(p["from"]) == room + "/late")

        # occupant list switched off: the next joiner gets only itself
        await configure(own, room, [("kiln#occupant_presence", "0")])
        await off.stop()
        await next_presence(j, lambda p: str(p["from"]) == room + "/late"
                            and p["type"] == "unavailable")
        off = await login(muc, "m13poff", PW, "c2s-b")
        drain(off.presences)
        join(off, room, "late")
        seen = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                p = await asyncio.wait_for(off.presences.get(),
                                           deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if from_room(p):
                seen.append(p)
        assert [str(p["from"]) for p in seen] == [room + "/late"]
        for c in [own, j, off] + occ:
            await c.stop()

    run(scenario())


def test_reserved_nick_discovery_XEP_0045_7_12(muc, make_user):
    """disco#info node x-roomuser-item on a room names the asker's reserved
    nick (its affiliation's), and nothing to one without one; the room's
    own info (no node) is unchanged. Converse.js joins with this nick: it
    used to get the room's name instead."""
    for u in ("m13nown", "m13nmem", "m13nout"):
        make_user(u, PW)
    kilnctl("group-room", "create", "gnick", "--name", "Nick Room",
            "--owner", "m13nown")
    kilnctl("group-room", "add-member", "gnick", "m13nmem", "--nick", "memo")
    room = "gnick@" + SVC
    q = "<query xmlns='%s' node='x-roomuser-item'/>" % NS_INFO

    def idents(r):
        return [(i.get("category"), i.get("type"), i.get("name"))
                for i in r.xml.iter("{%s}identity" % NS_INFO)]

    async def scenario():
        mem = await login(muc, "m13nmem", PW, "c2s-a")
        out = await login(muc, "m13nout", PW, "c2s-b")
        r = await iq(mem, "get", room, q)
        assert r.xml.find("{%s}query" % NS_INFO).get("node") == \
            "x-roomuser-item"
        assert idents(r) == [("conference", "text", "memo")]
        r = await iq(out, "get", room, q)
        assert idents(r) == []
        assert r.xml.find("{%s}query/{%s}feature" % (NS_INFO, NS_INFO)) \
            is None
        r = await iq(out, "get", room, "<query xmlns='%s'/>" % NS_INFO)
        assert idents(r) == [("conference", "text", "Nick Room")]
        for c in (mem, out):
            await c.stop()

    run(scenario())
