"""26 client state indication (XEP-0352), issue 11.

The watcher's inactive phone is on c2s-a, its five contacts on c2s-b.
Fences, not sleeps: an observer user on c2s-a has the same five contacts;
a contact's presence broadcast is one multicast that the router splits
per node, so c2s-a handles the observer's copy and the phone's copy in
one step: once the observer saw a status, the phone's copy is in c2s-a
(held or written). A ping to the server after <inactive/> or <active/>
fences the nonza (c2s handles a client's input in order).

What an inactive session holds (c2s/c2s_csi.c): presence broadcasts and
standalone chat states, only the newest per sender full JID; everything
else (a message with a body, an iq, ...) first flushes what is held.
"""

import asyncio
import os
import re
import subprocess
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

import conftest
from test_05_roster import D, presenced, roster_row  # noqa: F401
from xmpp_client import Client, iq, login, run

PW = "secret-pw"
N = 5
NS_CS = "http://jabber.org/protocol/chatstates"


class Seq:
    """Every presence and message one client receives, in stream order."""

    def __init__(self, c):
        self.got = []
        c.add_event_handler("presence", self._p)
        # every message, bodyless ones included (slixmpp's "message"
        # event skips a bare chat state)
        c.register_handler(Callback("csi26 messages",
                                    MatchXPath("{jabber:client}message"),
                                    self._m))

    def _p(self, p):
        self.got.append(("presence", str(p["from"]), p["type"] or "available",
                         p["status"] or ""))

    def _m(self, m):
        cs = [e.tag.split("}")[1] for e in m.xml
              if e.tag.startswith("{%s}" % NS_CS)]
        self.got.append(("message", str(m["from"]), m["body"] or "",
                         ",".join(cs)))

    async def until(self, pred, timeout=20):
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while not pred(self.got):
            if loop.time() > deadline:
                raise AssertionError("still waiting; got %s" % self.got)
            await asyncio.sleep(0.02)


def statuses(got):
    """from -> the statuses it sent, in order."""
    out = {}
    for kind, frm, t, s in got:
        if kind == "presence":
            out.setdefault(frm, []).append(s)
    return out


def saw_all(jids, status_of):
    return lambda got: all(status_of(j) in statuses(got).get(j, ())
                           for j in jids)


async def fence_nonza(c):
    await iq(c, "get", D, "<ping xmlns='urn:xmpp:ping'/>")


async def scenario(cl):
    users = ["csi26w", "csi26o"] + ["csi26c%d" % i for i in range(N)]
    contacts = []
    for i in range(N):
        contacts.append(await login(cl, "csi26c%d" % i, PW, node="c2s-b",
                                    resource="r"))
    cj = ["csi26c%d@%s/r" % (i, D) for i in range(N)]
    obs = await login(cl, "csi26o", PW, node="c2s-a", resource="o")
    oseq = Seq(obs)
    w = Client("csi26w@%s/phone" % D, PW, cl.ports["c2s-a"]["starttls"],
               cl.cert)
    w.register_plugin("xep_0352")
    wseq = Seq(w)
    await w.start()
    try:
        # The feature was in the post-bind stream features.
        assert w.plugin["xep_0352"].enabled, "no <csi/> stream feature"
        await wseq.until(saw_all(cj, lambda j: ""))
        await oseq.until(saw_all(cj, lambda j: ""))

        # ---- inactive: hold, newest per contact, flush before a body
        w.plugin["xep_0352"].send_inactive()
        await fence_nonza(w)
        start = len(wseq.got)
        comp = contacts[0].make_message(mto=w.boundjid.full, mtype="chat")
        comp.xml.append(ET.Element("{%s}composing" % NS_CS))
        comp.send()
        for rnd in (1, 2, 3):
            for i, c in enumerate(contacts):
                c.send_presence(pstatus="r%d-%d" % (rnd, i), pshow="away")
            if rnd == 2:
                p = contacts[0].make_message(mto=w.boundjid.full,
                                             mtype="chat")
                p.xml.append(ET.Element("{%s}paused" % NS_CS))
                p.send()
        await oseq.until(saw_all(cj, lambda j: "r3-%d" % cj.index(j)))
        # Held: the phone got nothing (a leak would show the rounds 1-2).
        contacts[1].send_message(mto=w.boundjid.full, mbody="hello",
                                 mtype="chat")
        await wseq.until(lambda g: any(x[2] == "hello" for x in g[start:]))
        got = wseq.got[start:]
        assert got[-1] == ("message", cj[1], "hello", ""), got
        pres = [x for x in got if x[0] == "presence"]
        assert sorted((x[1], x[3]) for x in pres) == sorted(
            (j, "r3-%d" % i) for i, j in enumerate(cj)), got
        msgs = [x for x in got[:-1] if x[0] == "message"]
        # Of the chat states only the newest, 'paused', survives.
        assert msgs == [("message", cj[0], "", "paused")], got
        assert len(got) == N + 2, got

        # ---- active flushes
        start = len(wseq.got)
        for i, c in enumerate(contacts):
            c.send_presence(pstatus="r4-%d" % i)
        await oseq.until(saw_all(cj, lambda j: "r4-%d" % cj.index(j)))
        await fence_nonza(w)  # a ping answered by c2s-a itself: not urgent
        assert wseq.got[start:] == [], wseq.got[start:]
        w.plugin["xep_0352"].send_active()
        await fence_nonza(w)
        got = wseq.got[start:]
        assert sorted((x[1], x[3]) for x in got) == sorted(
            (j, "r4-%d" % i) for i, j in enumerate(cj)), got

        # ---- an iq is never held, and flushes before it
        w.plugin["xep_0352"].send_inactive()
        await fence_nonza(w)
        start = len(wseq.got)
        for i, c in enumerate(contacts):
            c.send_presence(pstatus="r5-%d" % i)
        await oseq.until(saw_all(cj, lambda j: "r5-%d" % cj.index(j)))
        r = await iq(contacts[2], "get", w.boundjid.full,
                     "<ping xmlns='urn:xmpp:ping'/>")
        assert r["type"] == "result"
        got = wseq.got[start:]
        assert sorted((x[1], x[3]) for x in got) == sorted(
            (j, "r5-%d" % i) for i, j in enumerate(cj)), got
    finally:
        for c in contacts + [obs, w]:
            await c.stop()
    return users


