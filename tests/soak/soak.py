"""The soak driver (issue 16): churn against a running Kiln cluster, with
every one-to-one message counted, and the servers' memory sampled.

Used by `make soak` (tests/soak/run.sh: its own stack in var/soak) and by
tests/integration/test_30_soak.py (the short form, on the test cluster).
The cluster object is conftest.Cluster: procs, ports, kill9, start.

Users (SOAK users, a shared roster group so presence fans out, one
persistent group room) each loop: log in (STARTTLS or direct TLS, on a
random live node, XEP-0198 with resume), initial presence, join the room,
then for a random few seconds send chat messages to random users (online
or not), change presence, post to the room; then log out cleanly (most
times) or drop the TCP connection; stay offline a moment. Every few
minutes one c2s node is killed with SIGKILL and started again.

Counting, for chat messages (body "soak:<id>"):
- accepted: the sender's stream management <a h/> covered it. A message
  sent but not acknowledged when the sender's connection died is "in
  doubt" (it may or may not have gone out; never counted as lost).
- received: a client got it. It is "acked" once the client's own <a h/>
  covering it went out. Receiving it again after that is a duplicate,
  classified at the end by what became of the ack that covered it
  (docs/SOAK.md, "What counts"):
  allowed (XEP-0198's at-least-once): the ack was never confirmed (the
  server's <a h/> covered no stanza we sent after it, and the stream did
  not end with the server's answer to our </stream:stream>) and the
  connection then ended abruptly: its node was killed (SIGKILL), we cut
  the TCP connection right after the <a/>, or the server closed it. Such
  an ack may never have been read, and the server then resends or stores
  the stanza (XEP-0198 section 5).
  allowed too (at-least-once across a crash, not XEP-0198's case): the
  ack was confirmed less than CRASH_WINDOW before its node was killed:
  c2s forwards an <a/> to the router (its copies) and presenced (stored
  rows) asynchronously, and SIGKILL may come in between.
  not allowed: any other duplicate (a confirmed ack, a clean logout, a
  session still up, the same session twice): a fault, and the run fails.
- At the end the churn stops, every user logs in again (offline storage)
  until nothing more arrives; lost = accepted and never received.
Group messages and presences are load, counted and reported only.

Every 10 s each Kiln process's RSS, RssAnon and open descriptors, and
PostgreSQL's and Redis's RSS, go to a CSV.
"""

import asyncio
import collections
import csv
import os
import random
import signal
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
NS_MUC = "http://jabber.org/protocol/muc"
ROOM = "soakroom"


class Closed(Exception):
    pass


class Stats:
    def __init__(self):
        self.accepted = {}      # id -> (from, to)
        self.sent = 0
        self.doubt = set()
        self.bounced = set()
        self.bounce_why = collections.Counter()
        self.bounce_samples = []
        self.rx_acked = {}      # id -> (SessInfo, Ack) that acked it first
        self.rx_seen = set()
        self.dup_rx = []        # (id, first SessInfo, its Ack, SessInfo, t,
        #                          from offline storage)
        self.early = 0          # stanzas in the read that brought <enabled/>
        self.ends = collections.Counter()    # how sessions ended
        self.errors = collections.Counter()  # stream errors from the server
        self.logins = 0
        self.login_fail = collections.Counter()
        self.logouts = 0
        self.drops = 0
        self.killed_sessions = 0
        self.presence_sent = 0
        self.presence_rx = 0
        self.group_sent = 0
        self.group_accepted = 0
        self.group_rx = 0
        self.kills = []
        self.next_id = 0

    def new_id(self, prefix):
        self.next_id += 1
        return "%s%d" % (prefix, self.next_id)


class Ack:
    """One <a h/> we sent. Confirmed once the server handled a stanza we
    sent after it (its own <a h/> covers it; TCP and the server keep
    order) or answered our </stream:stream>: then the server read it."""

    __slots__ = ("out_h", "t", "confirmed", "confirmed_at")

    def __init__(self, out_h, t):
        self.out_h = out_h
        self.t = t
        self.confirmed = False
        self.confirmed_at = None


class SessInfo:
    """What the counting keeps of a session once it is gone (a Session
    holds its parser and streams: thousands of them would pile up)."""

    __slots__ = ("id", "node", "user", "ended", "stream_error", "early",
                 "last_h", "after_last", "killed_at")

    def __init__(self, sid, node, user):
        self.id, self.node, self.user = sid, node, user
        self.ended = self.stream_error = None
        self.early = 0
        self.last_h = None   # h of our last <a/>
        self.after_last = 0  # stanzas counted after it
        self.killed_at = None


