#!/usr/bin/python3
"""tests/cluster/driver.py - XMPP load with exact accounting.

Runs in the `load` namespace of the cluster harness (tests/cluster/run.py
starts it with `ip netns exec`). USERS clients (cu0..), each over STARTTLS
+ SCRAM-SHA-1 with XEP-0198 stream management (resume='true'), send chat
messages to random other users at RATE messages/s in total, answer pings,
acknowledge what they receive, and log out and in again now and then
(churn: messages to them meanwhile go to offline storage and must come at
the next login).

Accounting, per message id (`[TAG]S.N`, also in the body `kc ...`):
- accepted: covered by an <a h/> (or <resumed h/>, <failed h/>) of the
  server: the server took responsibility for it;
- in doubt: sent, but the session ended and was not resumed before the
  server acknowledged it (it may or may not have been taken);
- bounced: came back as a message of type error (the server refused it
  explicitly; not counted as accepted);
- delivered: received by its recipient (any connection, live or from
  offline storage); received more than once = duplicated, split in
  "unacked" (the first copy was received after the client's last <a/> on
  a connection that then ended: XEP-0198 allows the server to send it
  again) and the rest.
lost = accepted, not bounced, never delivered after the drain.

Control on stdin, one command a line: `fault NAME` (records the time of a
fault; its recovery time is computed at the end), `cut HOST` and `heal
HOST` (a node's address cut off from the router and back: duplicates
whose first copy came on it around then are at least once), `stop` (stop sending,
drain, print the report). Status on stdout: one JSON line every 0.5 s
({"t":..., "online":..., "reconnecting":..., "accepted":..., ...}), then
the report as one JSON line starting with `REPORT `.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import os
import random
import resource
import ssl
import sys
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
NS_C = "jabber:client"
STANZAS = ("{%s}message" % NS_C, "{%s}presence" % NS_C, "{%s}iq" % NS_C)

now = time.monotonic


class Closed(Exception):
    pass


class XStream:
    """One XML stream over an asyncio reader: yields top-level elements."""

    def __init__(self, reader):
        self.reader = reader
        self.reset()

    def reset(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None
        self.header = None
        self.pending = collections.deque()
        self.closed = False

    async def next(self, timeout=None):
        while not self.pending:
            if self.closed:
                raise Closed("stream closed by server")
            if timeout is None:
                data = await self.reader.read(65536)
            else:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise Closed("EOF")
            try:
                self.parser.feed(data)
            except ET.ParseError as e:
                raise Closed("parse error: %s" % e)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    if self.depth == 0:
                        self.root = el
                        self.header = dict(el.attrib)
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.pending.append(el)
                        self.root.remove(el)
                    elif self.depth == 0:
                        self.closed = True
        return self.pending.popleft()


SALTED = {}


def scram_salted(password, salt, it):
    k = (password, salt, it)
    if k not in SALTED:
        SALTED[k] = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, it)
    return SALTED[k]


class Stats:
    def __init__(self):
        self.sent = {}  # id -> (send time, recipient index)
        self.accepted = {}  # id -> ack time
        self.doubt = set()
        self.bounced = set()
        self.recv = {}  # id -> [count, first time]
        self.unacked_first = set()  # ids whose first copy was not acked
        self.to_absent = set()  # ids sent while the recipient was not online
        self.node_loss_first = set()  # first copy shortly before an abnormal end
        self.logins = 0
        self.resumes = 0
        self.resume_failed = 0
        self.conn_lost = 0
        self.login_errors = 0
        self.nodes = collections.Counter()  # logins per c2s address
        self.samples = []  # (t, online, reconnecting)
        self.faults = []  # (name, t)
        self.cuts = []  # [host, t cut off, t healed or None] (partitions)


ST = Stats()


class Client:
    def __init__(self, d, idx):
        self.d = d
        self.idx = idx
        self.user = d.a.user_fmt % idx
        self.state = "offline"  # offline | connecting | online | resting
        self.reconnecting = False
        self.sm_id = None
        self.sm_in = 0  # stanzas received since enable (our h)
        self.sm_out = 0  # stanzas sent since enable
        self.unacked = collections.deque()  # (n, msg id or None, xml)
        # (sm_in index, msg id) received, and not known to be acknowledged
        # to the server: our <a/> is known to have reached it once the
        # server acknowledged a stanza we sent after that <a/> (TCP keeps
        # the order)
        self.recv_log = []
        self.confirm = collections.deque()  # (our sm_out, our h) at each <a/>
        self.recent = collections.deque()  # (time, msg id) on this connection
        self.last_a_sent = 0
        self.r_pending_since = None
        self.seq = 0
        self.gen = 0
        self.writer = None
        self.xs = None
        self.node_hint = idx
        self.want_logout = False
        self.node = None

    # ---- output
    def write(self, s):
        self.writer.write(s.encode())

    def send_stanza(self, xml, mid=None):
        self.sm_out += 1
        self.unacked.append((self.sm_out, mid, xml))
        self.write(xml)

    def ack_upto(self, h):
        while self.unacked and self.unacked[0][0] <= h:
            _, mid, _ = self.unacked.popleft()
            if mid is not None and mid not in ST.accepted:
                ST.accepted[mid] = now()
                ST.doubt.discard(mid)
        upto = None
        while self.confirm and self.confirm[0][0] < h:
            upto = self.confirm.popleft()[1]
        if upto is not None:
            self.confirmed(upto)

    def confirmed(self, upto):
        """The server has our h >= upto: those receipts are settled."""
        self.recv_log = [x for x in self.recv_log if x[0] > upto]

    def send_a(self):
        self.write("<a xmlns='%s' h='%d'/>" % (NS_SM, self.sm_in))
        self.last_a_sent = self.sm_in
        self.confirm.append((self.sm_out, self.sm_in))

    def abandon_unacked(self):
        for _, mid, _ in self.unacked:
            if mid is not None and mid not in ST.accepted:
                ST.doubt.add(mid)
        self.unacked.clear()

    def conn_ended(self):
        """The session is gone for good: what we received and the server
        may not know we did may legitimately come again (XEP-0198)."""
        self.confirm.clear()
        for _, mid in self.recv_log:
            if ST.recv.get(mid, [0])[0] == 1:
                self.d.log("%s: %s received, not acked at the end" % (self.user, mid))
                ST.unacked_first.add(mid)
        self.recv_log.clear()

    # ---- input
    def on_stanza(self, el):
        tag = el.tag
        if tag in STANZAS:
            self.sm_in += 1
            if tag.endswith("}message"):
                self.on_message(el)
            elif tag.endswith("}iq") and el.get("type") in ("get", "set"):
                self.send_stanza("<iq type='result' id=%s to=%s/>" %
                                 (quoteattr(el.get("id", "")),
                                  quoteattr(el.get("from", ""))))
            return
        if tag == "{%s}r" % NS_SM:
            self.send_a()
        elif tag == "{%s}a" % NS_SM:
            self.ack_upto(int(el.get("h", "0")))
            self.r_pending_since = None
        elif tag == "{%s}error" % NS_STREAM:
            raise Closed("stream error %s" % [c.tag for c in el])

    def on_message(self, el):
        body = el.find("{%s}body" % NS_C)
        text = body.text if body is not None and body.text else ""
        if el.get("type") == "error":
            mid = el.get("id", "")
            if mid in ST.sent:
                ST.bounced.add(mid)
            return
        if not text.startswith("kc "):
            return
        mid = text[3:].strip()
        r = ST.recv.get(mid)
        delayed = el.find("{urn:xmpp:delay}delay") is not None
        if r is None:
            ST.recv[mid] = [1, now(), self.node, delayed]
        else:
            r[0] += 1
            self.d.log("%s: %s again on %s (delay %s; first %.3f on %s, delay %s)" % (
                self.user, mid, self.node, delayed, r[1], r[2], r[3]))
        self.recv_log.append((self.sm_in, mid))
        self.recent.append((now(), mid))

    # ---- connection
    async def connect_and_login(self):
        d = self.d
        addrs = d.addrs()
        if not addrs:
            raise Closed("no c2s address")
        self.node_hint += 1
        host = addrs[self.node_hint % len(addrs)]
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, d.a.port), d.a.connect_timeout)
        self.writer = writer
        self.node = host
        self.r_pending_since = None
        xs = XStream(reader)
        self.xs = xs
        to = d.a.domain
        hdr = ("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
               "xmlns:stream='%s' version='1.0'>" % (to, NS_STREAM))
        t = d.a.step_timeout
        self.write(hdr)
        feats = await xs.next(t)
        if feats.find("{%s}starttls" % NS_TLS) is None:
            raise Closed("no starttls")
        self.write("<starttls xmlns='%s'/>" % NS_TLS)
        el = await xs.next(t)
        if el.tag != "{%s}proceed" % NS_TLS:
            raise Closed("starttls refused")
        await asyncio.wait_for(writer.start_tls(d.tls, server_hostname=to), t)
        xs.reset()
        self.write(hdr)
        feats = await xs.next(t)
        # SCRAM-SHA-1
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=%s,r=%s" % (self.user, nonce)
        self.write("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" %
                   (NS_SASL, base64.b64encode(("n,," + first_bare).encode()).decode()))
        el = await xs.next(t)
        if el.tag != "{%s}challenge" % NS_SASL:
            raise Closed("sasl: %s" % el.tag)
        sfirst = base64.b64decode(el.text).decode()
        parts = dict(p.split("=", 1) for p in sfirst.split(","))
        salted = scram_salted(d.a.password, base64.b64decode(parts["s"]), int(parts["i"]))
        cfinal = "c=biws,r=" + parts["r"]
        authmsg = ",".join((first_bare, sfirst, cfinal)).encode()
        ckey = hmac.new(salted, b"Client Key", "sha1").digest()
        stored = hashlib.sha1(ckey).digest()
        sig = hmac.new(stored, authmsg, "sha1").digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        resp = cfinal + ",p=" + base64.b64encode(proof).decode()
        self.write("<response xmlns='%s'>%s</response>" %
                   (NS_SASL, base64.b64encode(resp.encode()).decode()))
        el = await xs.next(t)
        if el.tag != "{%s}success" % NS_SASL:
            raise Closed("sasl failed: %s" % [c.tag for c in el])
        xs.reset()
        self.write(hdr)
        feats = await xs.next(t)
        # resume?
        if self.sm_id:
            self.write("<resume xmlns='%s' previd='%s' h='%d'/>" %
                       (NS_SM, self.sm_id, self.sm_in))
            while True:
                el = await xs.next(t)
                if el.tag in STANZAS:
                    continue
                break
            if el.tag == "{%s}resumed" % NS_SM:
                self.ack_upto(int(el.get("h", "0")))
                self.confirmed(self.sm_in)  # <resume h/> told the server
                self.confirm.clear()
                self.last_a_sent = self.sm_in
                for _, _, xml in self.unacked:
                    self.write(xml)
                ST.resumes += 1
                self.d.log("%s: resumed on %s (h %s)" % (self.user, host, el.get("h")))
                ST.nodes[host] += 1
                return
            ST.resume_failed += 1
            if el.get("h") is not None:
                self.ack_upto(int(el.get("h")))
            self.abandon_unacked()
            self.sm_id = None
        self.gen += 1
        self.write("<iq type='set' id='b1'><bind xmlns='%s'><resource>r%d</resource>"
                   "</bind></iq>" % (NS_BIND, self.gen))
        el = await xs.next(t)
        if el.get("type") != "result":
            raise Closed("bind failed")
        self.conn_ended()  # the old session's receipts, if any
        self.sm_in = 0
        self.sm_out = 0
        self.unacked.clear()
        self.last_a_sent = 0
        self.write("<enable xmlns='%s' resume='true'/>" % NS_SM)
        while True:
            el = await xs.next(t)
            if el.tag == "{%s}enabled" % NS_SM:
                self.sm_id = el.get("id")
                break
            if el.tag == "{%s}failed" % NS_SM:
                raise Closed("sm enable failed")
            self.on_stanza(el)
        self.send_stanza("<presence/>")
        self.d.log("%s: logged in on %s as r%d" % (self.user, host, self.gen))
        ST.logins += 1
        ST.nodes[host] += 1

    async def reader_loop(self):
        while True:
            el = await self.xs.next()
            self.on_stanza(el)

    async def run(self):
        d = self.d
        backoff = 0.2
        while not d.stopping:
            self.state = "connecting"
            try:
                await self.connect_and_login()
            except Exception as e:  # noqa: BLE001 - whatever the server sent
                # (a stream error instead of a challenge, a reset...): a
                # failed attempt, never the end of this client
                ST.login_errors += 1
                d.log("%s: login failed (%s): %s: %s" % (self.user, self.node,
                                                        type(e).__name__, e))
                self.close_writer()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.2
            self.recent = collections.deque(maxlen=4096)
            self.state = "online"
            self.reconnecting = False
            rd = asyncio.ensure_future(self.reader_loop())
            tk = asyncio.ensure_future(self.ticker())
            done, _ = await asyncio.wait([rd, tk], return_when=asyncio.FIRST_COMPLETED)
            for f in (rd, tk):
                if not f.done():
                    f.cancel()
            closed_by_server = False
            for f in (rd, tk):
                try:
                    await f
                except (asyncio.CancelledError, Exception) as e:  # noqa: BLE001
                    if not isinstance(e, asyncio.CancelledError):
                        d.log("%s: connection to %s ended: %s" % (self.user, self.node, e))
                        closed_by_server |= str(e) == "stream closed by server"
            self.close_writer()
            if self.want_logout:
                self.d.log("%s: logged out" % self.user)
                if closed_by_server:
                    # it read our last <a/> before our close
                    self.confirmed(self.last_a_sent)
                self.conn_ended()
                # clean logout: everything of ours was acknowledged; rest, then
                # a fresh session (offline messages come at its login)
                self.want_logout = False
                self.abandon_unacked()
                self.sm_id = None
                self.state = "resting"
                await asyncio.sleep(d.a.rest_s * (0.5 + random.random()))
                continue
            if d.stopping:
                break
            # an abnormal end (node killed, cut off, stopped): what we got
            # in the last node_timeout + a margin may have been acknowledged
            # to that node only, and the router's copy of it rerouted: at
            # least once by design (docs/ARCHITECTURE.md)
            tl = now()
            for ts, mid in self.recent:
                if tl - ts < d.a.node_loss_window and ST.recv.get(mid, [0])[0] == 1:
                    ST.node_loss_first.add(mid)
            ST.conn_lost += 1
            self.reconnecting = True
            self.state = "connecting"
            await asyncio.sleep(0.1 + random.random() * 0.4)
        self.state = "offline"

    def close_writer(self):
        if self.writer is not None:
            try:
                self.writer.transport.abort()
            except Exception:
                pass
            self.writer = None

    async def ticker(self):
        """Ack requests, our acks, liveness, sending, churn."""
        d = self.d
        period = d.a.users / max(d.a.rate, 0.001)
        next_send = now() + random.random() * period
        next_tick = now()
        while True:
            t = now()
            if t >= next_tick:
                next_tick = t + 0.5
                if self.sm_in != self.last_a_sent:
                    self.send_a()
                if self.unacked:
                    if self.r_pending_since is None:
                        self.r_pending_since = t
                        self.write("<r xmlns='%s'/>" % NS_SM)
                    elif t - self.r_pending_since > d.a.dead_after:
                        raise Closed("no <a/> for %.1f s" % (t - self.r_pending_since))
                    elif t - self.r_pending_since > 1.0:
                        self.write("<r xmlns='%s'/>" % NS_SM)
            if self.want_logout and not self.unacked:
                self.send_a()
                self.write("</stream:stream>")
                # read until the server closes (reader_loop ends)
                await asyncio.sleep(d.a.dead_after)
                raise Closed("no close from server")
            if d.sending and t >= next_send and not self.want_logout:
                next_send = max(next_send + period, t - period)
                self.send_message()
                if d.a.churn > 0 and random.random() < d.a.churn * period:
                    self.want_logout = True
            await asyncio.sleep(min(0.1, max(0.0, min(next_tick, next_send) - now())))
            await self.writer.drain()

    def send_message(self):
        n = self.d.a.users
        to = random.randrange(n - 1)
        if to >= self.idx:
            to += 1
        self.seq += 1
        mid = "%s%d.%d" % (self.d.a.tag, self.idx, self.seq)
        ST.sent[mid] = (now(), to)
        if self.d.clients[to].state != "online":
            ST.to_absent.add(mid)
        self.send_stanza("<message to='%s@%s' type='chat' id='%s'><body>kc %s</body>"
                         "</message>" % (self.d.a.user_fmt % to, self.d.a.domain, mid, mid),
                         mid)


class Driver:
    def __init__(self, a):
        self.a = a
        self.stopping = False
        self.sending = True
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE
        self.clients = [Client(self, i) for i in range(a.users)]
        self.node_list = a.c2s.split(",")
        self.logf = open(a.log, "a") if a.log else None
        # The processes log wall-clock times: one line to map ours to them.
        t = time.time()
        self.log("clock: wall %s%s" % (time.strftime("%H:%M:%S", time.localtime(t)),
                                       ("%.3f" % (t % 1))[1:]))

    def addrs(self):
        return self.node_list

    def log(self, s):
        if self.logf:
            self.logf.write("%.3f %s\n" % (now(), s))

    async def control(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return "stop"
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "fault":
                ST.faults.append((" ".join(words[1:]), now()))
                self.log("fault " + " ".join(words[1:]))
            elif words[0] == "cut":
                ST.cuts.append([words[1], now(), None])
            elif words[0] == "heal":
                for c in ST.cuts:
                    if c[0] == words[1] and c[2] is None:
                        c[2] = now()
            elif words[0] == "nodes":
                self.node_list = words[1].split(",")
            elif words[0] == "stop":
                return "stop"

    def online(self):
        return sum(1 for c in self.clients if c.state == "online")

    def reconnecting(self):
        return sum(1 for c in self.clients if c.reconnecting)

    async def status(self):
        while True:
            o, r = self.online(), self.reconnecting()
            ST.samples.append((now(), o, r))
            delivered = sum(1 for m in ST.accepted if m in ST.recv)
            ever = sum(1 for c in self.clients if c.gen > 0)
            print(json.dumps({"t": now(), "online": o, "reconnecting": r, "ever": ever,
                              "sent": len(ST.sent), "accepted": len(ST.accepted),
                              "delivered": delivered}), flush=True)
            await asyncio.sleep(0.5)

    async def main(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        st = asyncio.ensure_future(self.status())
        tasks = []
        # logins spread over login_s seconds
        ctl = asyncio.ensure_future(self.control())
        for i, c in enumerate(self.clients):
            tasks.append(asyncio.ensure_future(c.run()))
            if self.a.login_s > 0:
                await asyncio.sleep(self.a.login_s / len(self.clients))
        await ctl
        # stop: no new messages; wait until every sent message is acked or
        # in doubt, then drain deliveries
        self.sending = False
        for c in self.clients:
            c.want_logout = False
        t_stop = now()
        deadline = t_stop + self.a.drain_s
        while now() < deadline:
            waiting = [c for c in self.clients if c.unacked and c.state == "online"]
            undelivered = [m for m in ST.accepted if m not in ST.recv and m not in ST.bounced]
            resting = [c for c in self.clients if c.state != "online"]
            if not waiting and not undelivered and not resting:
                break
            await asyncio.sleep(0.2)
        t_drain = now() - t_stop
        self.stopping = True
        # tasks cancelled below may hold a connection error nobody awaits
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: None)
        for c in self.clients:
            if c.writer is not None and c.state == "online":
                try:
                    c.send_a()
                    c.write("</stream:stream>")
                except Exception:
                    pass
        await asyncio.sleep(0.5)
        dead = [c.user for c, t in zip(self.clients, tasks)
                if t.done() and not t.cancelled() and t.exception() is not None]
        if dead:
            self.log("client tasks ended early: %s" % dead[:20])
        ST.dead_clients = len(dead)
        for t in tasks:
            t.cancel()
        st.cancel()
        await asyncio.gather(*tasks, st, return_exceptions=True)
        for c in self.clients:
            c.close_writer()
        return self.report(t_drain)

    def report(self, t_drain):
        acc = set(ST.accepted) - ST.bounced
        delivered = sum(1 for m in acc if m in ST.recv)
        lost = sorted(m for m in acc if m not in ST.recv)
        dups = [m for m, r in ST.recv.items() if r[0] > 1]
        dup_unacked = [m for m in dups if m in ST.unacked_first]
        w = self.a.node_loss_window

        def cut_first(m):
            # first copy received on a node around its cut from the router
            # (from node_loss_window before the cut until node_loss_window
            # after the heal, by when the node has heard it was declared
            # lost): the client's <a/> may have reached that node but not
            # the router, whose copy went on (at least once by design),
            # even if this client's connection later ended cleanly
            _, t1, host = ST.recv[m][:3]
            return any(host == h and t0 - w <= t1 <= (th if th else float("inf")) + w
                       for h, t0, th in ST.cuts)
        for m in dups:
            if m not in ST.unacked_first and cut_first(m):
                ST.node_loss_first.add(m)
        dup_node_loss = [m for m in dups if m not in ST.unacked_first
                         and m in ST.node_loss_first]
        doubt_delivered = sum(1 for m in ST.doubt if m in ST.recv and m not in acc)
        unknown = [m for m in ST.recv if m not in ST.sent]
        lat = sorted(ST.recv[m][1] - ST.sent[m][0] for m in acc if m in ST.recv)
        faults = []
        ends = [tf for _, tf in ST.faults[1:]] + [float("inf")]
        for (name, tf), te in zip(ST.faults, ends):
            w = [m for m in acc if tf <= ST.sent[m][0] < te]
            window = {"accepted": len(w), "delivered": sum(1 for m in w if m in ST.recv),
                      "lost": sum(1 for m in w if m not in ST.recv),
                      "duplicated": sum(1 for m in w if ST.recv.get(m, [0])[0] > 1)}
            faults.append({"name": name, "t": tf, "recovery_s": self.recovery(tf),
                           "window": window})
        return {
            "users": self.a.users, "sent": len(ST.sent), "accepted": len(acc),
            "delivered": delivered, "lost": len(lost), "lost_ids": lost[:20],
            "lost_detail": [(m, ST.sent[m][1], round(ST.sent[m][0], 3),
                             round(ST.accepted[m], 3)) for m in lost[:20]],
            "duplicated": len(dups), "dup_unacked": len(dup_unacked),
            "dup_node_loss": len(dup_node_loss),
            "dup_ids": [m for m in dups if m not in ST.unacked_first
                        and m not in ST.node_loss_first][:20],
            "in_doubt": len(ST.doubt - acc), "in_doubt_delivered": doubt_delivered,
            "bounced": len(ST.bounced), "unknown": len(unknown),
            "unknown_ids": sorted(unknown),
            # sent, never acknowledged (in doubt), not received: the
            # server may still have stored it; a later run may get it
            "doubt_undelivered_ids": sorted(m for m in ST.doubt
                                            if m not in acc and m not in ST.recv),
            "logins": ST.logins, "resumes": ST.resumes, "resume_failed": ST.resume_failed,
            "conn_lost": ST.conn_lost, "login_errors": ST.login_errors,
            "logins_by_node": dict(ST.nodes), "drain_s": round(t_drain, 2),
            "dead_clients": getattr(ST, "dead_clients", 0),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
            "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
            "faults": faults,
        }

    def recovery(self, tf):
        """Seconds from the fault until no client is reconnecting and every
        message sent in the following second that was accepted, to a
        recipient online then, reached it within 2 s; None if that never
        happened."""
        for t, _, r in ST.samples:
            if t < tf or r:
                continue
            window = [m for m, (ts, _) in ST.sent.items()
                      if t <= ts < t + 1.0 and m in ST.accepted and m not in ST.to_absent]
            if not window:
                continue
            if all(m in ST.recv and ST.recv[m][1] - ST.sent[m][0] < 2.0 for m in window):
                return round(t - tf, 2)
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--c2s", required=True, help="comma list of c2s addresses")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--user-fmt", default="cu%d")
    ap.add_argument("--password", default="pw")
    ap.add_argument("--rate", type=float, default=20.0, help="messages/s in total")
    ap.add_argument("--churn", type=float, default=0.01,
                    help="logouts per user per second")
    ap.add_argument("--rest-s", type=float, default=2.0)
    ap.add_argument("--login-s", type=float, default=2.0)
    ap.add_argument("--drain-s", type=float, default=60.0)
    ap.add_argument("--dead-after", type=float, default=6.0)
    ap.add_argument("--connect-timeout", type=float, default=3.0)
    ap.add_argument("--step-timeout", type=float, default=10.0)
    ap.add_argument("--node-loss-window", type=float, default=5.0,
                    help="seconds before an abnormal connection end whose receipts "
                    "may come again (router.node_timeout_ms + a heartbeat)")
    ap.add_argument("--log")
    ap.add_argument("--tag", default="", help="prefix of this run's message ids")
    a = ap.parse_args()
    d = Driver(a)
    rep = asyncio.run(d.main())
    print("REPORT " + json.dumps(rep), flush=True)


if __name__ == "__main__":
    main()