def test_csi_holds_presence_and_chat_states_until_urgent(presenced,
                                                         make_user):
    """XEP-0352 across nodes: <csi/> advertised; an inactive phone gets
    none of its 5 contacts' status changes until a chat message with a
    body, then exactly each contact's newest presence and the newest
    chat state before it; <active/> flushes; an iq is not held."""
    for u in ["csi26w", "csi26o"] + ["csi26c%d" % i for i in range(N)]:
        make_user(u, PW)
    for i in range(N):
        for u in ("csi26w", "csi26o"):
            roster_row(u, "csi26c%d" % i, "both")
            roster_row("csi26c%d" % i, u, "both")
    run(scenario(presenced), timeout=120)


def test_csi_unknown_nonza_fails(presenced, make_user):
    """An unknown element in the CSI namespace is a stream error, not
    silently taken for a state."""
    make_user("csi26x", PW)

    async def go():
        c = await login(presenced, "csi26x", PW, node="c2s-b")
        fut = asyncio.get_event_loop().create_future()
        c.add_event_handler("disconnected",
                            lambda _: fut.done() or fut.set_result(True))
        c.send_raw("<sleepy xmlns='urn:xmpp:csi:0'/>")
        await asyncio.wait_for(fut, 10)
        assert "unsupported-stanza-type" in c.stream_errors, c.stream_errors

    run(go(), timeout=30)


def test_csi_savings_benchmark_100_contacts(presenced):
    """tests/bench/csi_savings at its default size: 100 contacts on c2s-b
    change status 5 times; the inactive phone on c2s-a gets exactly 100
    presences (the newest of each) in fewer bytes and wake-ups than the
    active one."""
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(
        [os.path.join(here, "..", "bench", "csi_savings"), "--config",
         conftest.CONF, "--kilnctl", os.path.join(conftest.BIN, "kilnctl"),
         "--port", str(presenced.ports["c2s-a"]["starttls"]), "--port2",
         str(presenced.ports["c2s-b"]["starttls"])],
        capture_output=True, text=True, timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    f = dict(re.findall(r"(\w+)=(\d+)", r.stdout.split("RESULT")[1]))
    f = {k: int(v) for k, v in f.items()}
    assert f["active_presences"] == 500, f
    assert f["inactive_presences"] == 100, f
    assert f["inactive_bytes"] * 3 < f["active_bytes"], f
    assert f["inactive_wakeups"] < f["active_wakeups"], f
