"""06 presence: login broadcast and contacts' presence, offline messages,
probes, every kind of logout, Redis state.

Requirement IDs: R-PRES-1, R-PRES-2, R-PRES-3, R-PRES-5, R-PRES-6,
R-PRES-7, R-PRES-8, R-DROP-1, R-DROP-2, R-DROP-3, R-DROP-6, R-ARCH-3,
R-PERF-6. Contacts are spread over both c2s nodes. The contacts'
presences at login go in one bundle per login (issue 15).
"""

import asyncio
import os
import signal
import subprocess
import time
import urllib.request

import conftest
from test_05_roster import D, presenced, presences, roster_row, sql  # noqa: F401
from xmpp_client import Client, login, run

PW = "secret-pw"


def test_login_broadcast_four_states_R_PRES_2(presenced, make_user):
    users = ["p6a", "p6none", "p6to", "p6from", "p6both"]
    for u in users:
        make_user(u, PW)
    # A's side: subscription per contact; contacts' side the mirror.
    mirror = {"none": "none", "to": "from", "from": "to", "both": "both"}
    for state in ("none", "to", "from", "both"):
        roster_row("p6a", "p6" + state, state)
        roster_row("p6" + state, "p6a", mirror[state])

    async def scenario():
        cs = {}
        for i, state in enumerate(("none", "to", "from", "both")):
            cs[state] = await login(presenced, "p6" + state, PW,
                                    ("c2s-a", "c2s-b")[i % 2], "r")
        await asyncio.sleep(0.5)
        for c in cs.values():
            await presences(c, 0.3)
        a = await login(presenced, "p6a", PW, "c2s-a", "pc")
        for state, c in cs.items():
            got = [p for p in await presences(c, 1.5)
                   if str(p["from"]) == "p6a@%s/pc" % D]
            if state in ("from", "both"):
                assert got, "%s contact got no presence" % state
            else:
                assert not got, "%s contact got presence" % state
        await a.stop()
        for c in cs.values():
            await c.stop()

    run(scenario())


def test_contacts_presence_on_login_R_PRES_3(presenced, make_user):
    for u in ("p6x", "p6holiday", "p6two"):
        make_user(u, PW)
    for c in ("p6holiday", "p6two"):
        roster_row("p6x", c, "to")
        roster_row(c, "p6x", "from")

    async def scenario():
        b = await login(presenced, "p6holiday", PW, "c2s-b", "r")
        b.send_presence(ptype="unavailable", pstatus="on holiday")
        await asyncio.sleep(0.3)
        await b.stop()
        c1 = await login(presenced, "p6two", PW, "c2s-a", "r1")
        c2 = await login(presenced, "p6two", PW, "c2s-b", "r2")
        await asyncio.sleep(0.5)
        a = await login(presenced, "p6x", PW, "c2s-b", "new")
        got = await presences(a, 2)
        frm = {str(p["from"]): p for p in got}
        assert "p6two@%s/r1" % D in frm and "p6two@%s/r2" % D in frm
        hol = frm.get("p6holiday@" + D)
        assert hol is not None and hol["type"] == "unavailable"
        assert hol["status"] == "on holiday"
        assert hol.xml.find("{urn:xmpp:delay}delay") is not None
        for c in (a, c1, c2):
            await c.stop()

    run(scenario())


def presenced_metric(name):
    url = "http://127.0.0.1:%s/metrics" % os.environ["KILN_METRICS_PRESENCED"]
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise AssertionError("presenced has no series " + name)


async def own_echo(c, full):
    """Wait for c's own presence to come back: its broadcast has run."""
    while True:
        p = await asyncio.wait_for(c.presences.get(), 10)
        if str(p["from"]) == full:
            return


