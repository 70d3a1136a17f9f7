"""A small synchronous-looking wrapper around slixmpp for Kiln's tests.

Each Client connects to one c2s port (STARTTLS by default, or direct TLS)
and verifies the server certificate against the dev stack's self-signed
one. Received messages and presences are queued, so a test can wait for
exactly what it expects with a timeout, and assert nothing else came.

    run(coro) runs a coroutine on the loop slixmpp uses.
"""

import asyncio
import logging
import pathlib
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)


def loop():
    try:
        return asyncio.get_event_loop()
    except RuntimeError:
        lp = asyncio.new_event_loop()
        asyncio.set_event_loop(lp)
        return lp


def run(coro, timeout=30):
    return loop().run_until_complete(asyncio.wait_for(coro, timeout))


class AuthFailed(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, port, cert, mech=None, direct_tls=False):
        super().__init__(jid, password)
        self.port = port
        self.direct_tls = direct_tls
        self.ca_certs = pathlib.Path(cert)
        if mech:
            self["feature_mechanisms"].use_mech = mech
        self.register_plugin("xep_0199")  # ping
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.stream_errors = []
        self._ready = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_all_auth", self._on_fail)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("presence", self._on_presence)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)

    async def _on_start(self, _):
        if not self._ready.done():
            self._ready.set_result(True)

    def _on_fail(self, _):
        if not self._ready.done():
            self._ready.set_exception(AuthFailed(self.boundjid.bare))

    def _on_message(self, msg):
        self.messages.put_nowait(msg)

    def _on_presence(self, pres):
        self.presences.put_nowait(pres)

    def _on_stream_error(self, err):
        self.stream_errors.append(err["condition"])

    def _on_disconnected(self, _):
        if not self._ready.done():
            self._ready.set_exception(ConnectionError("disconnected"))

    async def start(self, presence=True, timeout=20):
        self.connect(("127.0.0.1", self.port), use_ssl=self.direct_tls,
                     force_starttls=not self.direct_tls)
        await asyncio.wait_for(self._ready, timeout)
        if presence:
            self.send_presence()
        return self

    async def next_message(self, timeout=5, body_only=False):
        msg = await asyncio.wait_for(self.messages.get(), timeout)
        return msg["body"] if body_only else msg

    async def no_message(self, wait=1.0):
        try:
            msg = await asyncio.wait_for(self.messages.get(), wait)
        except asyncio.TimeoutError:
            return True
        raise AssertionError("unexpected message: %s" % msg)

    async def stop(self):
        fut = asyncio.get_event_loop().create_future()
        self.add_event_handler("disconnected",
                               lambda _: fut.done() or fut.set_result(True))
        self.disconnect()
        try:
            await asyncio.wait_for(fut, 10)
        except asyncio.TimeoutError:
            self.abort()


async def login(cluster, user, password, node="c2s-a", resource=None, **kw):
    jid = "%s@%s" % (user, cluster.domain)
    if resource:
        jid += "/" + resource
    c = Client(jid, password, cluster.ports[node]["starttls"], cluster.cert,
               **kw)
    return await c.start()


# ---- helpers shared by the test files (MUC, PEP, push, storage) ----------

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = "http://jabber.org/protocol/muc#user"


def join(c, room, nick, history=None, password=None):
    x = ET.Element("{%s}x" % NS_MUC)
    if history is not None:
        ET.SubElement(x, "{%s}history" % NS_MUC, maxstanzas=str(history))
    if password is not None:
        ET.SubElement(x, "{%s}password" % NS_MUC).text = password
    p = c.make_presence(pto="%s/%s" % (room, nick))
    p.append(x)
    p.send()

async def next_presence(c, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching presence")
        p = await asyncio.wait_for(c.presences.get(), left)
        if pred(p):
            return p

async def next_message(c, pred, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching message")
        m = await asyncio.wait_for(c.messages.get(), left)
        if pred(m):
            return m

def codes(p):
    x = p.xml.find("{%s}x" % NS_USER)
    return set() if x is None else {
        s.get("code") for s in x.findall("{%s}status" % NS_USER)}

async def joined(c, room, nick, **kw):
    """Join and wait for the self-presence (status 110)."""
    join(c, room, nick, **kw)
    p = await next_presence(
        c, lambda p: str(p["from"]) == "%s/%s" % (room, nick) and
        (p["type"] == "error" or "110" in codes(p)))
    return p

async def iq(c, itype, to, payload):
    q = c.make_iq(ito=to, itype=itype)
    q.xml.append(ET.fromstring(payload))
    return await q.send(timeout=10)

async def iq_error(c, itype, to, payload):
    try:
        await iq(c, itype, to, payload)
    except IqError as e:
        return e.iq["error"]["condition"]
    raise AssertionError("expected an error")

def say(c, room, body):
    c.send_message(mto=room, mbody=body, mtype="groupchat")

def drain(q):
    while not q.empty():
        q.get_nowait()
