"""06 presence, counted: every resource gets each presence exactly once,
its own included (RFC 6121 4.2.2, 4.4.2, 4.5.2), across both c2s nodes,
with logins and logouts racing each other.

Requirement IDs: R-PRES-2, R-PRES-3, R-PRES-7, R-DROP-1, R-DROP-2.

Counting exactly needs a fence, not a sleep: once a round's presences
are in, every client sends a presence with a new status and each waits
for that status from everyone who should send it. presenced fans out one
user's presences in arrival order and a login's flow runs in the same
step as the login's own fan-out, so any duplicate of the round would
have reached its recipient before the sender's (or the recipient's own)
fence.
"""

import asyncio
import collections

from test_05_roster import D, presenced, sql  # noqa: F401
from xmpp_client import login, run

PW = "secret-pw"


class Seen:
    """Every presence one client receives, in order."""

    def __init__(self, c):
        self.c = c
        self.got = []  # (from, type or "available", status or "")

    async def until(self, pred, timeout=30):
        """Receive until pred(self.got) holds."""
        loop = asyncio.get_event_loop()
        deadline = loop.time() + timeout
        while not pred(self.got):
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError()
                p = await asyncio.wait_for(self.c.presences.get(), left)
            except asyncio.TimeoutError:
                raise AssertionError("%s: still waiting after %d s; got %s"
                                     % (self.c.boundjid, timeout, self.got))
            self.got.append((str(p["from"]), p["type"] or "available",
                             p["status"] or ""))

    def window(self, start):
        return collections.Counter(self.got[start:])


def has_all(senders, ptype, status=""):
    want = set(senders)
    return lambda got: want <= {f for f, t, s in got
                                if t == ptype and s == status}


async def fence(seen, senders_of, status):
    """Each client announces status; each waits for it from its senders."""
    for s in seen:
        s.c.send_presence(pstatus=status)
    await asyncio.gather(*(s.until(has_all(senders_of(s), "available",
                                           status)) for s in seen))


def test_own_presence_echoed_once_per_resource_across_nodes_R_PRES_2(
        presenced, make_user):
    """A user on three resources (both c2s nodes) and one contact: each
    resource gets its own presence and every other one exactly once;
    explicit unavailable is echoed to its sender and reaches the others
    once; a dropped resource's unavailable reaches the others once; a
    directed presence is not echoed."""
    for u in ("p6eme", "p6ebud", "p6estr"):
        make_user(u, PW)
    sql("insert into rosteritems (username, jid, subscription) values "
        "('p6eme', 'p6ebud@%s', 3), ('p6ebud', 'p6eme@%s', 3) "
        "on conflict (username, jid) do nothing" % (D, D))
    me = ["p6eme@%s/r%d" % (D, i) for i in (1, 2, 3)]
    bud = "p6ebud@%s/b" % D
    stranger = "p6estr@%s/s" % D

    async def scenario():
        b = Seen(await login(presenced, "p6ebud", PW, "c2s-b", "b"))
        # A client that waits for its own presence, as real clients do.
        await b.until(has_all([bud], "available"), 10)
        rs = []
        for i, node in enumerate(("c2s-a", "c2s-b", "c2s-a")):
            r = Seen(await login(presenced, "p6eme", PW, node, "r%d" % (i + 1)))
            rs.append(r)
            await r.until(has_all(me[:i + 1] + [bud], "available"), 10)
        everyone = rs + [b]
        await fence(everyone, lambda s: me + [bud], "f1")
        for s in everyone:
            c = s.window(0)
            for f in me + [bud]:
                assert c[(f, "available", "")] == 1, (s.c.boundjid, f, c)
                assert c[(f, "available", "f1")] == 1, (s.c.boundjid, f, c)
            assert sum(c.values()) == 8, (s.c.boundjid, c)

        st = Seen(await login(presenced, "p6estr", PW, "c2s-b", "s"))
        await st.until(has_all([stranger], "available"), 10)
        rs[0].c.send_presence(pto="p6estr@" + D, pstatus="directed")
        await st.until(has_all([me[0]], "available", "directed"), 10)

        marks = [len(s.got) for s in everyone]
        rs[1].c.send_presence(ptype="unavailable")
        await asyncio.gather(*(s.until(has_all([me[1]], "unavailable"))
                               for s in everyone))
        await rs[2].c.stop()  # dropped: the server says it for r3
        left = [rs[0], b]
        await asyncio.gather(*(s.until(has_all([me[2]], "unavailable"))
                               for s in left))
        await fence(left, lambda s: [me[0], bud], "f2")
        for s, m in zip(left, marks):
            c = s.window(m)
            assert c == collections.Counter({
                (me[1], "unavailable", ""): 1,
                (me[2], "unavailable", ""): 1,
                (me[0], "available", "f2"): 1,
                (bud, "available", "f2"): 1}), (s.c.boundjid, c)
        # r2 went unavailable: its own unavailable once, and nothing of
        # the directed presence (never echoed) before it.
        c = rs[1].window(marks[1])
        assert c[(me[1], "unavailable", "")] == 1, c
        assert all(s != "directed" for _, _, s in rs[1].got), rs[1].got
        assert all(s != "directed" for _, _, s in rs[0].got), rs[0].got
        assert c[(me[0], "available", "f2")] == 0, c
        for s in (rs[0], rs[1], b, st):
            await s.c.stop()

    run(scenario(), 90)