def test_login_presences_in_one_bundle_R_PRES_3(presenced, make_user):
    """Issue 15: the contacts' presences a new resource gets at login go
    in one envelope per login (a MULTICAST bundle to its connection, see
    pres_out.c), with every rule kept: only contacts it is subscribed to
    (to/both), each available resource once, the stored last presence of
    an offline contact (XEP-0203 delay), nobody it blocked or who blocked
    it (XEP-0191), and all of it before its offline messages (R-PRES-5).
    Fails before: no bundle (presenced had no such series)."""
    x = "p6bx"
    subs = {"p6bc1": "both", "p6bc2": "to", "p6bc3": "both", "p6bc4": "to",
            "p6bc5": "from", "p6bc6": "both"}
    mirror = {"to": "from", "from": "to", "both": "both"}
    for u in [x, "p6bsend", *subs]:
        make_user(u, PW)
    for c, sub in subs.items():
        roster_row(x, c, sub)
        roster_row(c, x, mirror[sub])
    sql("insert into blocklist (username, jid) values ('%s', 'p6bc3@%s'),"
        " ('p6bc6', '%s@%s') on conflict do nothing" % (x, D, x, D))

    async def scenario():
        # p6bc4: offline, with a stored last presence.
        c4 = await login(presenced, "p6bc4", PW, "c2s-b", "r")
        c4.send_presence(ptype="unavailable", pstatus="away for good")
        await until(lambda: sql("select count(*) from last_presence where"
                                " username = 'p6bc4'") == "1", 20,
                    "p6bc4's last presence")
        await c4.stop()
        online = []
        for u, node, res in (("p6bc1", "c2s-a", "r1"), ("p6bc1", "c2s-b", "r2"),
                             ("p6bc2", "c2s-b", "r"), ("p6bc3", "c2s-a", "r"),
                             ("p6bc5", "c2s-b", "r"), ("p6bc6", "c2s-a", "r")):
            c = await login(presenced, u, PW, node, res)
            await own_echo(c, "%s@%s/%s" % (u, D, res))
            online.append(c)
        s = await login(presenced, "p6bsend", PW, "c2s-a", "s")
        s.send_message(mto="%s@%s" % (x, D), mbody="after", mtype="chat")
        await until(lambda: len(offline_ids(x)) == 1, 20, "the offline row")
        bundles = presenced_metric("kiln_presenced_bundles_total")
        bundled = presenced_metric("kiln_presenced_bundled_total")
        a = await login(presenced, x, PW, "c2s-b", "new")
        m = await a.next_message(10)
        assert m["body"] == "after"
        got = []
        while not a.presences.empty():
            p = a.presences.get_nowait()
            if str(p["from"]) != "%s@%s/new" % (x, D):
                got.append(p)
        frm = sorted(str(p["from"]) for p in got)
        assert frm == sorted(["p6bc1@%s/r1" % D, "p6bc1@%s/r2" % D,
                              "p6bc2@%s/r" % D, "p6bc4@" + D]), frm
        c4p = [p for p in got if str(p["from"]) == "p6bc4@" + D][0]
        assert c4p["type"] == "unavailable"
        assert c4p["status"] == "away for good"
        assert c4p.xml.find("{urn:xmpp:delay}delay") is not None
        # the three available ones came in one bundle
        assert presenced_metric("kiln_presenced_bundles_total") >= bundles + 1
        assert presenced_metric("kiln_presenced_bundled_total") >= bundled + 3
        for c in (a, s, *online):
            await c.stop()

    run(scenario())


def test_offline_messages_after_presence_R_PRES_5_R_ARCH_3(presenced,
                                                           make_user):
    make_user("p6sender", PW)
    make_user("p6off", PW)

    async def scenario():
        s = await login(presenced, "p6sender", PW, "c2s-a", "s")
        for i in range(3):
            s.send_message(mto="p6off@" + D, mbody="m%d" % i, mtype="chat")
        # Stored first (a fixed sleep lost that race to the router's
        # warm-up hold on a fresh cluster).
        await until(lambda: len(offline_ids("p6off")) == 3, 20,
                    "the three rows")
        o = await login(presenced, "p6off", PW, "c2s-b", "o")
        bodies = []
        for _ in range(3):
            m = await o.next_message(5)
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            bodies.append(m["body"])
        assert bodies == ["m0", "m1", "m2"]
        await o.stop()
        o = await login(presenced, "p6off", PW, "c2s-b", "o")
        assert await o.no_message(1.5)  # delivered once, then deleted
        await o.stop()
        await s.stop()

    run(scenario())


