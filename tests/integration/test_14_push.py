"""14 Push notifications (XEP-0357) in kiln-presenced.

Requirement IDs: R-GRP-8 (a group message stored for an absent member
raises the same push as a 1:1 message; per-room mute). The rest is named
after the XEP.

The app server is a second test client, P, on the other c2s node: its
registration names P's full JID, so the publishes (IQ sets from the user's
bare JID) are routed to it, and P answers them (a result, or the error a
test wants). slixmpp has no XEP-0357 plugin loaded: requests are raw XML.
"""

import asyncio
import os
import re
import time
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import CONF, VAR
from test_05_roster import sql
from test_07_muc import SVC, kilnctl
from test_07_muc import login as muc_login
from xmpp_client import iq, iq_error, joined, login, run, say

PW = "secret-pw"
D = "localhost"
NS_PUSH = "urn:xmpp:push:0"
NS_PS = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"
NS_INFO = "http://jabber.org/protocol/disco#info"
PUBOPTS = NS_PS + "#publish-options"


# ---- helpers ---------------------------------------------------------------

def enable_xml(jid, node=None, secret=None, muted=()):
    a = " jid='%s'" % jid if jid is not None else ""
    a += " node='%s'" % node if node is not None else ""
    x = ""
    if secret is not None or muted:
        x = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>%s"
             "</value></field>" % (NS_DATA, PUBOPTS))
        if secret is not None:
            x += "<field var='secret'><value>%s</value></field>" % secret
        if muted:
            x += "<field var='kiln#muted'>%s</field>" % "".join(
                "<value>%s</value>" % m for m in muted)
        x += "</x>"
    return "<enable xmlns='%s'%s>%s</enable>" % (NS_PUSH, a, x)


async def enable(c, jid, node, **kw):
    await iq(c, "set", None, enable_xml(jid, node, **kw))


async def disable(c, jid, node=None):
    n = " node='%s'" % node if node is not None else ""
    await iq(c, "set", None,
             "<disable xmlns='%s' jid='%s'%s/>" % (NS_PUSH, jid, n))


class AppServer:
    """P: a client that takes every pubsub publish IQ it gets, queues it and
    answers it with a result, or with the error in self.answer
    ((type, condition)) when set."""

    def __init__(self, client):
        self.c = client
        self.q = asyncio.Queue()
        self.answer = None
        client.register_handler(Callback(
            "kiln-test push publishes",
            MatchXPath("{jabber:client}iq/{%s}pubsub" % NS_PS), self._on_iq))

    @property
    def jid(self):
        return str(self.c.boundjid.full)

    def _on_iq(self, q):
        if q["type"] != "set":
            return
        self.q.put_nowait(q.xml)
        r = q.reply(clear=True)
        if self.answer is not None:
            r["type"] = "error"
            r["error"]["type"] = self.answer[0]
            r["error"]["condition"] = self.answer[1]
        r.send()

    async def next(self, timeout=5):
        return await asyncio.wait_for(self.q.get(), timeout)

    async def nothing(self, wait=1.5):
        try:
            x = await asyncio.wait_for(self.q.get(), wait)
        except asyncio.TimeoutError:
            return True
        raise AssertionError("unexpected publish: %s" % ET.tostring(x))


def note(x):
    """(publish node, summary fields, publish-options fields) of a publish."""
    pub = x.find("{%s}pubsub/{%s}publish" % (NS_PS, NS_PS))
    form = pub.find("{%s}item/{%s}notification/{%s}x" % (NS_PS, NS_PUSH,
                                                         NS_DATA))

    def fields(f):
        if f is None:
            return None
        return {fl.get("var"): fl.findtext("{%s}value" % NS_DATA)
                for fl in f.findall("{%s}field" % NS_DATA)}

    opts = x.find("{%s}pubsub/{%s}publish-options/{%s}x" % (NS_PS, NS_PS,
                                                             NS_DATA))
    return pub.get("node"), fields(form), fields(opts)


def regs(user):
    return sql("select string_agg(jid || ' ' || node, ',' order by node) "
               "from push_registrations where username = '%s'" % user)


async def wait_regs(user, want, timeout=5):
    deadline = time.monotonic() + timeout
    while regs(user) != want:
        assert time.monotonic() < deadline, regs(user)
        await asyncio.sleep(0.1)


# ---- tests -----------------------------------------------------------------

