"""15 MUC, first contact (issue 10): what a real client sees of a room.

XEP-0045 7.14 / 7.2.4 / 17.3 and RFC 6120 8.3.2:
  - a leaving occupant's <item jid/> is its real full JID, as in its join
    presence (non-anonymous rooms: everyone; semi-anonymous rooms: the
    moderators only), whether it leaves with unavailable presence or its
    session ends;
  - a join from a resource already in the room (a client that lost its
    view of the room) gets the whole join sequence again: occupants,
    self-presence with its status codes, history, subject; the others hear
    nothing unless the presence changed;
  - a presence probe from an occupant to room@service/nick is answered
    with that occupant's current presence; a probe from a non-occupant
    gets <not-acceptable/> (Prosody's answer);
  - errors the room generates carry by='room@service', errors of the
    service by='service'.

Occupants are spread over c2s-a and c2s-b.
"""

import xml.etree.ElementTree as ET

import pytest

from slixmpp.exceptions import IqError  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

from xmpp_client import (codes, drain, iq, join, joined,  # noqa: E402
                         next_message, next_presence, run, say)
from xmpp_client import login as client_login  # noqa: E402

PW = "secret-pw"
SVC = "conference.localhost"
NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = "http://jabber.org/protocol/muc#user"
NS_OWNER = "http://jabber.org/protocol/muc#owner"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"
NS_CLIENT = "jabber:client"


@pytest.fixture
def muc(live):
    return live


async def login(*args, **kw):
    """xmpp_client.login, plus the body-less messages a MUC client needs
    (the subject after a join, errors): slixmpp queues only messages with
    a <body/>."""
    c = await client_login(*args, **kw)

    def bodiless(m):
        x = m.xml
        if x.find("{%s}body" % NS_CLIENT) is not None:
            return
        if (x.find("{%s}subject" % NS_CLIENT) is not None or
                x.get("type") == "error"):
            c.messages.put_nowait(m)

    c.register_handler(Callback("kiln-test bodiless",
                                MatchXPath("{%s}message" % NS_CLIENT),
                                bodiless))
    return c


def item(p):
    return p.xml.find("{%s}x/{%s}item" % (NS_USER, NS_USER))


def error_by(st):
    e = st.xml.find("{%s}error" % NS_CLIENT)
    assert e is not None, st
    return e.get("by")


def is_subject(m):
    return m.xml.find("{%s}subject" % NS_CLIENT) is not None


async def configure(c, room, values):
    x = ET.Element("{%s}x" % NS_DATA, type="submit")
    f = ET.SubElement(x, "{%s}field" % NS_DATA, var="FORM_TYPE")
    ET.SubElement(f, "{%s}value" % NS_DATA).text = \
        "http://jabber.org/protocol/muc#roomconfig"
    for var, value in values:
        f = ET.SubElement(x, "{%s}field" % NS_DATA, var=var)
        ET.SubElement(f, "{%s}value" % NS_DATA).text = value
    q = ET.Element("{%s}query" % NS_OWNER)
    q.append(x)
    await iq(c, "set", room, ET.tostring(q).decode())


def from_is(jid):
    return lambda p: str(p["from"]) == jid


async def queued_from(c, jid):
    """Presences from jid already in c's queue (drained)."""
    got = []
    while not c.presences.empty():
        p = c.presences.get_nowait()
        if str(p["from"]) == jid:
            got.append(p)
    return got


# ---- 1. the leaving occupant's item jid (XEP-0045 7.14, 7.2.4) -------------