def test_offline_messages_keep_arrival_order_R_PRES_5(presenced, make_user):
    """30 messages sent back-to-back to an offline user are stored in
    arrival order (ids ascending with the send order) and delivered in
    that order at the next login, each exactly once."""
    make_user("p6ordsend", PW)
    make_user("p6ordoff", PW)
    n = 30
    sent = ["ord%02d" % i for i in range(n)]

    async def scenario():
        s = await login(presenced, "p6ordsend", PW, "c2s-a", "s")
        for body in sent:
            s.send_message(mto="p6ordoff@" + D, mbody=body, mtype="chat")
        deadline = time.time() + 10
        while time.time() < deadline:
            if sql("select count(*) from offline_messages where"
                   " username = 'p6ordoff'") == str(n):
                break
            await asyncio.sleep(0.1)
        stored = sql("select stanza from offline_messages where"
                     " username = 'p6ordoff' order by id").splitlines()
        assert len(stored) == n
        order = [next(b for b in sent if ">%s<" % b in x) for x in stored]
        assert order == sent, "stored out of order: %s" % order
        o = await login(presenced, "p6ordoff", PW, "c2s-b", "o")
        bodies = [await o.next_message(5, body_only=True) for _ in range(n)]
        assert bodies == sent
        assert await o.no_message(1.0)
        await o.stop()
        await s.stop()

    run(scenario())


# ---- R-PRES-5: rows are deleted once c2s has written them -----------------
#
# A deterministic point to act at: while a psql session holds an ACCESS
# EXCLUSIVE lock on offline_messages, presenced's login read of the rows
# waits (visible in pg_stat_activity). The test then stops or kills
# processes, releases the lock, and waits for presenced's log line saying
# the rows went out. No fixed sleeps: every wait is on a condition.


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by a psql session until
    release()."""

    def __init__(self, table):
        self.p = subprocess.Popen(
            ["psql", os.environ["KILN_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("begin; lock table %s in access exclusive mode;"
                           " select 'locked';\n" % table)
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "locked"

    def release(self):
        if self.p is None:
            return
        self.p.stdin.write("commit;\n")
        self.p.stdin.close()
        assert self.p.wait(30) == 0
        self.p = None


async def until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        await asyncio.sleep(0.05)


def offline_ids(user):
    return sql("select id from offline_messages where username = '%s'"
               " order by id" % user).split()


def read_is_waiting():
    """presenced's read of offline rows waits for our table lock."""
    return sql("select count(*) from pg_stat_activity where"
               " wait_event_type = 'Lock' and query like"
               " 'select id, stanza%'") == "1"


def logged(cluster, name, mark, needle, count=1):
    return cluster.procs[name].text(since=mark).count(needle) >= count


async def store_offline(cluster, sender, user, bodies):
    """sender sends bodies to the offline user; returns the row ids once
    all are stored."""
    s = await login(cluster, sender, PW, "c2s-a", "s")
    for body in bodies:
        s.send_message(mto="%s@%s" % (user, D), mbody=body, mtype="chat")
    await until(lambda: len(offline_ids(user)) == len(bodies), 20,
                "the rows of " + user)
    await s.stop()
    return offline_ids(user)


async def rows_sent_while(cluster, user, resource, freeze, lock):
    """user logs in on c2s-b with initial presence while presenced's read
    of its rows waits for lock; freeze() runs at that point, then the
    lock goes and we wait until presenced has sent the rows. Returns the
    client."""
    mark = cluster.log_mark("presenced")
    c = await login(cluster, user, PW, "c2s-b", resource)
    await until(read_is_waiting, 20, "presenced's read of the rows")
    freeze()
    lock.release()
    await until(lambda: logged(cluster, "presenced", mark,
                               "messages to %s@%s/%s, deleted once written"
                               % (user, D, resource)),
                20, "presenced sending the rows")
    return c