def test_push_on_offline_message_XEP_0357(live, make_user):
    """A enables push (with a publish-options form) naming P; A goes
    offline; B's chat message to A is stored and P gets the XEP-0357
    section 5 publish from A's bare JID: FORM_TYPE summary, message-count
    1 then 2, last-message-sender B's full JID, no body (push_include_body
    is off), and the publish-options form back. The account's disco#info
    advertises urn:xmpp:push:0."""
    for u in ("p14a", "p14b", "p14app"):
        make_user(u, PW)
    sql("delete from offline_messages where username = 'p14a'")

    async def scenario():
        p = AppServer(await login(live, "p14app", PW, "c2s-b", "app"))
        a = await login(live, "p14a", PW, "c2s-a", "phone")
        info = await iq(a, "get", "p14a@" + D, "<query xmlns='%s'/>" % NS_INFO)
        feats = {f.get("var") for f in info.xml.iter("{%s}feature" % NS_INFO)}
        assert NS_PUSH in feats
        await enable(a, p.jid, "n-a1", secret="s3cret")
        assert regs("p14a") == "%s n-a1" % p.jid
        await a.stop()
        b = await login(live, "p14b", PW, "c2s-a", "desk")
        b.send_message(mto="p14a@" + D, mbody="wake up", mtype="chat")
        x = await p.next()
        assert x.get("type") == "set"
        assert x.get("from") == "p14a@" + D
        node, f, opts = note(x)
        assert node == "n-a1"
        assert f["FORM_TYPE"] == "urn:xmpp:push:summary"
        assert f["message-count"] == "1"
        assert f["last-message-sender"] == "p14b@%s/desk" % D
        assert "last-message-body" not in f
        assert opts == {"FORM_TYPE": PUBOPTS, "secret": "s3cret"}
        b.send_message(mto="p14a@" + D, mbody="again", mtype="chat")
        _, f, _ = note(await p.next())
        assert f["message-count"] == "2"
        await b.stop()
        await p.c.stop()

    run(scenario())
    assert live.procs["presenced"].alive()


def test_push_on_group_message_R_GRP_8(live, make_user):
    """A is a member of a group and absent; B posts; the message mucd
    sends to A's bare JID is stored offline and P gets a publish for it.
    A second registration whose enable form mutes the room (kiln#muted)
    gets none for the group, but does for B's 1:1 message."""
    for u in ("p14ga", "p14gb", "p14gapp"):
        make_user(u, PW)
    kilnctl("group-room", "create", "push14", "--owner", "p14gb")
    kilnctl("group-room", "add-member", "push14", "p14ga")
    room = "push14@" + SVC

    async def scenario():
        p = AppServer(await login(live, "p14gapp", PW, "c2s-b", "app"))
        a = await login(live, "p14ga", PW, "c2s-a", "phone")
        await enable(a, p.jid, "n-all")
        await enable(a, p.jid, "n-muted", muted=[room])
        await a.stop()
        b = await muc_login(live, "p14gb", PW, "c2s-a")
        await joined(b, room, "bee")
        say(b, room, "group news")
        x = await p.next()
        node, f, opts = note(x)
        assert node == "n-all"
        assert f["message-count"] == "1"
        assert f["last-message-sender"].startswith(room)
        assert opts is None
        await p.nothing()
        b.send_message(mto="p14ga@" + D, mbody="direct", mtype="chat")
        got = sorted([note(await p.next())[0], note(await p.next())[0]])
        assert got == ["n-all", "n-muted"]
        await b.stop()
        await p.c.stop()

    run(scenario())


def test_push_disable_stops_notifications_XEP_0357(live, make_user):
    """disable with a node removes that registration; without a node,
    every registration for that app server; no publish follows."""
    for u in ("p14da", "p14db", "p14dapp"):
        make_user(u, PW)

    async def scenario():
        p = AppServer(await login(live, "p14dapp", PW, "c2s-b", "app"))
        a = await login(live, "p14da", PW, "c2s-a", "phone")
        for n in ("d1", "d2", "d3"):
            await enable(a, p.jid, n)
        await enable(a, p.jid, "d1", secret="replaced")  # same row
        assert regs("p14da") == ",".join("%s %s" % (p.jid, n)
                                          for n in ("d1", "d2", "d3"))
        await disable(a, p.jid, "d2")
        assert regs("p14da") == ",".join("%s %s" % (p.jid, n)
                                          for n in ("d1", "d3"))
        await a.stop()
        b = await login(live, "p14db", PW, "c2s-a", "desk")
        b.send_message(mto="p14da@" + D, mbody="one", mtype="chat")
        got = sorted([note(await p.next())[0], note(await p.next())[0]])
        assert got == ["d1", "d3"]
        await p.nothing()
        a = await login(live, "p14da", PW, "c2s-a", "phone")
        await disable(a, p.jid)
        assert regs("p14da") == ""
        await a.stop()
        b.send_message(mto="p14da@" + D, mbody="two", mtype="chat")
        await p.nothing()
        await b.stop()
        await p.c.stop()

    run(scenario())


