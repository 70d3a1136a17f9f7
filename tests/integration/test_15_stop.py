"""15 stopping: nothing accepted is lost on SIGTERM (issue 10).

A stop (and every rolling restart) finishes what a process accepted: on
SIGTERM kiln-presenced keeps its loop running until its queued
PostgreSQL and Redis writes are done (at most shutdown_drain_ms), then
exits. The test holds a lock on last_presence so the writes of many
logouts are surely still queued when SIGTERM arrives, releases it once
presenced has logged that it is stopping, and checks every user's stored
last presence and last activity after the restart (R-DROP-3, R-PRES-6).
"""

import asyncio
import os
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
import xmpp_client as xc
from conftest import sanitizer_blocks

PG = os.environ.get("KILN_PG", "")
N = 240  # users, half on each c2s node
PREFIX = "stopu"
NS_LAST = "jabber:iq:last"


def psql(sql):
    r = subprocess.run(["psql", PG, "-XAtq", "-v", "ON_ERROR_STOP=1",
                        "-c", sql], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class TableLock:
    """An open psql session holding a lock on a table until release():
    EXCLUSIVE lets reads go on and makes every insert, update and delete
    wait; ACCESS EXCLUSIVE makes reads wait too."""

    def __init__(self, table, mode="exclusive"):
        self.p = subprocess.Popen(["psql", PG, "-XAtq", "-v", "ON_ERROR_STOP=1"],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("begin;\nlock table %s in %s mode;\n"
                           "select 'locked';\n" % (table, mode))
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line == "locked", line

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("commit;\n")
            self.p.stdin.close()
            self.p.wait(30)


def user(i):
    return "%s%d" % (PREFIX, i)


_provisioned = []


def provision(make_user):
    """Once per session: N users with one password (rows copied from a template user made
    by kilnctl: SCRAM keys do not depend on the name), each with a mutual
    subscription to the watcher stopw."""
    if _provisioned:
        return
    _provisioned.append(True)
    make_user("stoptpl", "pw15")
    make_user("stopw", "pw15")
    names = "array[%s]" % ",".join("'%s'" % user(i) for i in range(N))
    psql("insert into users (username, iterations, sha1_salt, sha1_stored_key,"
         " sha1_server_key, sha256_salt, sha256_stored_key, sha256_server_key)"
         " select u, iterations, sha1_salt, sha1_stored_key, sha1_server_key,"
         " sha256_salt, sha256_stored_key, sha256_server_key from users,"
         " unnest(%s) u where username = 'stoptpl'" % names)
    psql("insert into rosteritems (username, jid, subscription)"
         " select 'stopw', u || '@localhost', 3 from unnest(%s) u"
         " union all select u, 'stopw@localhost', 3 from unnest(%s) u"
         % (names, names))
    psql("insert into roster_versions (username, version) select u, 1 from"
         " unnest(%s || array['stopw']) u on conflict (username) do update"
         " set version = roster_versions.version + 1" % names)


async def wait_presences(w, want, timeout=120):
    """Wait until the watcher has seen a presence of type `want` from every
    user; returns {bare: status}."""
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < N:
        left = deadline - time.monotonic()
        assert left > 0, "watcher saw %s from %d of %d users" % (
            want, len(seen), N)
        p = await asyncio.wait_for(w.presences.get(), left)
        bare = str(p["from"].bare)
        if not bare.startswith(PREFIX):
            continue
        if (p["type"] == "unavailable") == (want == "unavailable"):
            seen[bare] = p["status"]
    return seen


async def login_all(live, n=N):
    async def one(i):
        node = "c2s-a" if i % 2 == 0 else "c2s-b"
        c = xc.Client("%s@localhost/r" % user(i), "pw15",
                      live.ports[node]["starttls"], live.cert)
        return await c.start(timeout=120)
    out = []
    for b in range(0, n, 40):  # bounded: 40 TLS logins at a time
        out += await asyncio.gather(*(one(i) for i in range(b, min(n, b + 40))))
    return out


def test_sigterm_drains_last_presence_writes(live, make_user, redis):
    """R-DROP-3, R-PRES-6: N logouts over both nodes, then SIGTERM to
    presenced while all their last_presence writes are still queued: after
    the restart every user's last status and last activity are in
    PostgreSQL (and Redis), and iq:last reports them."""
    provision(make_user)
    t0 = float(psql("select extract(epoch from now())"))

    async def go():
        w = await xc.login(live, "stopw", "pw15")
        clients = await login_all(live)
        await wait_presences(w, "available")
        lock = TableLock("last_presence")
        try:
            for i, c in enumerate(clients):
                c.send_presence(ptype="unavailable", pstatus="bye %d" % i)
            for c in clients:
                await c.stop()
            seen = await wait_presences(w, "unavailable")
            assert seen == {"%s@localhost" % user(i): "bye %d" % i
                            for i in range(N)}
            # Every write is queued behind the lock now: stop presenced.
            pd = live.procs["presenced"]
            mark = pd.mark()
            pd.popen.send_signal(15)
            pd.wait_log("signal 15: stopping", since=mark)
            lock.release()
            rc = pd.popen.wait(60)
            assert rc == 0, pd.text(since=mark)[-3000:]
        finally:
            lock.release()
        rmark = live.log_mark("router")
        live.start("presenced")
        # iq:last on a few contacts through the restarted presenced, once
        # the router routes that namespace to it again.
        live.wait_log("router", "registered 0001 '%s'" % NS_LAST, since=rmark)
        for i in (0, 1, N - 1):
            r = await xc.iq(w, "get", "%s@localhost" % user(i),
                            "<query xmlns='%s'/>" % NS_LAST)
            q = r.xml.find("{%s}query" % NS_LAST)
            assert q is not None and q.text == "bye %d" % i, ET.tostring(r.xml)
            assert int(q.get("seconds")) >= 0
        await w.stop()

    xc.run(go(), timeout=600)
    rows = psql("select username, status, extract(epoch from offline_at)"
                " from last_presence where username like '%s%%'" % PREFIX)
    got = {}
    for line in rows.splitlines():
        name, status, at = line.split("|")
        got[name] = status
        assert float(at) >= t0 - 1, line
    missing = [user(i) for i in range(N) if got.get(user(i)) != "bye %d" % i]
    assert not missing, "%d of %d last presences lost on SIGTERM: %s" % (
        len(missing), N, missing[:10])
    for i in range(N):
        v = redis("GET", "last:%s@localhost" % user(i)).strip()
        assert v and float(v) >= t0 - 1, (user(i), v)


def blocked_on(table):
    return int(psql("select count(*) from pg_locks l join pg_class c on"
                    " c.oid = l.relation where c.relname = '%s' and not"
                    " l.granted" % table))


def send_iq(c, to, payload, itype="get"):
    """Send an IQ without waiting for its answer (it may never come)."""
    q = c.make_iq(id=c.new_id(), ito=to, itype=itype)
    q.xml.append(ET.fromstring(payload))
    fut = asyncio.ensure_future(q.send(timeout=60))
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())


PEP_PUB = ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish"
           " node='urn:xmpp:tune'><item id='t%d'><tune xmlns='urn:xmpp:tune'>"
           "<title>%d</title></tune></item></publish></pubsub>")