def test_leave_item_jid_is_full_jid_XEP_0045_7_14(muc, make_user):
    """Non-anonymous room: the others see the leaver's real full JID (the
    one of its join presence), for an unavailable presence and for a
    session that ends. Semi-anonymous room: the moderator sees the full
    JID, a participant sees none."""
    for u in ("m15lo", "m15lb", "m15lc"):
        make_user(u, PW)
    room1 = "leave1@" + SVC
    room2 = "leave2@" + SVC

    async def scenario():
        a = await login(muc, "m15lo", PW, "c2s-a", "pc")
        b = await login(muc, "m15lb", PW, "c2s-b", "lap")
        c = await login(muc, "m15lc", PW, "c2s-a", "tab")
        bfull = str(b.boundjid)
        assert bfull == "m15lb@localhost/lap"

        # Non-anonymous.
        await joined(a, room1, "owner")
        await configure(a, room1, [("muc#roomconfig_whois", "anyone")])
        p = await joined(b, room1, "bob")
        assert "100" in codes(p)
        p = await next_presence(a, from_is(room1 + "/bob"))
        assert item(p).get("jid") == bfull
        b.send_presence(pto=room1 + "/bob", ptype="unavailable")
        p = await next_presence(a, from_is(room1 + "/bob"))
        assert p["type"] == "unavailable"
        assert item(p).get("jid") == bfull
        p = await next_presence(b, from_is(room1 + "/bob"))
        assert p["type"] == "unavailable" and "110" in codes(p)
        assert item(p).get("jid") == bfull

        # Semi-anonymous (the default): a is owner, so moderator.
        await joined(a, room2, "owner")
        await joined(c, room2, "carol")
        await joined(b, room2, "bob")
        p = await next_presence(a, from_is(room2 + "/bob"))
        assert item(p).get("jid") == bfull
        p = await next_presence(c, from_is(room2 + "/bob"))
        assert item(p).get("jid") is None
        b.send_presence(pto=room2 + "/bob", ptype="unavailable")
        p = await next_presence(a, from_is(room2 + "/bob"))
        assert p["type"] == "unavailable"
        assert item(p).get("jid") == bfull
        p = await next_presence(c, from_is(room2 + "/bob"))
        assert p["type"] == "unavailable"
        assert item(p).get("jid") is None

        # The session ends (no unavailable presence to the room first).
        await joined(b, room1, "bob")
        p = await next_presence(a, from_is(room1 + "/bob"))
        assert p["type"] != "unavailable"
        await b.stop()
        p = await next_presence(a, from_is(room1 + "/bob"), timeout=15)
        assert p["type"] == "unavailable"
        assert item(p).get("jid") == bfull
        for x in (a, c):
            await x.stop()

    run(scenario())


# ---- 2. a join from a resource already in the room (XEP-0045 7.2) ----------

def test_rejoin_gets_whole_join_sequence_XEP_0045_7_2(muc, make_user):
    """b (c2s-b) is in the room and sends its join presence again, as a
    client that lost sync does: it gets a's presence, its self-presence
    with 110 and 100, the history and the subject again; a hears nothing
    (checked in order: a's next room stanza is b's groupchat message).
    A rejoin with another presence (away) is broadcast once."""
    make_user("m15ra", PW)
    make_user("m15rb", PW)
    room = "rejoin1@" + SVC

    async def scenario():
        a = await login(muc, "m15ra", PW, "c2s-a", "pc")
        b = await login(muc, "m15rb", PW, "c2s-b", "lap")
        await joined(a, room, "alice")
        await configure(a, room, [("muc#roomconfig_whois", "anyone")])
        m = a.make_message(mto=room, mtype="groupchat")
        m["subject"] = "first contact"
        m.send()
        await next_message(a, is_subject)
        say(a, room, "before bob")
        await next_message(a, lambda m: m["body"] == "before bob")
        await joined(b, room, "bob")
        await next_message(b, is_subject)
        await next_presence(a, from_is(room + "/bob"))
        drain(b.presences)
        drain(b.messages)
        drain(a.presences)

        async def whole_sequence(history):
            p = await next_presence(b, from_is(room + "/alice"))
            assert p["type"] != "unavailable"
            p = await next_presence(b, from_is(room + "/bob"))
            assert {"110", "100"} <= codes(p)
            assert "201" not in codes(p)
            assert item(p).get("jid") == str(b.boundjid)
            for body in history:
                m = await next_message(b, lambda m: True)
                assert m["body"] == body
                assert m.xml.find("{%s}delay" % NS_DELAY) is not None
            m = await next_message(b, lambda m: True)
            assert is_subject(m) and m["subject"] == "first contact"

        join(b, room, "bob")
        await whole_sequence(["before bob"])
        say(b, room, "still here")
        await next_message(a, lambda m: m["body"] == "still here")
        assert await queued_from(a, room + "/bob") == []
        await next_message(b, lambda m: m["body"] == "still here")

        # The same join with another presence: the others get it once.
        x = ET.Element("{%s}x" % NS_MUC)
        p = b.make_presence(pto=room + "/bob", pshow="away")
        p.append(x)
        p.send()
        await whole_sequence(["before bob", "still here"])
        p = await next_presence(a, from_is(room + "/bob"))
        assert p["show"] == "away"
        say(b, room, "away now")
        await next_message(a, lambda m: m["body"] == "away now")
        assert await queued_from(a, room + "/bob") == []
        await a.stop()
        await b.stop()

    run(scenario())


