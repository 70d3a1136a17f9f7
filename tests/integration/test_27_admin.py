"""27 metrics and admin (issue 14): every process serves Prometheus
metrics, checked with `promtool check metrics`; the values move with what
clients do; kilnctl's admin commands act on the live cluster.
"""

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from xmpp_client import AuthFailed, login, run

PW = "secret-pw"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _targets(cluster):
    e = os.environ
    return {
        "c2s-a": "http://127.0.0.1:%d/metrics" % cluster.ports["c2s-a"]["http"],
        "c2s-b": "http://127.0.0.1:%d/metrics" % cluster.ports["c2s-b"]["http"],
        "router": "http://127.0.0.1:%s/metrics" % e["KILN_METRICS_ROUTER"],
        "presenced": "http://127.0.0.1:%s/metrics" % e["KILN_METRICS_PRESENCED"],
        "mucd": "http://127.0.0.1:%s/metrics" % e["KILN_METRICS_MUCD"],
    }


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def value(text, name, labels=""):
    """The value of one series (labels exactly as rendered), or None."""
    key = name + ("{%s}" % labels if labels else "")
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


def _wait(pred, timeout=10, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_every_process_serves_valid_metrics(live, make_user):
    # A login first, so the latency histograms have observations.
    make_user("m27lint", PW)

    async def scenario():
        c = await login(live, "m27lint", PW, "c2s-a", "r")
        await c.stop()

    run(scenario())
    for name, url in _targets(live).items():
        text = scrape(url)
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, "%s: %s%s" % (name, r.stdout, r.stderr)
        assert value(text, "kiln_up") == 1, name
    texts = {n: scrape(u) for n, u in _targets(live).items()}
    # What each process is expected to expose.
    assert value(texts["c2s-a"], "kiln_c2s_sessions",
                 'transport="websocket"') is not None
    assert value(texts["router"], "kiln_node_up", 'node="c2s-a"') == 1
    assert value(texts["router"], "kiln_node_up", 'node="presenced"') == 1
    assert value(texts["router"], "kiln_router_envelopes_in_total") > 0
    assert value(texts["presenced"], "kiln_redis_command_seconds_count") > 0
    assert value(texts["presenced"], "kiln_pg_query_seconds_count") > 0
    assert value(texts["presenced"], "kiln_queue_depth",
                 'queue="pg"') is not None
    assert value(texts["mucd"], "kiln_mucd_rooms") is not None
    # c2s's own PostgreSQL pool (credentials) has a histogram too.
    assert value(texts["c2s-a"], "kiln_pg_query_seconds_count") > 0


def test_every_loop_reports_its_iteration_times(live):
    # Issue 15: each daemon's event loop observes every iteration's busy
    # time, so a stall (a sweep, a large batch) shows in a slow bucket.
    for name, url in _targets(live).items():
        first = scrape(url)
        n0 = value(first, "kiln_loop_iteration_seconds_count")
        assert n0 is not None and n0 > 0, name
        inf = value(first, "kiln_loop_iteration_seconds_bucket", 'le="+Inf"')
        assert inf == n0, name
        assert value(first, "kiln_loop_iteration_max_seconds") >= 0, name
        # Answering the first scrape took loop iterations of its own.
        n1 = value(scrape(url), "kiln_loop_iteration_seconds_count")
        assert n1 > n0, name


def test_metrics_http_errors(live):
    t = _targets(live)
    base = t["router"].rsplit("/", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(t["router"], data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_login_and_session_metrics_move(live, make_user):
    make_user("m27move", PW)
    url = _targets(live)["c2s-b"]
    before = scrape(url)
    l0 = value(before, "kiln_c2s_logins_total")
    f0 = value(before, "kiln_c2s_login_failures_total")
    s0 = value(before, "kiln_c2s_sessions", 'transport="tls"')
    in0 = value(before, "kiln_c2s_stanzas_total", 'direction="in"')
    out0 = value(before, "kiln_c2s_stanzas_total", 'direction="out"')
    b0 = value(before, "kiln_c2s_bytes_total", 'direction="in"')

    async def scenario():
        c = await login(live, "m27move", PW, "c2s-b", "r")
        mid = scrape(url)
        assert value(mid, "kiln_c2s_logins_total") == l0 + 1
        assert value(mid, "kiln_c2s_sessions", 'transport="tls"') == s0 + 1
        assert value(mid, "kiln_c2s_bytes_total", 'direction="in"') > b0
        # A message to itself: one stanza in, one out (through the router).
        c.send_message(mto="m27move@localhost/r", mbody="echo", mtype="chat")
        assert (await c.next_message())["body"] == "echo"
        echo = scrape(url)
        assert value(echo, "kiln_c2s_stanzas_total", 'direction="in"') > in0
        assert value(echo, "kiln_c2s_stanzas_total",
                     'direction="out"') > out0
        await c.stop()
        with pytest.raises(AuthFailed):
            await login(live, "m27move", "wrong-pw", "c2s-b", "r")

    run(scenario())
    assert _wait(lambda: value(scrape(url), "kiln_c2s_sessions",
                               'transport="tls"') == s0)
    end = scrape(url)
    assert value(end, "kiln_c2s_login_failures_total") >= f0 + 1
    assert value(end, "kiln_c2s_bytes_total", 'direction="out"') > 0


def kilnctl(*args):
    from conftest import BIN, CONF
    return subprocess.run([os.path.join(BIN, "kilnctl"), "-c", CONF, *args],
                          capture_output=True, text=True, timeout=60)


async def _wait_async(pred, timeout=10):
    import asyncio
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.1)
    return pred()


def test_kilnctl_stats_and_session_list(live, make_user):
    make_user("m27list", PW)

    async def scenario():
        a = await login(live, "m27list", PW, "c2s-a", "one")
        b = await login(live, "m27list", PW, "c2s-b", "two")
        # The router writes Redis after SESSION_UP: wait for both rows.
        assert await _wait_async(lambda: kilnctl(
            "session", "list", "m27list").stdout.count("m27list@") == 2)
        r = kilnctl("session", "list", "m27list")
        assert r.returncode == 0, r.stderr
        rows = {l.split("\t")[0]: l.split("\t") for l in
                r.stdout.splitlines()}
        assert rows["m27list@localhost/one"][1] == "c2s-a"
        assert rows["m27list@localhost/two"][1] == "c2s-b"
        everyone = kilnctl("session", "list")
        assert "m27list@localhost/one\tc2s-a" in everyone.stdout
        s = kilnctl("stats")
        assert s.returncode == 0, s.stderr
        nodes = {l.split("\t")[0]: l.split("\t") for l in
                 s.stdout.splitlines()[1:]}
        assert nodes["c2s-a"][1] == "yes" and int(nodes["c2s-a"][2]) >= 1
        assert nodes["c2s-b"][1] == "yes" and int(nodes["c2s-b"][2]) >= 1
        assert nodes["total"][2] == str(sum(
            int(v[2]) for k, v in nodes.items() if k != "total"))
        await a.stop()
        await b.stop()

    run(scenario())


def test_kilnctl_session_kick(live, make_user):
    make_user("m27kick", PW)

    async def scenario():
        keep = await login(live, "m27kick", PW, "c2s-a", "keep")
        gone = await login(live, "m27kick", PW, "c2s-b", "gone")
        assert await _wait_async(lambda: "m27kick@localhost/gone" in kilnctl(
            "session", "list", "m27kick").stdout)
        r = kilnctl("session", "kick", "m27kick@localhost/gone")
        assert r.returncode == 0, r.stderr
        assert await _wait_async(lambda: "policy-violation" in
                                 gone.stream_errors)
        # Only that session: the other one still works.
        assert await _wait_async(lambda: "m27kick@localhost/gone" not in
                                 kilnctl("session", "list", "m27kick").stdout)
        assert "m27kick@localhost/keep" in kilnctl(
            "session", "list", "m27kick").stdout
        assert keep.stream_errors == []
        # Nobody online under that JID now: kilnctl says so.
        r = kilnctl("session", "kick", "m27kick@localhost/gone")
        assert r.returncode == 1 and "not online" in r.stderr
        await keep.stop()

    run(scenario())


def test_kilnctl_announce_reaches_both_nodes(live, make_user):
    make_user("m27ann1", PW)
    make_user("m27ann2", PW)

    async def scenario():
        a = await login(live, "m27ann1", PW, "c2s-a", "r")
        b = await login(live, "m27ann2", PW, "c2s-b", "r")
        # presenced learns of sessions through SESSION_UP; Redis is written
        # on the same path, so wait until both are listed.
        assert await _wait_async(lambda: all(
            u in kilnctl("session", "list").stdout
            for u in ("m27ann1@localhost/r", "m27ann2@localhost/r")))
        r = kilnctl("announce", "maintenance at 22:00")
        assert r.returncode == 0, r.stderr
        for c in (a, b):
            m = await c.next_message(timeout=10)
            assert m["body"] == "maintenance at 22:00"
            assert m["type"] == "headline"
            assert str(m["from"]) == "localhost"
        await a.stop()
        await b.stop()

    run(scenario())


def test_kilnctl_user_disable_enable(live, make_user):
    make_user("m27dis", PW)

    async def scenario():
        on = await login(live, "m27dis", PW, "c2s-a", "r")
        assert await _wait_async(lambda: "m27dis@localhost/r" in kilnctl(
            "session", "list", "m27dis").stdout)
        mark = live.log_mark("c2s-b")
        r = kilnctl("user", "disable", "m27dis")
        assert r.returncode == 0, r.stderr
        # Its session ends (not-authorized, as for a removed account)...
        assert await _wait_async(lambda: "not-authorized" in on.stream_errors)
        # ...and a new login is refused with <account-disabled/>.
        with pytest.raises(AuthFailed):
            await login(live, "m27dis", PW, "c2s-b", "r")
        live.wait_log("c2s-b", "m27dis is disabled", since=mark)
        r = kilnctl("user", "enable", "m27dis")
        assert r.returncode == 0, r.stderr
        c = await login(live, "m27dis", PW, "c2s-b", "r")
        await c.stop()
        assert kilnctl("user", "disable", "nosuchuser27").returncode == 1

    run(scenario())


def test_private_prometheus_scrapes_session_count(live, make_user):
    """A real prometheus (Debian package) scrapes every process of the test
    cluster each second; its query API then reports our session."""
    import json
    import socket
    make_user("m27prom", PW)
    var = os.environ["KILN_VAR"]
    pdir = os.path.join(var, "prometheus")
    os.makedirs(pdir, exist_ok=True)
    targets = _targets(live)
    with socket.socket() as s:  # a free loopback port for its web API
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(pdir, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n")
        for name, url in targets.items():
            hostport = url.split("/")[2]
            f.write("  - job_name: %s\n    static_configs:\n"
                    "      - targets: ['%s']\n" % (name, hostport))
    log = open(os.path.join(pdir, "prometheus.log"), "wb")
    p = subprocess.Popen(["prometheus", "--config.file=" + conf,
                          "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port],
                         stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    api = "http://127.0.0.1:%d" % port

    def query(expr):
        u = api + "/api/v1/query?query=" + urllib.parse.quote(expr)
        try:
            with urllib.request.urlopen(u, timeout=5) as r:
                return json.load(r)["data"]["result"]
        except (OSError, ValueError):
            return None

    try:
        async def scenario():
            c = await login(live, "m27prom", PW, "c2s-a", "r")
            # Every target up, then our session counted.
            assert await _wait_async(
                lambda: len(query("up == 1") or []) == len(targets), 60), \
                query("up")
            assert await _wait_async(lambda: any(
                float(r["value"][1]) >= 1 for r in
                (query('sum(kiln_c2s_sessions{job="c2s-a"})') or [])), 30)
            nodes = query("kiln_node_up")
            assert {r["metric"]["node"] for r in nodes} >= {
                "c2s-a", "c2s-b", "presenced", "mucd"}
            await c.stop()

        run(scenario(), timeout=120)
    finally:
        p.terminate()
        p.wait(30)
        log.close()