ROOM_PERSISTENT = (
    "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data'"
    " type='submit'><field var='FORM_TYPE'><value>"
    "http://jabber.org/protocol/muc#roomconfig</value></field><field"
    " var='muc#roomconfig_persistentroom'><value>1</value></field><field"
    " var='muc#roomconfig_enablearchiving'><value>1</value></field></x>"
    "</query>")

# kind: (process stopped, table locked, logins under the lock?)
HUNT = {
    "roster-loads": ("presenced", "rosteritems", True),
    "offline-stores": ("presenced", "offline_messages", False),
    "pep-publishes": ("presenced", "pep_nodes", False),
    "vcard-iq": ("presenced", "vcards", False),
    "muc-archive": ("mucd", "muc_archive", False),
}


@pytest.mark.parametrize("kind", sorted(HUNT))
def test_stop_now_with_work_in_flight_is_clean(live, make_user, kind):
    """A stop that cannot drain (a second SIGTERM) while queries wait on a
    locked table: every query gets its "closed" callback while the
    daemon's context is alive, and nothing is leaked or used after free
    (no sanitizer report in the log, exit status 0). Kinds: logins waiting
    for roster loads, offline messages being stored, PEP publishes, vCard
    IQs, MUC archive writes."""
    provision(make_user)
    proc, table, lock_first = HUNT[kind]
    n = 40

    async def go():
        lock = TableLock(table, "access exclusive") if lock_first else None
        pd = live.procs[proc]
        clients = []
        try:
            w = await xc.login(live, "stopw", "pw15")
            clients = await login_all(live, n)
            if lock is None:
                lock = TableLock(table, "access exclusive")
            room = "stop-%s@conference.localhost" % kind
            if kind == "offline-stores":
                for i in range(n, 2 * n):  # stopu<n>.. are offline
                    w.send_message(mto="%s@localhost" % user(i),
                                   mbody="while stopping %d" % i)
            elif kind == "pep-publishes":
                for i, c in enumerate(clients):
                    send_iq(c, None, PEP_PUB % (i, i), "set")
            elif kind == "vcard-iq":
                for i in range(n):
                    send_iq(w, "%s@localhost" % user(i),
                            "<vCard xmlns='vcard-temp'/>")
            elif kind == "muc-archive":
                await xc.joined(w, room, "w")
                # Persistent and archived: the owner's configuration form.
                await xc.iq(w, "set", room, ROOM_PERSISTENT)
                for i in range(n):
                    xc.say(w, room, "archived %d" % i)
            deadline = time.monotonic() + 60
            while blocked_on(table) < 1:
                assert time.monotonic() < deadline, "nothing blocked on " + table
                await asyncio.sleep(0.05)
            mark = pd.mark()
            pd.popen.send_signal(15)
            deadline = time.monotonic() + 30
            while pd.alive() and "draining" not in pd.text(since=mark):
                assert time.monotonic() < deadline, pd.text(since=mark)
                await asyncio.sleep(0.05)
            if pd.alive():
                pd.popen.send_signal(15)  # the second signal: stop now
            rc = pd.popen.wait(60)
            log = pd.text(since=mark)
            reports = sanitizer_blocks(log)
            if reports:
                pytest.fail("%s at stop:\n%s" % (proc, "\n".join(reports)),
                            pytrace=False)
            assert rc == 0, log[-3000:]
            assert "stopping now" in log, log[-3000:]
        finally:
            if lock is not None:
                lock.release()
        live.start(proc)
        for c in clients + [w]:
            await c.stop()

    xc.run(go(), timeout=600)
