"""A raw XEP-0114 component over asyncio streams, for the component tests.

    comp = await Component.connect(port, "gw.localhost", "gw-secret")
    comp.send("<message from='x@gw.localhost' to='alice@localhost'>...")
    st = await comp.next_stanza(lambda e: e.tag.endswith("message"))

It runs on the same asyncio loop as the slixmpp clients (xmpp_client.run),
so a test can drive both without threads. Received top-level elements are
queued as ElementTree elements (namespace jabber:component:accept); a
stream error is kept in .stream_error and the queue gets None at EOF.
"""

import asyncio
import hashlib
import time
import xml.etree.ElementTree as ET

NS = "jabber:component:accept"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS_ERR = "urn:ietf:params:xml:ns:xmpp-streams"


def q(tag, ns=NS):
    return "{%s}%s" % (ns, tag)


class Component:
    def __init__(self, reader, writer, domain):
        self.reader = reader
        self.writer = writer
        self.domain = domain
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.stream_id = None
        self.stream_error = None
        self.header = asyncio.get_event_loop().create_future()
        self.stanzas = asyncio.Queue()
        self.eof = False
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, port, domain):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        c = cls(r, w, domain)
        c.write("<?xml version='1.0'?><stream:stream xmlns='%s' "
                "xmlns:stream='%s' to='%s'>" % (NS, NS_STREAM, domain))
        await asyncio.wait_for(c.header, 10)
        return c

    @classmethod
    async def connect(cls, port, domain, secret):
        """Open and authenticate; fails the test if refused."""
        c = await cls.open(port, domain)
        ok = await c.handshake(secret)
        assert ok, "handshake refused: %s" % c.stream_error
        return c

    async def handshake(self, secret):
        digest = hashlib.sha1((self.stream_id + secret).encode()).hexdigest()
        self.write("<handshake>%s</handshake>" % digest)
        e = await self.next_stanza(lambda e: True, timeout=10)
        return e is not None and e.tag == q("handshake")

    def write(self, data):
        self.writer.write(data.encode() if isinstance(data, str) else data)

    send = write

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.parser.feed(data)
                for ev, el in self.parser.read_events():
                    if ev == "start":
                        self.depth += 1
                        if self.depth == 1:
                            self.stream_id = el.get("id")
                            if not self.header.done():
                                self.header.set_result(el)
                    else:
                        self.depth -= 1
                        if self.depth == 1:
                            if el.tag == "{%s}error" % NS_STREAM:
                                for ch in el:
                                    if ch.tag.startswith(
                                            "{%s}" % NS_STREAMS_ERR) and \
                                            not ch.tag.endswith("}text"):
                                        self.stream_error = ch.tag.split(
                                            "}")[1]
                            self.stanzas.put_nowait(el)
        except (ConnectionError, ET.ParseError):
            pass
        self.eof = True
        if not self.header.done():
            self.header.set_exception(ConnectionError("closed"))
        self.stanzas.put_nowait(None)

    async def next_stanza(self, pred, timeout=5):
        """The next element matching pred; None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("component %s: no matching stanza"
                                     % self.domain)
            e = await asyncio.wait_for(self.stanzas.get(), left)
            if e is None:
                self.stanzas.put_nowait(None)
                return None
            if pred(e):
                return e

    async def closed(self, timeout=10):
        """Wait until the server closed the stream; returns its error."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                raise AssertionError("stream not closed")
            await asyncio.sleep(0.02)
        return self.stream_error

    async def close(self):
        try:
            self.write("</stream:stream>")
            await self.writer.drain()
        except ConnectionError:
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.task, 5)
        except asyncio.TimeoutError:
            self.task.cancel()

    def abort(self):
        self.writer.transport.abort()