def test_offline_rows_deleted_after_write_R_PRES_5(presenced, make_user):
    """The rows stay in PostgreSQL while the c2s node that owns the
    session has not written them (stopped with SIGSTOP after presenced
    sent them); once it runs again the client gets them, in order, and
    only then are the rows deleted."""
    make_user("p6wsend", PW)
    make_user("p6wrecv", PW)
    sent = ["written%d" % i for i in range(5)]
    c2s_b = presenced.procs["c2s-b"].popen

    async def scenario():
        ids = await store_offline(presenced, "p6wsend", "p6wrecv", sent)
        lock = TableLock("offline_messages")
        try:
            o = await rows_sent_while(presenced, "p6wrecv", "o",
                                      lambda: c2s_b.send_signal(
                                          signal.SIGSTOP), lock)
            # Sent by presenced, not written by c2s: still stored.
            assert offline_ids("p6wrecv") == ids
        finally:
            lock.release()
            c2s_b.send_signal(signal.SIGCONT)
        bodies = []
        for _ in sent:
            m = await o.next_message(10)
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            bodies.append(m["body"])
        assert bodies == sent
        await until(lambda: offline_ids("p6wrecv") == [], 20,
                    "the rows to be deleted after the write")
        assert await o.no_message(1.0)
        await o.stop()
        o = await login(presenced, "p6wrecv", PW, "c2s-a", "o")
        assert await o.no_message(1.0)  # deleted, not delivered again
        await o.stop()

    run(scenario(), timeout=120)


def test_offline_kept_when_c2s_killed_before_write_R_PRES_5(presenced, make_user):
    """kill -9 of the c2s node after presenced sent the rows but before
    the node wrote them (it was stopped): every row is still stored, and
    the user's next login (another resource, on the other node, logged in
    while the dead session may still hold the rows) gets each message
    once, in order; then the rows are gone."""
    make_user("p6ksend", PW)
    make_user("p6krecv", PW)
    sent = ["kept%02d" % i for i in range(20)]
    c2s_b = presenced.procs["c2s-b"].popen

    async def scenario():
        ids = await store_offline(presenced, "p6ksend", "p6krecv", sent)
        lock = TableLock("offline_messages")
        try:
            o = await rows_sent_while(presenced, "p6krecv", "o",
                                      lambda: c2s_b.send_signal(
                                          signal.SIGSTOP), lock)
        finally:
            lock.release()
        presenced.kill9("c2s-b")
        o.abort()
        assert offline_ids("p6krecv") == ids  # none lost, none stored twice
        n = await login(presenced, "p6krecv", PW, "c2s-a", "n")
        bodies = []
        for _ in sent:
            m = await n.next_message(30)
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            bodies.append(m["body"])
        assert bodies == sent
        assert await n.no_message(1.5)  # none twice in this login
        await until(lambda: offline_ids("p6krecv") == [], 20,
                    "the rows to be deleted after the write")
        await n.stop()

    try:
        run(scenario(), timeout=120)
    finally:
        presenced.ensure()


def test_offline_returned_rows_not_stored_twice_R_PRES_5(presenced, make_user):
    """A row whose session ends before the row reaches it comes back to
    presenced (through the router or the c2s node, whichever sees it
    first): it is kept as it is, not stored a second time, and delivered
    once at the next login."""
    make_user("p6rsend", PW)
    make_user("p6rrecv", PW)
    make_user("p6rwit", PW)
    sent = ["back%d" % i for i in range(4)]
    router = presenced.procs["router"].popen

    async def scenario():
        ids = await store_offline(presenced, "p6rsend", "p6rrecv", sent)
        # A second client on c2s-b, to know when c2s-b has seen the close;
        # without presence, so no offline read of its own meets the lock.
        w = await Client("p6rwit@%s/w" % D, PW,
                         presenced.ports["c2s-b"]["starttls"],
                         presenced.cert).start(presence=False)
        mark = presenced.log_mark("presenced")
        lock = TableLock("offline_messages")
        try:
            o = await rows_sent_while(presenced, "p6rrecv", "o",
                                      lambda: router.send_signal(
                                          signal.SIGSTOP), lock)
            # The session ends while the rows wait in the stopped router.
            await o.stop()
            await w["xep_0199"].ping(D, timeout=10)
        finally:
            lock.release()
            router.send_signal(signal.SIGCONT)
        await until(lambda: logged(presenced, "presenced", mark,
                                   "for p6rrecv@%s/o came back unwritten" % D,
                                   len(sent)),
                    20, "every row to come back")
        assert offline_ids("p6rrecv") == ids
        n = await login(presenced, "p6rrecv", PW, "c2s-a", "n")
        bodies = [await n.next_message(10, body_only=True) for _ in sent]
        assert bodies == sent
        assert await n.no_message(1.0)
        await until(lambda: offline_ids("p6rrecv") == [], 20,
                    "the rows to be deleted after the write")
        await n.stop()
        await w.stop()

    run(scenario(), timeout=120)


