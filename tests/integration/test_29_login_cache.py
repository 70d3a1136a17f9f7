"""29 login credential caches (issue 15, R-PERF-5).

- A repeated SASL PLAIN login is verified from c2s's in-memory cache of
  verified passwords (a keyed hash bound to the stored credentials), not
  by PBKDF2; a wrong password against a cached entry still fails.
- The users row is cached in Redis: a login reads it from there, not from
  PostgreSQL (proved by changing the row behind the cache's back).
- After a password change (kilnctl, XEP-0077), a deletion or a disable,
  the old password fails at once on both nodes, PLAIN and SCRAM, even
  where it was cached, and the new one works.
- The invalidation broadcast (Redis pub/sub) drops a user from every
  node's PLAIN cache.
"""

import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from xmpp_client import AuthFailed, Client, iq, login, run

PW = "old-secret"
NEW = "new-secret"
NS_REG = "jabber:iq:register"
BIN = os.environ.get("KILN_BIN", "build/bin")


def kilnctl(*args):
    r = subprocess.run([os.path.join(BIN, "kilnctl"), "-c",
                        os.environ["KILN_CONF"], *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
    return r.stdout


def psql(sql):
    r = subprocess.run(["psql", os.environ["KILN_PG"], "-XAtq", "-c", sql],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def metrics(cluster, node):
    url = "http://127.0.0.1:%d/metrics" % cluster.ports[node]["http"]
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(cluster, node, name, labels=""):
    key = name + ("{%s}" % labels if labels else "")
    for line in metrics(cluster, node).splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    raise AssertionError("no series %s on %s" % (key, node))


def hits(cluster, node):
    return metric(cluster, node, "kiln_c2s_plain_cache_lookups_total",
                  'result="hit"')


def wait_for(pred, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def fresh(make_user):
    return make_user("lc%s" % uuid.uuid4().hex[:8], PW)


async def ok(cluster, user, pw, node, mech, direct_tls=False):
    if direct_tls:
        c = Client("%s@%s" % (user, cluster.domain), pw,
                   cluster.ports[node]["tls"], cluster.cert, mech=mech,
                   direct_tls=True)
        c = await c.start()
    else:
        c = await login(cluster, user, pw, node=node, mech=mech)
    await c.stop()


async def fails(cluster, user, pw, node, mech):
    with pytest.raises((AuthFailed, ConnectionError)):
        c = await login(cluster, user, pw, node=node, mech=mech)
        await c.stop()


async def cache_plain_on_both(cluster, user, pw):
    """Two PLAIN logins per node: the second is a cache hit."""
    for node in ("c2s-a", "c2s-b"):
        await ok(cluster, user, pw, node, "PLAIN")
        before = hits(cluster, node)
        await ok(cluster, user, pw, node, "PLAIN")
        assert hits(cluster, node) == before + 1


def test_plain_and_scram_logins_repeated_issue15(live, make_user):
    """PLAIN (STARTTLS and direct TLS) and SCRAM keep working, again and
    again; repeated PLAIN logins are cache hits."""
    u = fresh(make_user)

    async def go():
        before = hits(live, "c2s-a")
        for _ in range(2):
            await ok(live, u, PW, "c2s-a", "PLAIN")
            await ok(live, u, PW, "c2s-a", "PLAIN", direct_tls=True)
            await ok(live, u, PW, "c2s-a", "SCRAM-SHA-1")
            await ok(live, u, PW, "c2s-a", "SCRAM-SHA-256")
        # the first PLAIN login verified by PBKDF2, the three others hits
        assert hits(live, "c2s-a") == before + 3

    run(go(), timeout=60)


def test_cached_plain_wrong_password_fails_issue15(live, make_user):
    u = fresh(make_user)

    async def go():
        await cache_plain_on_both(live, u, PW)
        misses = metric(live, "c2s-a", "kiln_c2s_plain_cache_lookups_total",
                        'result="miss"')
        await fails(live, u, PW + "x", "c2s-a", "PLAIN")
        assert metric(live, "c2s-a", "kiln_c2s_plain_cache_lookups_total",
                      'result="miss"') == misses + 1
        # the entry stays: the right password is still a hit
        before = hits(live, "c2s-a")
        await ok(live, u, PW, "c2s-a", "PLAIN")
        assert hits(live, "c2s-a") == before + 1

    run(go(), timeout=60)


def test_login_reads_users_row_from_redis_R_PERF_5(live, make_user, redis):
    """Once cached, a login does not read PostgreSQL: the row changed
    behind the cache's back (no invalidation) does not matter until
    kilnctl changes the password, which drops the cached copy."""
    u = fresh(make_user)

    async def go():
        await ok(live, u, PW, "c2s-a", "SCRAM-SHA-1")
        cached = redis("GET", "kiln:creds:" + u).strip()
        assert cached.startswith("1 4096 "), cached
        assert cached.endswith(" f")
        # Break the row in PostgreSQL only.
        psql("update users set sha1_stored_key = decode(repeat('00', 20),"
             " 'hex'), sha256_stored_key = decode(repeat('00', 32), 'hex')"
             " where username = '%s'" % u)
        from_redis = metric(live, "c2s-b", "kiln_c2s_creds_lookups_total",
                            'source="redis"')
        for node in ("c2s-a", "c2s-b"):
            await ok(live, u, PW, node, "SCRAM-SHA-1")
            await ok(live, u, PW, node, "SCRAM-SHA-256")
        assert metric(live, "c2s-b", "kiln_c2s_creds_lookups_total",
                      'source="redis"') >= from_redis + 2
        kilnctl("user", "passwd", "%s@%s" % (u, live.domain), NEW)
        assert redis("GET", "kiln:creds:" + u).strip() == "-"
        await ok(live, u, NEW, "c2s-b", "SCRAM-SHA-256")
        await fails(live, u, PW, "c2s-a", "SCRAM-SHA-1")
        await ok(live, u, NEW, "c2s-a", "PLAIN")

    run(go(), timeout=60)


def test_kilnctl_passwd_old_fails_on_both_nodes_issue15(live, make_user):
    u = fresh(make_user)

    async def go():
        await cache_plain_on_both(live, u, PW)
        kilnctl("user", "passwd", "%s@%s" % (u, live.domain), NEW)
        for node in ("c2s-a", "c2s-b"):
            await fails(live, u, PW, node, "PLAIN")
            await ok(live, u, NEW, node, "PLAIN")
            await fails(live, u, PW, node, "SCRAM-SHA-1")
            await ok(live, u, NEW, node, "SCRAM-SHA-256")
        # the new password is cached in turn
        before = hits(live, "c2s-a")
        await ok(live, u, NEW, "c2s-a", "PLAIN")
        assert hits(live, "c2s-a") == before + 1

    run(go(), timeout=120)


def test_xep0077_passwd_old_fails_on_both_nodes_issue15(live, make_user):
    u = fresh(make_user)

    async def go():
        await cache_plain_on_both(live, u, PW)
        c = await login(live, u, PW, node="c2s-a")
        await iq(c, "set", live.domain,
                 "<query xmlns='%s'><username>%s</username>"
                 "<password>%s</password></query>" % (NS_REG, u, NEW))
        await c.stop()
        for node in ("c2s-b", "c2s-a"):
            await fails(live, u, PW, node, "PLAIN")
            await ok(live, u, NEW, node, "PLAIN")
            await fails(live, u, PW, node, "SCRAM-SHA-256")
            await ok(live, u, NEW, node, "SCRAM-SHA-1")

    run(go(), timeout=120)


def test_disable_and_delete_refuse_cached_logins_issue15(live, make_user):
    u = fresh(make_user)
    jid = "%s@%s" % (u, live.domain)

    async def go():
        await cache_plain_on_both(live, u, PW)
        kilnctl("user", "disable", jid)
        for node in ("c2s-a", "c2s-b"):
            await fails(live, u, PW, node, "PLAIN")
            await fails(live, u, PW, node, "SCRAM-SHA-1")
        kilnctl("user", "enable", jid)
        for node in ("c2s-a", "c2s-b"):
            await ok(live, u, PW, node, "PLAIN")
        await cache_plain_on_both(live, u, PW)
        kilnctl("user", "del", jid)
        for node in ("c2s-a", "c2s-b"):
            await fails(live, u, PW, node, "PLAIN")
            await fails(live, u, PW, node, "SCRAM-SHA-256")

    run(go(), timeout=180)


def test_xep0077_remove_refuses_cached_logins_issue15(live, make_user):
    u = fresh(make_user)

    async def go():
        await cache_plain_on_both(live, u, PW)
        c = await login(live, u, PW, node="c2s-b")
        await iq(c, "set", live.domain,
                 "<query xmlns='%s'><remove/></query>" % NS_REG)
        await c.stop()
        for node in ("c2s-a", "c2s-b"):
            await fails(live, u, PW, node, "PLAIN")

    run(go(), timeout=120)


def test_invalidation_broadcast_drops_plain_entries_issue15(live, make_user,
                                                            redis):
    """A message on kiln:creds-changed (what kilnctl and presenced publish)
    drops the user from every node's PLAIN cache: the next PLAIN login
    is verified by PBKDF2 again (a miss), then cached again."""
    u = fresh(make_user)

    async def go():
        await cache_plain_on_both(live, u, PW)
        entries = {n: metric(live, n, "kiln_c2s_plain_cache_entries")
                   for n in ("c2s-a", "c2s-b")}
        assert int(redis("PUBLISH", "kiln:creds-changed", u)) >= 2
        for n in ("c2s-a", "c2s-b"):
            assert wait_for(lambda: metric(
                live, n, "kiln_c2s_plain_cache_entries") == entries[n] - 1)
            before = hits(live, n)
            await ok(live, u, PW, n, "PLAIN")
            assert hits(live, n) == before
            await ok(live, u, PW, n, "PLAIN")
            assert hits(live, n) == before + 1

    run(go(), timeout=60)
