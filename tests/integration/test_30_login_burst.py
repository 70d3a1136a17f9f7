"""30 the login path under load (issue 15).

- R-DROP-3, R-PRES-6: presenced batches its last_presence writes (the
  delete at login, the upsert at logout) into one statement per loop
  pass, and a batch that waited longer than db.checkout_timeout_ms for
  the ordered connection is sent again, not dropped. Proved with a burst
  of logouts while a psql session holds a lock on last_presence for
  longer than the checkout timeout: before, every write queued behind the
  blocked one failed ("would block") and those users' last activity was
  lost; now every user's row is there once the lock goes.
- R-PERF-3: a roster load that found every pooled connection busy for
  db.checkout_timeout_ms is queued again (a bounded number of times)
  instead of failing the request at once: with rosteritems locked and
  more roster loads than the pool has connections, every request is
  answered once the lock goes (before: the loads past the pool size
  failed after one checkout timeout).
"""

import asyncio
import re
import uuid

import conftest
from test_06_presence import TableLock, logged, until
from test_05_roster import D, roster_row, sql
from xmpp_client import iq, login, run

PW = "burst-pw"
# More than the ordered connection's pipeline (32 statements sent at
# once), so the old code had writes waiting in the queue.
N = 40


def rows(users, status=None):
    where = "username in (%s)" % ",".join("'%s'" % u for u in users)
    if status is not None:
        where += " and status = %s || username" % status
    return int(sql("select count(*) from last_presence where " + where))


def checkout_timeout_s():
    """db.checkout_timeout_ms of the test stack's config (default 1 s)."""
    m = re.search(r"checkout_timeout_ms\s*=\s*(\d+)", open(conftest.CONF).read())
    return int(m.group(1)) / 1000 if m else 1.0


def write_is_waiting():
    return int(sql("select count(*) from pg_stat_activity where"
                   " wait_event_type = 'Lock' and query like"
                   " '%last_presence%' and query not like '%pg_stat%'")) > 0


def test_last_activity_survives_burst_R_DROP_3(live, make_user):
    tag = uuid.uuid4().hex[:6]
    users = [make_user("lb%s%d" % (tag, i), PW) for i in range(N)]
    # A stale row for each: the login (first available resource) deletes
    # it (R-PRES-6), batched too.
    sql("insert into last_presence (username, status, offline_at) select"
        " username, 'stale', now() from users where username like 'lb%s%%'"
        % tag)
    assert rows(users) == N

    async def scenario():
        cs = await asyncio.gather(*[
            login(live, u, PW, ("c2s-a", "c2s-b")[i % 2], "r")
            for i, u in enumerate(users)])
        await until(lambda: rows(users) == 0, 60,
                    "the login deletes of the stale rows")
        mark = live.log_mark("presenced")
        lock = TableLock("last_presence")
        try:
            for c, u in zip(cs, users):
                c.send_presence(ptype="unavailable", pstatus="gone-" + u)
            await until(write_is_waiting, 60,
                        "presenced's write waiting for the lock")
            # The stall under test: the lock stays three checkout
            # timeouts, so writes that waited for the ordered connection
            # behind the blocked one got "would block" (the old code
            # dropped them). Not a wait for an event: its length is the
            # scenario.
            await asyncio.sleep(3 * checkout_timeout_s())
        finally:
            lock.release()
        await until(lambda: rows(users, "'gone-'") == N, 60,
                    "every user's last activity (%d of %d)"
                    % (rows(users, "'gone-'"), N))
        assert not logged(live, "presenced", mark, "writes lost")
        for c in cs:
            await c.stop()

    run(scenario(), timeout=300)


def roster_load_waiting():
    return int(sql("select count(*) from pg_stat_activity where"
                   " wait_event_type = 'Lock' and query like"
                   " 'select 0, jid%'")) > 0


def test_roster_load_waits_for_pool_R_PERF_3(live, make_user):
    tag = uuid.uuid4().hex[:6]
    n = 12  # more than the test stack's db.pool_max (8)
    askers = [make_user("lra%s%d" % (tag, i), PW) for i in range(n)]
    targets = [make_user("lrt%s%d" % (tag, i), PW) for i in range(n)]
    for a, t in zip(askers, targets):
        roster_row(t, a, "both")
    sql("insert into last_presence (username, status, offline_at) select"
        " username, 'away', now() - interval '100 seconds' from users"
        " where username like 'lrt%s%%'" % tag)

    async def scenario():
        cs = await asyncio.gather(*[
            login(live, a, PW, ("c2s-a", "c2s-b")[i % 2], "r")
            for i, a in enumerate(askers)])
        lock = TableLock("rosteritems")
        try:
            # XEP-0012 to an offline user: presenced loads that user's
            # roster (not cached) to check the asker's subscription.
            futs = [asyncio.ensure_future(iq(
                c, "get", "%s@%s" % (t, D), "<query xmlns='jabber:iq:last'/>"))
                for c, t in zip(cs, targets)]
            await until(roster_load_waiting, 60,
                        "presenced's roster loads waiting for the lock")
            # The stall under test: two checkout timeouts, so the loads
            # past the pool's connections time out waiting for one.
            await asyncio.sleep(2 * checkout_timeout_s())
        finally:
            lock.release()
        res = await asyncio.gather(*futs, return_exceptions=True)
        bad = [r for r in res if isinstance(r, BaseException)]
        assert not bad, "%d of %d failed: %s" % (len(bad), n, bad[0])
        for r in res:
            q = r.xml.find("{jabber:iq:last}query")
            assert q is not None and int(q.get("seconds")) >= 100, r
        for c in cs:
            await c.stop()

    run(scenario(), timeout=300)