def test_offline_quota_bounce_R_PERF_6(presenced, make_user):
    make_user("p6q", PW)
    make_user("p6qs", PW)

    async def scenario():
        s = await login(presenced, "p6qs", PW, "c2s-a", "s")
        big = "x" * 40000
        for _ in range(3):  # 120 KB > 100 KB quota
            s.send_message(mto="p6q@" + D, mbody=big, mtype="chat")
        m = await s.next_message(5)
        assert m["type"] == "error"
        assert m["error"]["condition"] == "service-unavailable"
        await s.stop()

    run(scenario())


def test_offline_survives_presenced_restart_R_ARCH_3(presenced, make_user):
    make_user("p6rs", PW)
    make_user("p6rr", PW)

    async def scenario():
        s = await login(presenced, "p6rs", PW, "c2s-a", "s")
        s.send_message(mto="p6rr@" + D, mbody="kept", mtype="chat")
        await asyncio.sleep(1)
        await s.stop()

    run(scenario())
    presenced.restart("presenced")

    async def after():
        r = await login(presenced, "p6rr", PW, "c2s-b", "r")
        assert await r.next_message(5, body_only=True) == "kept"
        await r.stop()

    run(after())


def test_offline_survives_whole_stack_restart_R_ARCH_3(presenced, make_user,
                                                       redis):
    """Offline messages live in PostgreSQL: stopping every Kiln process and
    losing Redis (no persistence: a flush is what a Redis restart looks
    like) keeps them; B gets each once, in order, with <delay/>."""
    make_user("p6wsa", PW)
    make_user("p6wsb", PW)
    sent = ["whole%d" % i for i in range(3)]

    async def scenario():
        s = await login(presenced, "p6wsa", PW, "c2s-a", "s")
        for body in sent:
            s.send_message(mto="p6wsb@" + D, mbody=body, mtype="chat")
        deadline = time.time() + 10
        while time.time() < deadline:
            if sql("select count(*) from offline_messages where"
                   " username = 'p6wsb'") == "3":
                break
            await asyncio.sleep(0.1)
        await s.stop()

    run(scenario())
    assert sql("select count(*) from offline_messages where"
               " username = 'p6wsb'") == "3"
    for n in reversed(conftest.ORDER):
        presenced.stop(n)
    redis("FLUSHALL")
    presenced.ensure()

    async def after():
        b = await login(presenced, "p6wsb", PW, "c2s-b", "b")
        bodies = []
        for _ in sent:
            m = await b.next_message(5)
            assert m.xml.find("{urn:xmpp:delay}delay") is not None
            bodies.append(m["body"])
        assert bodies == sent
        assert await b.no_message(1.5)
        await b.stop()
        b = await login(presenced, "p6wsb", PW, "c2s-a", "b")
        assert await b.no_message(1.5)  # deleted once delivered
        await b.stop()

    run(after())
    assert sql("select count(*) from offline_messages where"
               " username = 'p6wsb'") == "0"


def test_state_in_redis_R_PRES_1(presenced, make_user, redis):
    make_user("p6redis", PW)

    async def scenario():
        a = await login(presenced, "p6redis", PW, "c2s-a", "res")
        a.send_presence(pshow="away", pstatus="lunch")
        await asyncio.sleep(0.5)
        v = redis("HGET", "pres:p6redis@" + D, "res")
        assert "away" in v and "lunch" in v
        await a.stop()
        await asyncio.sleep(0.5)
        assert redis("HGET", "pres:p6redis@" + D, "res").strip() == ""

    run(scenario())


