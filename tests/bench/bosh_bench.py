#!/usr/bin/python3
"""bosh_bench.py - BOSH (XEP-0124/0206) requests/s and latency against a
Kiln c2s node: SESSIONS sessions log in over /http-bind (SASL PLAIN,
user%d with the user name as password, as tests/bench/provision makes
them), then each sends requests carrying one chat message to its partner
(session i ^ 1) at an offered rate, step by step. A session is created
with hold='0', so every request is answered when the node has processed
it (with whatever came for the session meanwhile): the figure is
request/response round trips, the latency is per request, p50/p99.

    tests/bench/bosh_bench.py --port 5280 --sessions 100 \\
        --rates 500,1000,2000,4000 --step 5 [--procs 2]

Each session keeps one keep-alive connection; --procs forks that many
client processes (sessions split between them). Stdlib only; loopback.
Prints a table and one RESULT line. Exit 1 when a request failed or a
message sent was not received by the end.
"""

import argparse
import asyncio
import base64
import multiprocessing
import random
import re
import sys
import time

NS = "http://jabber.org/protocol/httpbind"
XB = "urn:xmpp:xbosh"


class Sess:
    def __init__(self, port, user, domain):
        self.port, self.user, self.domain = port, user, domain
        self.rid = random.randint(1 << 20, 1 << 40)
        self.sid = None
        self.got = ""
        self.received = 0

    async def connect(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)

    async def req(self, payload="", **attrs):
        self.rid += 1
        if self.sid:
            attrs.setdefault("sid", self.sid)
        a = " ".join("%s='%s'" % kv for kv in attrs.items())
        body = ("<body xmlns='%s' rid='%d' %s>%s</body>"
                % (NS, self.rid, a, payload)).encode()
        self.w.write(b"POST /http-bind HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: text/xml; charset=utf-8\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self.r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError("HTTP %r" % head[:60])
        n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        resp = (await self.r.readexactly(n)).decode()
        if "type='terminate'" in resp or 'type="terminate"' in resp:
            raise RuntimeError("terminated: %s" % resp[:200])
        self.got += resp
        self.received += resp.count("<message")
        return resp

    async def until(self, needle, payload="", **attrs):
        await self.req(payload, **attrs)
        for _ in range(2000):
            if needle in self.got:
                self.got = ""
                return
            await self.req()
        raise RuntimeError("no %s for %s" % (needle, self.user))

    async def login(self):
        await self.connect()
        await self.req(to=self.domain, wait="60", hold="0", ver="1.11",
                       **{"xmlns:xmpp": XB, "xmpp:version": "1.0"})
        self.sid = re.search(r"sid='([^']+)'|sid=\"([^\"]+)\"", self.got)
        self.sid = self.sid.group(1) or self.sid.group(2)
        if "PLAIN" not in self.got:
            await self.until("PLAIN")
        self.got = ""
        cred = base64.b64encode(("\0%s\0%s" % (self.user, self.user))
                                .encode()).decode()
        await self.until("<success", "<auth xmlns='urn:ietf:params:xml:ns:"
                         "xmpp-sasl' mechanism='PLAIN'>%s</auth>" % cred)
        await self.until("<bind", **{"xmpp:restart": "true",
                                     "xmlns:xmpp": XB})
        await self.until("</jid>", "<iq type='set' id='b1' xmlns='jabber:"
                         "client'><bind xmlns='urn:ietf:params:xml:ns:"
                         "xmpp-bind'><resource>bosh</resource></bind></iq>")
        await self.req("<presence xmlns='jabber:client'/>")
        self.received = 0

    async def logout(self):
        try:
            await self.req("<presence type='unavailable' "
                           "xmlns='jabber:client'/>", type="terminate")
        except Exception:
            pass
        self.w.close()


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


async def run(args, first, count, q):
    ss = [Sess(args.port, args.user_fmt % (first + i), args.domain)
          for i in range(count)]
    sem = asyncio.Semaphore(20)

    async def lg(s):
        async with sem:
            await s.login()
    await asyncio.gather(*(lg(s) for s in ss))
    q.put(("ready",))
    go = q_get_go(args)
    await go
    sent = 0
    for rate in args.rates:
        per = rate / args.procs / max(1, count)  # requests/s per session
        lat = []
        t_end = time.monotonic() + args.step

        async def loop(i, s):
            nonlocal sent
            partner = ss[i ^ 1] if (i ^ 1) < count else ss[i]
            nxt = time.monotonic() + random.random() / per
            while True:
                now = time.monotonic()
                if nxt > now:
                    await asyncio.sleep(nxt - now)
                if time.monotonic() >= t_end:
                    return
                t0 = time.monotonic()
                await s.req("<message xmlns='jabber:client' to='%s@%s/bosh' "
                            "type='chat'><body>b</body></message>"
                            % (partner.user, args.domain))
                lat.append(time.monotonic() - t0)
                sent += 1
                nxt += 1.0 / per
                if nxt < time.monotonic() - 1.0:
                    nxt = time.monotonic()  # saturated: back to back
        t0 = time.monotonic()
        await asyncio.gather(*(loop(i, s) for i, s in enumerate(ss)))
        q.put(("step", rate, len(lat) / (time.monotonic() - t0), lat))
    # drain: empty requests until every message sent arrived
    deadline = time.monotonic() + 10
    while sum(s.received for s in ss) < sent and time.monotonic() < deadline:
        await asyncio.gather(*(s.req() for s in ss))
    q.put(("done", sent, sum(s.received for s in ss)))
    await asyncio.gather(*(s.logout() for s in ss))


def q_get_go(args):
    async def w():
        while not args.go.is_set():
            await asyncio.sleep(0.01)
    return w()


def child(args, first, count, q):
    try:
        asyncio.run(run(args, first, count, q))
    except Exception as e:  # reported, counted as a failure
        q.put(("error", repr(e)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5280)
    ap.add_argument("--domain", default="localhost")
    ap.add_argument("--user-fmt", default="user%d")
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--rates", default="500,1000,2000,4000")
    ap.add_argument("--step", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=1)
    args = ap.parse_args()
    args.rates = [int(x) for x in args.rates.split(",")]
    args.sessions -= args.sessions % 2
    args.go = multiprocessing.Event()
    q = multiprocessing.Queue()
    per = args.sessions // args.procs
    per -= per % 2
    ps = []
    for i in range(args.procs):
        p = multiprocessing.Process(target=child, args=(
            args, args.first + i * per, per, q))
        p.start()
        ps.append(p)
    ready = 0
    while ready < args.procs:
        m = q.get(timeout=120)
        if m[0] == "error":
            print("bosh_bench: %s" % m[1], file=sys.stderr)
            return 1
        ready += 1
    print("bosh_bench: %d sessions logged in on port %d (hold=0), %d procs"
          % (per * args.procs, args.port, args.procs))
    args.go.set()
    steps = {}
    sent = recv = 0
    done = 0
    fail = False
    while done < args.procs:
        m = q.get(timeout=60 + args.step * len(args.rates))
        if m[0] == "step":
            st = steps.setdefault(m[1], [0.0, []])
            st[0] += m[2]
            st[1].extend(m[3])
        elif m[0] == "done":
            sent += m[1]
            recv += m[2]
            done += 1
        else:
            print("bosh_bench: %s" % m[1], file=sys.stderr)
            fail = True
            done += 1
    for p in ps:
        p.join()
    print("%10s %12s %10s %10s" % ("offered/s", "requests/s", "p50 ms",
                                   "p99 ms"))
    best = None
    for rate in args.rates:
        rps, lat = steps.get(rate, [0, []])
        p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
        print("%10d %12.0f %10.1f %10.1f" % (rate, rps, p50, p99))
        if p99 <= 50 and (best is None or rps > best[0]):
            best = (rps, p99)
    print("messages sent %d, received %d" % (sent, recv))
    print("RESULT scenario=bosh sessions=%d best_rps_p99_50ms=%s p99_ms=%s "
          "sent=%d received=%d" % (
              per * args.procs, "%.0f" % best[0] if best else "none",
              "%.1f" % best[1] if best else "none", sent, recv))
    return 1 if fail or recv < sent else 0


if __name__ == "__main__":
    sys.exit(main())