def test_push_bad_enable_XEP_0357(live, make_user):
    """Missing jid or node, a malformed form: bad-request; a JID that does
    not prepare: jid-malformed; someone else's account: forbidden. Nothing
    is stored."""
    for u in ("p14ba", "p14bo"):
        make_user(u, PW)

    async def scenario():
        a = await login(live, "p14ba", PW, "c2s-a", "phone")
        bad = [
            enable_xml(None, "n"),
            enable_xml("push.example", None),
            enable_xml("push.example", ""),
            "<disable xmlns='%s' node='n'/>" % NS_PUSH,
            "<enable xmlns='%s' jid='push.example' node='n'><x xmlns='%s' "
            "type='submit'><field var='FORM_TYPE'><value>urn:other</value>"
            "</field></x></enable>" % (NS_PUSH, NS_DATA),
            "<enable xmlns='%s' jid='push.example' node='n'><x xmlns='%s' "
            "type='form'/></enable>" % (NS_PUSH, NS_DATA),
        ]
        for payload in bad:
            assert await iq_error(a, "set", None, payload) == "bad-request", \
                payload
        assert await iq_error(a, "get", None, enable_xml(
            "push.example", "n")) == "bad-request"
        assert await iq_error(a, "set", None, enable_xml(
            "a@@b", "n")) == "jid-malformed"
        assert await iq_error(a, "set", "p14bo@" + D, enable_xml(
            "push.example", "n")) == "forbidden"
        assert regs("p14ba") == ""
        assert regs("p14bo") == ""
        await a.stop()

    run(scenario())


def test_push_app_server_error_removes_registration_XEP_0357(live,
                                                             make_user):
    """XEP-0357 section 6: a transient error (type wait) keeps the
    registration; a final one (item-not-found, cancel) removes it, and no
    publish follows."""
    for u in ("p14ea", "p14eb", "p14eapp"):
        make_user(u, PW)

    async def scenario():
        p = AppServer(await login(live, "p14eapp", PW, "c2s-b", "app"))
        a = await login(live, "p14ea", PW, "c2s-a", "phone")
        await enable(a, p.jid, "e1")
        await a.stop()
        b = await login(live, "p14eb", PW, "c2s-a", "desk")
        mark = live.log_mark("presenced")
        p.answer = ("wait", "resource-constraint")
        b.send_message(mto="p14ea@" + D, mbody="one", mtype="chat")
        await p.next()
        live.wait_log("presenced", "transient error, kept", timeout=5,
                      since=mark)
        assert regs("p14ea") == "%s e1" % p.jid
        p.answer = ("cancel", "item-not-found")
        b.send_message(mto="p14ea@" + D, mbody="two", mtype="chat")
        await p.next()
        await wait_regs("p14ea", "")
        b.send_message(mto="p14ea@" + D, mbody="three", mtype="chat")
        await p.nothing()
        await b.stop()
        await p.c.stop()

    run(scenario())


def test_push_registration_survives_presenced_restart_XEP_0357(live,
                                                               make_user):
    """Registrations live in PostgreSQL: after kiln-presenced restarts, a
    message stored offline is still notified."""
    for u in ("p14ra", "p14rb", "p14rapp"):
        make_user(u, PW)

    async def enable_it():
        a = await login(live, "p14ra", PW, "c2s-a", "phone")
        await enable(a, "p14rapp@%s/app" % D, "r1")
        await a.stop()

    run(enable_it())
    live.restart("presenced")

    async def after():
        p = AppServer(await login(live, "p14rapp", PW, "c2s-b", "app"))
        b = await login(live, "p14rb", PW, "c2s-a", "desk")
        b.send_message(mto="p14ra@" + D, mbody="after restart", mtype="chat")
        node, f, _ = note(await p.next())
        assert node == "r1"
        assert f["last-message-sender"] == "p14rb@%s/desk" % D
        await b.stop()
        await p.c.stop()

    run(after())


def test_push_include_body_config_XEP_0357(live, make_user):
    """presenced.push_include_body = true adds last-message-body (cut at
    1 KiB on a UTF-8 boundary); presenced runs with a copy of the config
    that says so, then with the usual one again."""
    for u in ("p14ya", "p14yb", "p14yapp"):
        make_user(u, PW)
    with open(CONF) as f:
        text = f.read()
    if re.search(r"^presenced\s*=\s*\{", text, re.M):
        text = re.sub(r"^(presenced\s*=\s*\{)",
                      r"\1\n  push_include_body = true;", text, count=1,
                      flags=re.M)
    else:
        text += "\npresenced = {\n  push_include_body = true;\n};\n"
    alt = os.path.join(VAR, "kiln-push-body.conf")
    with open(alt, "w") as f:
        f.write(text)
    proc = live.procs["presenced"]
    argv = proc.argv
    proc.stop()
    proc.argv = argv[:-1] + [alt]
    try:
        proc.start()

        async def scenario():
            p = AppServer(await login(live, "p14yapp", PW, "c2s-b", "app"))
            a = await login(live, "p14ya", PW, "c2s-a", "phone")
            await enable(a, p.jid, "y1")
            await a.stop()
            b = await login(live, "p14yb", PW, "c2s-a", "desk")
            b.send_message(mto="p14ya@" + D, mbody="secret plans <&>",
                           mtype="chat")
            _, f, _ = note(await p.next())
            assert f["last-message-body"] == "secret plans <&>"
            long_body = "\u00e9" * 600  # 1200 bytes of UTF-8
            b.send_message(mto="p14ya@" + D, mbody=long_body, mtype="chat")
            _, f, _ = note(await p.next())
            assert f["last-message-body"] == "\u00e9" * 512
            await b.stop()
            await p.c.stop()

        run(scenario())
    finally:
        proc.stop()
        proc.argv = argv
        proc.start()