class Session:
    """One client connection (raw XML over asyncio streams)."""

    serial = 0

    def __init__(self, soak, user, node, port, direct_tls):
        Session.serial += 1
        self.id = Session.serial
        self.soak = soak
        self.st = soak.stats
        self.user = user
        self.node = node
        self.port = port
        self.direct_tls = direct_tls
        self.jid = "%s@%s" % (user, soak.domain)
        self.killed = False     # its node was killed while it was up
        self.dropped = False    # we cut the TCP connection (no close)
        self.ended = None       # clean, dropped, killed, closed (by server)
        self.stream_error = None
        self.server_closed = False  # the server's </stream:stream> came
        self.acks = collections.deque()  # Acks not yet confirmed
        self.info = SessInfo(self.id, node, user)
        self.out_h = 0          # stanzas we sent since <enabled/>
        self.in_h = 0           # stanzas we got since <enabled/>
        self.sm_on = False
        self.pending = collections.deque()  # (seq, id, kind)
        self.rx_unacked = []    # ids received since our last <a/>
        self.q = asyncio.Queue()
        self.reader = self.writer = None
        self.rtask = None
        self.closed = False
        self.login_done = False
        self.enabled_seen = False
        self.closing = False    # our </stream:stream> went out

    # ---- stream plumbing
    def send(self, text):
        if self.closed:
            raise Closed()
        self.writer.write(text.encode())

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0

    async def _read_loop(self):
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
                            self.root = el
                            await self.q.put(("stream", el))
                    else:
                        self.depth -= 1
                        if self.depth == 1:
                            self.root.remove(el)  # keep memory flat
                            self._on_top(el)
                        elif self.depth == 0:
                            self.server_closed = True
                            break
        except (OSError, ET.ParseError, ssl.SSLError):
            pass
        self.closed = True
        await self.q.put(("closed", None))

    def _on_top(self, el):
        tag = el.tag
        if tag == "{%s}r" % NS_SM:
            if not self.closing:
                self.send_ack()
            return
        if tag == "{%s}a" % NS_SM:
            self.on_server_ack(int(el.get("h")))
            return
        if tag == "{%s}enabled" % NS_SM:
            # Count from here, in this task: stanzas in the same read (a
            # group message to a full JID that a dropped session of the
            # user left behind) are counted by the server. Counting them
            # only once login() resumed left our h one short: the server
            # then rerouted the session's last stanza at a clean logout.
            self.enabled_seen = True
            self.sm_on = True
        elif tag == "{%s}error" % NS_STREAM:
            self.stream_error = " ".join(c.tag.split("}")[-1] for c in el)
        if tag in ("{%s}message" % NS_CLIENT, "{%s}presence" % NS_CLIENT,
                   "{%s}iq" % NS_CLIENT):
            if self.sm_on:
                self.in_h += 1
                self.info.after_last += 1
            if self.enabled_seen and not self.login_done:
                self.st.early += 1
                self.info.early += 1
            if tag.endswith("}message"):
                self.on_message(el)
            elif tag.endswith("}presence"):
                self.st.presence_rx += 1
        self.q.put_nowait(("el", el))

    async def next_el(self, timeout=30):
        while True:
            kind, el = await asyncio.wait_for(self.q.get(), timeout)
            if kind == "closed":
                raise Closed()
            return kind, el

    async def expect(self, tag, timeout=30):
        while True:
            kind, el = await self.next_el(timeout)
            if kind == "el" and el.tag == tag:
                return el
            if kind == "el" and el.tag.endswith("}failure"):
                raise Closed("failure " + ET.tostring(el).decode())

    def open_stream(self):
        self._new_parser()
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='%s' to='%s' version='1.0'>"
                  % (NS_STREAM, self.soak.domain))

    async def login(self):
        src = "127.0.0.%d" % (2 + hash(self.user) % 60)
        ctx = self.soak.tls_ctx
        if self.direct_tls:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, ssl=ctx, server_hostname="localhost",
                local_addr=(src, 0))
        else:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(src, 0))
        self.rtask = asyncio.ensure_future(self._read_loop())
        self.open_stream()
        await self.expect("{%s}features" % NS_STREAM)
        if not self.direct_tls:
            self.send("<starttls xmlns='%s'/>" % NS_TLS)
            await self.expect("{%s}proceed" % NS_TLS)
            # the reader task must not read past <proceed/>: it stops at
            # EOF of nothing, so swap it for a new one after the upgrade
            self.rtask.cancel()
            try:
                await self.rtask
            except asyncio.CancelledError:
                pass
            await self.writer.start_tls(ctx, server_hostname="localhost")
            self.rtask = asyncio.ensure_future(self._read_loop())
            self.open_stream()
            await self.expect("{%s}features" % NS_STREAM)
        import base64
        cred = base64.b64encode(("\0%s\0%s" % (self.user, self.user)).encode())
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                  % (NS_SASL, cred.decode()))
        await self.expect("{%s}success" % NS_SASL)
        self.open_stream()
        await self.expect("{%s}features" % NS_STREAM)
        self.send("<iq type='set' id='b1'><bind xmlns='%s'><resource>soak"
                  "</resource></bind></iq>" % NS_BIND)
        await self.expect("{%s}iq" % NS_CLIENT)
        self.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        await self.expect("{%s}enabled" % NS_SM)
        self.login_done = True
        self.sm_on = True
        self.stanza("<presence/>", None, "presence")
        self.stanza("<presence to='%s@conference.%s/%s'><x xmlns='%s'>"
                    "<history maxstanzas='0'/></x></presence>"
                    % (ROOM, self.soak.domain, self.user, NS_MUC), None,
                    "presence")

    # ---- stream management
    def stanza(self, xml, mid, kind):
        self.send(xml)
        self.out_h += 1
        self.pending.append((self.out_h, mid, kind))

    def on_server_ack(self, h):
        while self.acks and self.acks[0].out_h < h:
            a = self.acks.popleft()
            a.confirmed, a.confirmed_at = True, time.monotonic()
        while self.pending and self.pending[0][0] <= h:
            _, mid, kind = self.pending.popleft()
            if kind == "chat":
                self.st.accepted[mid] = self.pend_to.pop(mid) + (
                    round(time.monotonic() - self.soak.t0, 1), self.node,
                    self.id)
            elif kind == "group":
                self.st.group_accepted += 1

    def send_ack(self):
        if self.closing:
            raise Closed("no <a/> after our </stream:stream>")
        self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.in_h))
        ack = Ack(self.out_h, time.monotonic())
        self.info.last_h, self.info.after_last = self.in_h, 0
        self.acks.append(ack)
        for mid in self.rx_unacked:
            if mid not in self.st.rx_acked:
                self.st.rx_acked[mid] = (self.info, ack)
        self.rx_unacked = []

    def confirm_all(self):
        """The server answered our </stream:stream>: it read every <a/>
        before it."""
        now = time.monotonic()
        for a in self.acks:
            a.confirmed, a.confirmed_at = True, now
        self.acks.clear()

    def on_message(self, el):
        body = el.find("{%s}body" % NS_CLIENT)
        text = body.text if body is not None and body.text else ""
        if el.get("type") == "error":
            mid = el.get("id") or ""
            if mid.startswith("m"):
                self.st.bounced.add(mid)
                err = el.find("{%s}error" % NS_CLIENT)
                cond = [c.tag.split("}")[1] for c in (err if err is not None
                                                      else [])]
                self.st.bounce_why[" ".join(cond)] += 1
                if len(self.st.bounce_samples) < 5:
                    self.st.bounce_samples.append(
                        "%.1f s: %s (session %d on %s, to %s)" % (
                            time.monotonic() - self.soak.t0,
                            ET.tostring(el).decode()[:600], self.id,
                            self.node, self.jid))
            return
        if text.startswith("soak:"):
            mid = text[5:]
            if mid in self.st.rx_acked:
                first, ack = self.st.rx_acked[mid]
                self.st.dup_rx.append((
                    mid, first, ack, self.info,
                    round(time.monotonic() - self.soak.t0, 1),
                    el.find("{urn:xmpp:delay}delay") is not None))
            self.st.rx_seen.add(mid)
            self.rx_unacked.append(mid)
        elif text.startswith("grp:"):
            self.st.group_rx += 1

    # ---- actions
    def chat(self, to):
        mid = self.st.new_id("m")
        self.pend_to[mid] = (self.user, to)
        self.st.sent += 1
        self.stanza("<message to='%s@%s' type='chat' id='%s'><body>soak:%s"
                    "</body></message>" % (to, self.soak.domain, mid, mid),
                    mid, "chat")

    def presence(self):
        show = random.choice(("away", "chat", "dnd", "xa", ""))
        self.st.presence_sent += 1
        self.stanza("<presence>%s<status>%s</status></presence>"
                    % ("<show>%s</show>" % show if show else "",
                       escape("soak %d" % random.randrange(1000))),
                    None, "presence")

    def group(self):
        gid = self.st.new_id("g")
        self.st.group_sent += 1
        self.stanza("<message to='%s@conference.%s' type='groupchat' id='%s'>"
                    "<body>grp:%s</body></message>"
                    % (ROOM, self.soak.domain, gid, gid), gid, "group")

    async def logout(self):
        """Clean end: our last <a/>, <r/> until the server acked all we
        sent, then </stream:stream> and wait for the server's close."""
        self.send("<r xmlns='%s'/>" % NS_SM)
        deadline = time.monotonic() + 15
        while self.pending and time.monotonic() < deadline:
            try:
                await self.next_el(max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        self.send_ack()
        self.send("</stream:stream>")
        # RFC 6120 4.4: nothing more after our closing tag. The server
        # may still write (and ask <r/>) before it reads it; an <a/> sent
        # now would never be read. The driver of the 50-minute run did
        # answer, counted what that <a/> covered as acknowledged, and the
        # server's offline redelivery of those messages (rightly unacked:
        # its session had ended) as duplicates.
        self.closing = True
        try:
            await asyncio.wait_for(self.rtask, 15)
        except asyncio.TimeoutError:
            pass
        if self.server_closed and self.stream_error is None:
            self.confirm_all()
            self.ended = "clean"
        self.abort()

    def abort(self):
        self.closed = True
        if self.writer is not None:
            self.writer.transport.abort()
        if self.rtask is not None:
            self.rtask.cancel()

    def finish(self):
        """The connection is gone: what we sent unacked is in doubt."""
        if self.ended is None:
            self.ended = ("killed" if self.killed else
                          "dropped" if self.dropped else "closed")
        self.st.ends[self.ended] += 1
        if self.stream_error:
            self.st.errors[self.stream_error] += 1
        self.info.ended = self.ended
        self.info.stream_error = self.stream_error
        for _, mid, kind in self.pending:
            if kind == "chat":
                self.st.doubt.add(mid)
                self.pend_to.pop(mid, None)
        self.pending.clear()


class Soak:
    def __init__(self, cluster, users, seconds, out_dir, kill_nodes=("c2s-b",),
                 kill_every=(120, 240), sample_every=10.0, warmup=None,
                 extra_pids=None, log=print):
        self.cluster = cluster
        self.domain = cluster.domain
        self.users = users
        self.seconds = seconds
        self.out_dir = out_dir
        self.kill_nodes = kill_nodes
        self.kill_every = kill_every
        self.sample_every = sample_every
        self.warmup = warmup if warmup is not None else min(300, seconds / 5)
        self.extra_pids = extra_pids or {}
        self.log = log
        self.stats = Stats()
        self.stop = False
        self.sessions = set()
        self.restarting = set()
        self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls_ctx.check_hostname = False
        self.tls_ctx.verify_mode = ssl.CERT_NONE
        self.samples = []
        self.t0 = None

    def nodes(self):
        return [n for n in ("c2s-a", "c2s-b")
                if n not in self.restarting and self.cluster.procs[n].alive()]

    async def session(self, user, final=False):
        nodes = self.nodes()
        if not nodes:
            await asyncio.sleep(0.5)
            return None
        node = random.choice(nodes)
        direct = random.random() < 0.5
        port = self.cluster.ports[node]["tls" if direct else "starttls"]
        s = Session(self, user, node, port, direct)
        s.pend_to = {}
        self.sessions.add(s)
        try:
            await asyncio.wait_for(s.login(), 40)
            self.stats.logins += 1
        except (OSError, Closed, asyncio.TimeoutError, ssl.SSLError) as e:
            self.stats.login_fail[type(e).__name__] += 1
            s.ended = "login failed"
            s.abort()
            s.finish()
            self.sessions.discard(s)
            await asyncio.sleep(0.5)
            return None
        return s

    async def churn_user(self, user):
        while not self.stop:
            s = await self.session(user)
            if s is None:
                continue
            try:
                until = time.monotonic() + random.uniform(3, 25)
                while time.monotonic() < until and not self.stop:
                    r = random.random()
                    if r < 0.75:
                        s.chat(random.choice(self.users))
                    elif r < 0.9:
                        s.presence()
                    else:
                        s.group()
                    if random.random() < 0.2:
                        s.send("<r xmlns='%s'/>" % NS_SM)
                    await self.pause(s, random.uniform(0.1, 0.6))
                if random.random() < 0.8:
                    await s.logout()
                    self.stats.logouts += 1
                else:
                    s.send_ack()
                    s.dropped = True
                    s.abort()
                    self.stats.drops += 1
            except Closed:
                if s.killed:
                    self.stats.killed_sessions += 1
            finally:
                s.abort()
                s.finish()
                self.sessions.discard(s)
            await asyncio.sleep(random.uniform(0, 4))

    async def pause(self, s, t):
        """Sleep t, but notice the connection closing."""
        try:
            while True:
                kind, _ = await asyncio.wait_for(s.q.get(), t)
                if kind == "closed":
                    raise Closed()
        except asyncio.TimeoutError:
            return

    async def killer(self):
        if not self.kill_nodes:
            return
        loop = asyncio.get_running_loop()
        while not self.stop:
            wait = random.uniform(*self.kill_every)
            end = time.monotonic() + wait
            while time.monotonic() < end and not self.stop:
                await asyncio.sleep(0.5)
            if self.stop:
                return
            node = random.choice(self.kill_nodes)
            self.restarting.add(node)
            now = time.monotonic()
            for s in list(self.sessions):
                if s.node == node:
                    s.killed = True
                    s.info.killed_at = now
            self.cluster.procs[node].kill9()
            t = time.monotonic() - self.t0
            self.stats.kills.append((round(t), node))
            self.log("soak: %5.0f s: kill -9 %s" % (t, node))
            await asyncio.sleep(random.uniform(1, 5))
            await loop.run_in_executor(None, self.cluster.procs[node].start)
            self.restarting.discard(node)

    # ---- sampling
    def procs_to_sample(self):
        out = {}
        for name, p in self.cluster.procs.items():
            if p.alive():
                out[name] = [p.popen.pid]
        for name, pids in self.extra_pids.items():
            out[name] = pids() if callable(pids) else pids
        return out

    @staticmethod
    def proc_mem(pid):
        rss = anon = 0
        try:
            with open("/proc/%d/status" % pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        rss = int(ln.split()[1])
                    elif ln.startswith("RssAnon:"):
                        anon = int(ln.split()[1])
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        return rss, anon, fds

    def sample(self):
        t = time.monotonic() - self.t0
        row = {"t": round(t, 1)}
        for name, pids in self.procs_to_sample().items():
            tot = [0, 0, 0]
            for pid in pids:
                m = self.proc_mem(pid)
                if m:
                    tot = [a + b for a, b in zip(tot, m)]
            row[name + "_rss_kb"], row[name + "_anon_kb"], row[name + "_fds"] = tot
            row[name + "_pid"] = pids[0] if pids else 0
        row["sessions"] = len(self.sessions)
        row["accepted"] = len(self.stats.accepted)
        row["received"] = len(self.stats.rx_seen)
        self.samples.append(row)

    async def sampler(self):
        while not self.stop:
            self.sample()
            r = self.samples[-1]
            self.log("soak: %5.0f s: %d sessions, %d accepted, %d received, "
                     "%d logins, %d kills; rss KiB %s" % (
                         r["t"], r["sessions"], r["accepted"], r["received"],
                         self.stats.logins, len(self.stats.kills),
                         " ".join("%s=%d" % (k[:-7], v) for k, v in r.items()
                                  if k.endswith("_rss_kb"))))
            end = time.monotonic() + self.sample_every
            while time.monotonic() < end and not self.stop:
                await asyncio.sleep(0.2)

    # ---- the end: everyone logs in until nothing more arrives
    async def drain_user(self, user, quiet):
        for _ in range(5):
            s = await self.session(user, final=True)
            if s is not None:
                break
        else:
            return
        try:
            last = len(self.stats.rx_seen)
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < quiet:
                await self.pause(s, 0.5)
                s.send("<r xmlns='%s'/>" % NS_SM)
                n = len(self.stats.rx_seen)
                if n != last:
                    last, idle_since = n, time.monotonic()
            await s.logout()
        except Closed:
            pass
        finally:
            s.abort()
            s.finish()
            self.sessions.discard(s)

    def missing(self):
        return [m for m in self.stats.accepted if m not in self.stats.rx_seen
                and m not in self.stats.bounced]

    async def run_async(self):
        self.t0 = time.monotonic()
        sampler = asyncio.ensure_future(self.sampler())
        killer = asyncio.ensure_future(self.killer())
        users = [asyncio.ensure_future(self.churn_user(u)) for u in self.users]
        end = self.t0 + self.seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
        self.stop = True
        await killer
        await asyncio.gather(*users)
        self.log("soak: churn over after %.0f s; draining offline storage"
                 % (time.monotonic() - self.t0))
        # a node killed last must be declared lost before its copies move
        loop = asyncio.get_running_loop()
        for n in ("c2s-a", "c2s-b"):
            if not self.cluster.procs[n].alive():
                await loop.run_in_executor(None, self.cluster.procs[n].start)
        for rnd in range(4):
            await asyncio.sleep(8 if rnd == 0 else 3)
            await asyncio.gather(*(self.drain_user(u, 4) for u in self.users))
            self.log("soak: drain round %d: %d missing" % (rnd + 1,
                                                            len(self.missing())))
            if not self.missing():
                break
        self.stop = True
        await sampler
        self.sample()

    def run(self):
        # a loop of our own: the caller's (slixmpp's, in the tests) stays
        lp = asyncio.new_event_loop()
        try:
            lp.run_until_complete(self.run_async())
        finally:
            lp.close()
        return self.report()

    # ---- results
    def write_csv(self, path):
        keys = []
        for r in self.samples:
            for k in r:
                if k not in keys:
                    keys.append(k)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, restval="")
            w.writeheader()
            for r in self.samples:
                w.writerow(r)
        return keys

    def rss_growth(self, column="rss_kb"):
        """{process: (KiB after warm-up, KiB at the end, growth)} over the
        last incarnation of each process that lived through the warm-up
        (medians of three samples at each end)."""
        out = {}
        names = sorted({k[:-7] for r in self.samples for k in r
                        if k.endswith("_rss_kb")})
        key = lambda name: name + "_" + column  # noqa: E731
        for name in names:
            rows = [r for r in self.samples if r.get(key(name)) not in
                    (None, "")]
            if not rows:
                continue
            pid = rows[-1].get(name + "_pid")
            rows = [r for r in rows if r.get(name + "_pid") == pid]
            after = [r for r in rows if r["t"] >= self.warmup]
            if len(after) < 2 or rows[0]["t"] > self.warmup:
                out[name] = (None, int(rows[-1][key(name)]), None)
                continue
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            a = med([int(r[key(name)]) for r in after[:3]])
            b = med([int(r[key(name)]) for r in after[-3:]])
            out[name] = (a, b, b - a)
        return out

    ALLOWED_ENDS = ("killed", "dropped", "closed")
    CRASH_WINDOW = 1.0  # s from a confirmed <a/> to the kill of its node

    def duplicates(self):
        """(not allowed: [detail], allowed: {how the acking session
        ended: count}, allowed details): the classification of the
        module's docstring."""
        bad, ok, ok_list = [], collections.Counter(), []
        for mid, first, ack, again, t, delayed in self.stats.dup_rx:
            d = {"id": mid, "acked_by": first.id, "acked_on": first.node,
                 "acker_end": first.ended, "ack_confirmed": ack.confirmed,
                 "ack_t": round(ack.t - self.t0, 1),
                 "stream_error": first.stream_error,
                 "again_in": again.id, "again_on": again.node, "t": t,
                 "from_offline": delayed, "to": first.user,
                 "early": first.early, "acker_last_h": first.last_h,
                 "acker_rx_after_last_ack": first.after_last}
            if (not ack.confirmed and first is not again and
                    first.ended in self.ALLOWED_ENDS):
                ok[first.ended] += 1
                ok_list.append(d)
            elif (ack.confirmed and first.ended == "killed" and
                  first.killed_at is not None and
                  first.killed_at - ack.confirmed_at < self.CRASH_WINDOW):
                # c2s read the <a/> and answered, but forwards it (SM
                # ACKED to the router's copies, ACK to presenced's rows)
                # asynchronously: SIGKILL in between loses it
                ok["killed just after"] += 1
                ok_list.append(d)
            else:
                bad.append(d)
        return bad, dict(ok), ok_list

    def report(self):
        st = self.stats
        dup_bad, dup_ok, dup_ok_list = self.duplicates()
        os.makedirs(self.out_dir, exist_ok=True)
        self.write_csv(os.path.join(self.out_dir, "soak.csv"))
        missing = self.missing()
        self.lost_detail = {m: self.stats.accepted[m] for m in missing}
        doubt_rx = len([m for m in st.doubt if m in st.rx_seen])
        return {
            "seconds": self.seconds, "users": len(self.users),
            "logins": st.logins, "login_failures": dict(st.login_fail),
            "logouts": st.logouts, "drops": st.drops,
            "killed_sessions": st.killed_sessions, "kills": st.kills,
            "chat_sent": st.sent, "chat_accepted": len(st.accepted),
            "chat_in_doubt": len(st.doubt), "in_doubt_delivered": doubt_rx,
            "chat_received": len(st.rx_seen), "bounced": len(st.bounced),
            "bounced_accepted": len([m for m in st.bounced
                                     if m in st.accepted]),
            "bounce_why": dict(st.bounce_why),
            "bounce_samples": st.bounce_samples,
            "lost": missing, "dup": dup_bad, "dup_allowed": dup_ok,
            "dup_allowed_detail": dup_ok_list[:200],
            "session_ends": dict(st.ends), "stream_errors": dict(st.errors),
            "early_stanzas": st.early,
            "presence_sent": st.presence_sent, "presence_rx": st.presence_rx,
            "group_sent": st.group_sent, "group_accepted": st.group_accepted,
            "group_rx": st.group_rx, "rss": self.rss_growth(),
            "rss_anon": self.rss_growth("anon_kb"),
            "warmup": self.warmup,
            "lost_detail": self.lost_detail,
        }


def setup_users(kilnctl, conf, users):
    """Accounts (password = name), one shared roster group with all of
    them (presence fans out), one persistent group room."""
    def ctl(*a, check=True):
        r = subprocess.run([kilnctl, "-c", conf, *a], capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError("kilnctl %s: %s" % (" ".join(a), r.stderr))
        return r
    for u in users:
        ctl("user", "add", u, u, check=False)
    ctl("group", "add", "soakers", "--visibility", "only_group", check=False)
    for u in users:
        ctl("group", "member", "add", "soakers", u, check=False)
    ctl("group-room", "create", ROOM, check=False)
    for u in users:
        ctl("group-room", "add-member", ROOM, u, check=False)


def plot(csv_path, png_path, names, title, column="rss_kb",
         ylabel="RSS MiB"):
    """<name>_<column> over time, one line per process (gnuplot)."""
    with open(csv_path) as f:
        header = f.readline().strip().split(",")
    cols = [(header.index("%s_%s" % (n, column)) + 1, n) for n in names
            if "%s_%s" % (n, column) in header]
    if not cols:
        return False
    term = "pngcairo size 900,500" if _has_term("pngcairo") else "png size 900,500"
    lines = ", ".join(
        "'%s' using 1:($%d/1024) with lines title '%s'" % (csv_path, c, n)
        for c, n in cols)
    script = ("set terminal %s\nset output '%s'\nset datafile separator ','\n"
              "set title '%s'\nset xlabel 'seconds'\nset ylabel '%s'\n"
              "set key outside\nset grid\nplot %s\n"
              % (term, png_path, title, ylabel, lines))
    r = subprocess.run(["gnuplot"], input=script, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("gnuplot: " + r.stderr)
    return True


def _has_term(name):
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True,
                       text=True, timeout=30)
    return (" " + name + " ") in (r.stdout + r.stderr)


def pids_of(pattern_path):
    """pids whose /proc/PID/cmdline mentions pattern_path (PostgreSQL's
    data dir, Redis's socket) and whose exe is not a shell."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if pattern_path in cmd:
            out.append(int(d))
    return sorted(out)


def pg_pids(pg_dir):
    """The postmaster of the data dir, and its children."""
    try:
        with open(os.path.join(pg_dir, "postmaster.pid")) as f:
            master = int(f.readline())
    except (OSError, ValueError):
        return []
    out = [master]
    try:
        with open("/proc/%d/task/%d/children" % (master, master)) as f:
            out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


_ = signal  # (imported for callers that stop the stack)