def test_concurrent_logins_and_logouts_once_per_pair_R_PRES_3_R_DROP_1(
        presenced, make_user):
    """24 users, all mutual contacts, on both c2s nodes, log in at once:
    every user gets every contact's presence and its own exactly once.
    Then half of them leave at once (six with unavailable, six by
    dropping the stream): each user who stays gets each leaver's
    unavailable exactly once."""
    n = 24
    names = ["p6ring%d" % i for i in range(n)]
    for u in names:
        make_user(u, PW)
    sql("insert into rosteritems (username, jid, subscription) "
        "select 'p6ring' || a, 'p6ring' || b || '@%s', 3 "
        "from generate_series(0, %d) a, generate_series(0, %d) b "
        "where a <> b on conflict (username, jid) do nothing"
        % (D, n - 1, n - 1))
    full = ["%s@%s/r" % (u, D) for u in names]

    async def scenario():
        cs = await asyncio.gather(*(
            login(presenced, u, PW, ("c2s-a", "c2s-b")[i % 2], "r")
            for i, u in enumerate(names)))
        seen = [Seen(c) for c in cs]
        await asyncio.gather(*(s.until(has_all(full, "available"), 60)
                               for s in seen))
        await fence(seen, lambda s: full, "f1")
        for s in seen:
            c = s.window(0)
            for f in full:
                assert c[(f, "available", "")] == 1, (s.c.boundjid, f, c)
            assert sum(c.values()) == 2 * n, (s.c.boundjid, c)

        leavers, stayers = seen[:n // 2], seen[n // 2:]
        gone = full[:n // 2]
        marks = [len(s.got) for s in stayers]
        for i, s in enumerate(leavers):
            if i % 2:
                s.c.send_presence(ptype="unavailable")
        await asyncio.gather(*(s.c.stop() for i, s in enumerate(leavers)
                               if not i % 2))
        await asyncio.gather(*(s.until(has_all(gone, "unavailable"), 60)
                               for s in stayers))
        await fence(stayers, lambda s: full[n // 2:], "f2")
        for s, m in zip(stayers, marks):
            c = s.window(m)
            for f in gone:
                assert c[(f, "unavailable", "")] == 1, (s.c.boundjid, f, c)
            assert sum(c.values()) == n, (s.c.boundjid, c)
        for i, s in enumerate(leavers):
            if i % 2:  # still connected: its own unavailable, once
                await s.until(has_all([full[i]], "unavailable"))
                assert s.window(0)[(full[i], "unavailable", "")] == 1
        await asyncio.gather(*(s.c.stop() for i, s in enumerate(seen)
                               if i >= n // 2 or i % 2))

    run(scenario(), 180)