def test_two_resources_first_last_rule_R_PRES_6(presenced, make_user):
    make_user("p6two2", PW)
    make_user("p6watch", PW)
    roster_row("p6two2", "p6watch", "from")
    roster_row("p6watch", "p6two2", "to")

    async def scenario():
        w = await login(presenced, "p6watch", PW, "c2s-a", "w")
        r1 = await login(presenced, "p6two2", PW, "c2s-a", "r1")
        r2 = await login(presenced, "p6two2", PW, "c2s-b", "r2")
        await presences(w, 1)
        await r1.stop()
        got = await presences(w, 1.5)
        # the resource's own unavailable, per full JID, and nothing stored
        assert any(str(p["from"]) == "p6two2@%s/r1" % D and
                   p["type"] == "unavailable" for p in got)
        from test_05_roster import sql
        assert sql("select count(*) from last_presence where username = "
                   "'p6two2'") == "0"
        await r2.stop()
        await asyncio.sleep(1)
        assert sql("select count(*) from last_presence where username = "
                   "'p6two2'") == "1"
        r1 = await login(presenced, "p6two2", PW, "c2s-a", "r1")
        await asyncio.sleep(1)
        assert sql("select count(*) from last_presence where username = "
                   "'p6two2'") == "0"
        await r1.stop()
        await w.stop()

    run(scenario())


def test_clean_logout_and_last_activity_R_DROP_1_R_DROP_3(presenced,
                                                         make_user):
    make_user("p6bye", PW)
    make_user("p6asker", PW)
    roster_row("p6bye", "p6asker", "from")
    roster_row("p6asker", "p6bye", "to")

    async def scenario():
        q = await login(presenced, "p6asker", PW, "c2s-b", "q")
        u = await login(presenced, "p6bye", PW, "c2s-a", "u")
        await presences(q, 1)
        u.send_presence(ptype="unavailable", pstatus="bye")
        await u.stop()
        got = await presences(q, 1.5)
        unav = [p for p in got if p["type"] == "unavailable"]
        assert len(unav) == 1 and unav[0]["status"] == "bye"
        await asyncio.sleep(5)
        q.register_plugin("xep_0012")
        res = await q["xep_0012"].get_last_activity("p6bye@" + D)
        query = res.xml.find("{jabber:iq:last}query")
        assert int(query.get("seconds")) >= 5
        assert (query.text or "") == "bye"
        await q.stop()

    run(scenario())


def test_dropped_tcp_R_DROP_2(presenced, make_user):
    make_user("p6drop", PW)
    make_user("p6see", PW)
    roster_row("p6drop", "p6see", "both")
    roster_row("p6see", "p6drop", "both")

    async def scenario():
        s = await login(presenced, "p6see", PW, "c2s-b", "s")
        d = await login(presenced, "p6drop", PW, "c2s-a", "d")
        await presences(s, 1)
        t0 = time.monotonic()
        d.abort()  # no </stream:stream>, no unavailable
        got = []
        while time.monotonic() - t0 < 3 and not got:
            got = [p for p in await presences(s, 0.2)
                   if p["type"] == "unavailable"]
        assert got, "no unavailable after a dropped connection"
        assert time.monotonic() - t0 < 1.5
        await s.stop()

    run(scenario())


def test_probe_unauthorised_gets_nothing_R_PRES_8(presenced, make_user):
    make_user("p6private", PW)
    make_user("p6stranger", PW)

    async def scenario():
        p = await login(presenced, "p6private", PW, "c2s-a", "p")
        s = await login(presenced, "p6stranger", PW, "c2s-b", "s")
        await presences(s, 0.5)
        s.send_presence(pto="p6private@" + D, ptype="probe")
        got = [x for x in await presences(s, 1.5)
               if x["from"].bare == "p6private@" + D]
        assert not got
        await p.stop()
        await s.stop()

    run(scenario())


def test_node_kill_contacts_see_unavailable_R_DROP_6(presenced, make_user):
    make_user("p6victim", PW)
    make_user("p6witness", PW)
    roster_row("p6victim", "p6witness", "both")
    roster_row("p6witness", "p6victim", "both")

    async def before():
        w = await login(presenced, "p6witness", PW, "c2s-a", "w")
        await login(presenced, "p6victim", PW, "c2s-b", "v")
        await presences(w, 1)
        return w

    w = run(before())
    presenced.kill9("c2s-b")

    async def after():
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 12 and not got:
            got = [p for p in await presences(w, 0.5)
                   if str(p["from"]) == "p6victim@%s/v" % D and
                   p["type"] == "unavailable"]
        assert got
        await w.stop()

    run(after())
    presenced.ensure()


