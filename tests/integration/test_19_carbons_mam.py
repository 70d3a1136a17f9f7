"""19 Phones and many devices (issue 11): XEP-0280 carbons with XEP-0334
hints, XEP-0359 stanza ids, XEP-0313 one-to-one archive.

The parties are on different c2s nodes. slixmpp's carbons/MAM plugins are
not loaded: requests and the copies are checked as raw XML, so the test
sees exactly what the server sends.
"""

import asyncio
import time
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_05_roster import sql
from xmpp_client import drain, iq, iq_error, login, next_message, run

PW = "secret-pw"
D = "localhost"
NS_C = "urn:xmpp:carbons:2"
NS_FWD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_HINTS = "urn:xmpp:hints"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_CLIENT = "jabber:client"


def users(make_user, *names):
    suffix = "%d" % (time.monotonic_ns() % 10**9)
    out = []
    for n in names:
        u = "%s%s" % (n, suffix)
        make_user(u, PW)
        out.append(u)
    return out


def send_raw(c, xml):
    c.send_raw(xml)


async def carbons(c, on=True):
    await iq(c, "set", None, "<%s xmlns='%s'/>" % (
        "enable" if on else "disable", NS_C))


def carbon_of(m, kind):
    """The forwarded message inside a <sent/>/<received/> carbon, or None."""
    w = m.xml.find("{%s}%s" % (NS_C, kind))
    if w is None:
        return None
    return w.find("{%s}forwarded/{%s}message" % (NS_FWD, NS_CLIENT))


def body_of(x):
    b = x.find("{%s}body" % NS_CLIENT)
    return None if b is None else b.text


def watch_carbons(*clients):
    """Queue every carbon a client gets in c.carbons (slixmpp without its
    xep_0280 plugin does not raise a message event for them)."""
    for c in clients:
        c.carbons = asyncio.Queue()
        for kind in ("sent", "received"):
            c.register_handler(Callback(
                "carbon-" + kind,
                MatchXPath("{%s}message/{%s}%s" % (NS_CLIENT, NS_C, kind)),
                lambda m, c=c: c.carbons.put_nowait(m)))


async def next_carbon(c, kind, body, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s carbon of %r" % (kind, body)
        m = await asyncio.wait_for(c.carbons.get(), left)
        inner = carbon_of(m, kind)
        if inner is not None and body_of(inner) == body:
            return m, inner


async def no_carbon(c, wait=1.0):
    """No carbon arrives at c for `wait` seconds."""
    try:
        m = await asyncio.wait_for(c.carbons.get(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected carbon: %s" % m)


# ---- XEP-0280 ----------------------------------------------------------------

def test_carbons_advertised_in_server_disco_XEP_0280(live, make_user):
    a, = users(make_user, "cda")

    async def go():
        c = await login(live, a, PW)
        try:
            r = await iq(c, "get", D, "<query xmlns='%s'/>" % NS_INFO)
            feats = {f.get("var") for f in r.xml.iter("{%s}feature" % NS_INFO)}
            assert NS_C in feats
        finally:
            await c.stop()
    run(go())


def test_carbons_received_and_sent_across_nodes_XEP_0280(live, make_user):
    """A has a phone on c2s-a and a laptop on c2s-b, both with carbons; B
    is on c2s-b. B -> A/phone: the laptop gets a <received/> copy.
    A/phone -> B: the laptop gets a <sent/> copy. A resource without
    carbons gets nothing; disable stops the copies."""
    a, b = users(make_user, "cra", "crb")

    async def go():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        desk = await login(live, a, PW, node="c2s-a", resource="desk")
        bob = await login(live, b, PW, node="c2s-b")
        watch_carbons(phone, laptop, desk)
        try:
            await carbons(phone)
            await carbons(laptop)
            await asyncio.sleep(0.2)
            for c in (phone, laptop, desk, bob):
                drain(c.messages)
                if hasattr(c, "carbons"):
                    drain(c.carbons)
            # received: to the phone's full JID
            bob.send_message(mto="%s@%s/phone" % (a, D), mbody="hi phone",
                             mtype="chat")
            m = await next_message(phone, lambda m: m["body"] == "hi phone")
            assert m.xml.find("{%s}received" % NS_C) is None
            cm, inner = await next_carbon(laptop, "received", "hi phone")
            assert str(cm["from"]) == "%s@%s" % (a, D)
            assert inner.get("from").startswith("%s@%s/" % (b, D))
            assert inner.get("to") == "%s@%s/phone" % (a, D)
            # sent: the phone to bob
            phone.send_message(mto="%s@%s" % (b, D), mbody="hi bob",
                               mtype="chat")
            assert (await bob.next_message(body_only=True)) == "hi bob"
            cm, inner = await next_carbon(laptop, "sent", "hi bob")
            assert str(cm["from"]) == "%s@%s" % (a, D)
            assert inner.get("from") == "%s@%s/phone" % (a, D)
            assert inner.get("to") == "%s@%s" % (b, D)
            # the resource without carbons got neither
            await no_carbon(desk, 0.5)
            # disable on the laptop: no more copies
            await carbons(laptop, on=False)
            bob.send_message(mto="%s@%s/phone" % (a, D), mbody="second",
                             mtype="chat")
            assert (await phone.next_message(body_only=True)) == "second"
            await no_carbon(laptop, 1.0)
        finally:
            for c in (phone, laptop, desk, bob):
                await c.stop()
    run(go(), timeout=60)


def test_carbons_eligibility_private_groupchat_XEP_0280(live, make_user):
    """<private/> + <no-copy/> is not copied; headline and groupchat are
    not copied; normal without a body is not; normal with a body is."""
    a, b = users(make_user, "cpa", "cpb")

    async def go():
        phone = await login(live, a, PW, node="c2s-a", resource="phone")
        laptop = await login(live, a, PW, node="c2s-b", resource="laptop")
        bob = await login(live, b, PW, node="c2s-b")
        watch_carbons(laptop)
        try:
            await carbons(laptop)
            to_b = "%s@%s" % (b, D)
            send_raw(phone, "<message to='%s' type='chat'><body>secret</body>"
                     "<private xmlns='%s'/><no-copy xmlns='%s'/></message>"
                     % (to_b, NS_C, NS_HINTS))
            send_raw(phone, "<message to='%s' type='headline'><body>news"
                     "</body></message>" % to_b)
            send_raw(phone, "<message to='%s'><thread>t</thread></message>"
                     % to_b)
            send_raw(bob, "<message to='%s@%s/phone' type='groupchat'><body>"
                     "gc</body></message>" % (a, D))
            send_raw(phone, "<message to='%s'><body>normal</body></message>"
                     % to_b)
            # the normal message with a body is the only copy
            m = await asyncio.wait_for(laptop.carbons.get(), 5)
            inner = carbon_of(m, "sent")
            assert inner is not None and body_of(inner) == "normal", m
            await no_carbon(laptop, 1.0)
        finally:
            for c in (phone, laptop, bob):
                await c.stop()
    run(go(), timeout=60)