# ---- 3. presence probes (XEP-0045 17.3) ------------------------------------

def test_probe_answered_with_current_presence_XEP_0045_17_3(muc, make_user):
    """An occupant's probe to room/nick gets that occupant's current
    presence (show, status, item as the prober may see it); a
    non-occupant's probe gets <not-acceptable/> by the room."""
    for u in ("m15pa", "m15pb", "m15pc"):
        make_user(u, PW)
    room = "probe1@" + SVC

    async def scenario():
        a = await login(muc, "m15pa", PW, "c2s-a", "pc")
        b = await login(muc, "m15pb", PW, "c2s-b", "lap")
        c = await login(muc, "m15pc", PW, "c2s-b", "tab")
        await joined(a, room, "alice")
        await joined(b, room, "bob")
        x = ET.Element("{%s}x" % NS_MUC)
        p = b.make_presence(pto=room + "/bob", pshow="dnd",
                            pstatus="in a meeting")
        p.append(x)
        p.send()
        await next_presence(a, lambda p: str(p["from"]) == room + "/bob" and
                            p["show"] == "dnd")
        drain(a.presences)

        # b (a participant in a semi-anonymous room) probes alice.
        b.send_presence(pto=room + "/alice", ptype="probe")
        p = await next_presence(b, from_is(room + "/alice"))
        assert p.xml.get("type") is None
        assert item(p).get("role") == "moderator"
        assert item(p).get("affiliation") == "owner"
        assert item(p).get("jid") is None
        assert "110" not in codes(p)

        # a (moderator) probes bob: current show and status, real JID.
        a.send_presence(pto=room + "/bob", ptype="probe")
        p = await next_presence(a, from_is(room + "/bob"))
        assert p.xml.get("type") is None
        assert p["show"] == "dnd" and p["status"] == "in a meeting"
        assert item(p).get("jid") == str(b.boundjid)

        # A non-occupant.
        c.send_presence(pto=room + "/bob", ptype="probe")
        p = await next_presence(c, from_is(room + "/bob"))
        assert p["type"] == "error"
        assert p["error"]["condition"] == "not-acceptable"
        assert error_by(p) == room
        for x in (a, b, c):
            await x.stop()

    run(scenario())


# ---- 4. by on errors (RFC 6120 8.3.2) --------------------------------------

def test_errors_carry_by_RFC_6120_8_3_2(muc, make_user):
    """Presence, message and IQ errors of the room say by='room@service';
    errors of the service say by='service'."""
    make_user("m15ea", PW)
    make_user("m15eb", PW)
    room = "errby1@" + SVC

    async def scenario():
        a = await login(muc, "m15ea", PW, "c2s-a", "pc")
        b = await login(muc, "m15eb", PW, "c2s-b", "lap")
        await joined(a, room, "alice")
        # Presence: nick conflict.
        join(b, room, "alice")
        p = await next_presence(b, lambda p: p["type"] == "error")
        assert p["error"]["condition"] == "conflict"
        assert error_by(p) == room
        # Presence: members-only.
        await configure(a, room, [("muc#roomconfig_membersonly", "1")])
        join(b, room, "bob")
        p = await next_presence(b, lambda p: p["type"] == "error")
        assert p["error"]["condition"] == "registration-required"
        assert error_by(p) == room
        # Message: groupchat from a non-occupant.
        say(b, room, "let me in")
        m = await next_message(b, lambda m: m["type"] == "error")
        assert error_by(m) == room
        # Message: a private message to a nick nobody has.
        m = a.make_message(mto=room + "/nobody", mbody="hello?",
                           mtype="chat")
        m.send()
        m = await next_message(a, lambda m: m["type"] == "error")
        assert m["error"]["condition"] == "item-not-found"
        assert error_by(m) == room
        # IQ: a non-owner asks for the configuration form.
        q = b.make_iq_get(queryxmlns=NS_OWNER, ito=room)
        try:
            await q.send(timeout=10)
            raise AssertionError("expected an error")
        except IqError as e:
            assert e.iq["error"]["condition"] == "forbidden"
            assert error_by(e.iq) == room
        # The service itself: a message to it.
        m = b.make_message(mto=SVC, mbody="hello service")
        m.send()
        m = await next_message(b, lambda m: m["type"] == "error")
        assert m["error"]["condition"] == "service-unavailable"
        assert error_by(m) == SVC
        await a.stop()
        await b.stop()

    run(scenario())