def test_directed_presence_undone_R_PRES_7(presenced, make_user):
    make_user("p6dir", PW)
    make_user("p6other", PW)

    async def scenario():
        o = await login(presenced, "p6other", PW, "c2s-b", "o")
        d = await login(presenced, "p6dir", PW, "c2s-a", "d")
        d.send_presence(pto="p6other@%s/o" % D)
        await presences(o, 1)
        d.abort()
        got = [p for p in await presences(o, 2) if p["type"] == "unavailable"]
        assert got
        await o.stop()

    run(scenario())


def _photo(pres):
    """The XEP-0153 hash in a presence: None (no x or no photo), or text."""
    ph = pres.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
    return None if ph is None else (ph.text or "")


def test_avatar_hash_in_presence_XEP_0153(presenced, make_user, redis):
    """The server stamps <x xmlns='vcard-temp:x:update'><photo/></x> on a
    user's available presence: empty without a vCard photo, the SHA-1 of
    the decoded BINVAL once a vCard with one is stored (a vCard set
    re-broadcasts), replacing whatever x the client sent."""
    import base64
    import hashlib
    import xml.etree.ElementTree as ET

    make_user("p6ava", PW)
    make_user("p6avb", PW)
    roster_row("p6ava", "p6avb", "both")
    roster_row("p6avb", "p6ava", "both")
    sql("delete from vcards where username = 'p6ava'")
    img = bytes(range(256)) * 3
    b64 = base64.b64encode(img).decode()
    folded = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    want = hashlib.sha1(img).hexdigest()
    full_a = "p6ava@%s/a" % D

    def from_a(got):
        return [p for p in got if str(p["from"]) == full_a and
                p["type"] in ("available", "")]

    async def scenario():
        b = await login(presenced, "p6avb", PW, "c2s-b", "b")
        await presences(b, 0.5)
        a = await login(presenced, "p6ava", PW, "c2s-a", "a")
        got = from_a(await presences(b, 2))
        assert got, "no presence from A"
        # no vCard: the hash settles on <photo/> (empty)
        assert _photo(got[-1]) == ""
        # a vCard with a photo: a fresh presence with its hash
        iq = a.Iq()
        iq["type"] = "set"
        iq.append(ET.fromstring(
            "<vCard xmlns='vcard-temp'><FN>Ava</FN><PHOTO><TYPE>image/png"
            "</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>" % folded))
        await iq.send(timeout=5)
        got = from_a(await presences(b, 2))
        assert got and _photo(got[-1]) == want, [_photo(p) for p in got]
        assert want in redis("HGET", "pres:p6ava@" + D, "a")
        # the client's own x is replaced by the server's
        p = a.make_presence(pstatus="bogus x")
        p.append(ET.fromstring("<x xmlns='vcard-temp:x:update'>"
                               "<photo>0000</photo></x>"))
        p.send()
        got = from_a(await presences(b, 2))
        assert got and got[-1]["status"] == "bogus x"
        assert _photo(got[-1]) == want
        assert len(got[-1].xml.findall("{vcard-temp:x:update}x")) == 1
        # a contact logging in later gets the stamped presence
        await b.stop()
        b = await login(presenced, "p6avb", PW, "c2s-a", "b2")
        got = from_a(await presences(b, 2))
        assert got and _photo(got[-1]) == want
        # photo removed: back to <photo/>
        iq = a.Iq()
        iq["type"] = "set"
        iq.append(ET.fromstring("<vCard xmlns='vcard-temp'><FN>Ava</FN>"
                                "</vCard>"))
        await iq.send(timeout=5)
        got = from_a(await presences(b, 2))
        assert got and _photo(got[-1]) == ""
        await a.stop()
        await b.stop()

    run(scenario())
    assert sql("select photo_hash from vcards where username = 'p6ava'") == ""
