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
    b0 = value(before, "kiln_c2s_bytes_total", 'direction="in"')

    async def scenario():
        c = await login(live, "m27move", PW, "c2s-b", "r")
        mid = scrape(url)
        assert value(mid, "kiln_c2s_logins_total") == l0 + 1
        assert value(mid, "kiln_c2s_sessions", 'transport="tls"') == s0 + 1
        assert value(mid, "kiln_c2s_bytes_total", 'direction="in"') > b0
        await c.stop()
        with pytest.raises(AuthFailed):
            await login(live, "m27move", "wrong-pw", "c2s-b", "r")

    run(scenario())
    assert _wait(lambda: value(scrape(url), "kiln_c2s_sessions",
                               'transport="tls"') == s0)
    end = scrape(url)
    assert value(end, "kiln_c2s_login_failures_total") >= f0 + 1
    # The client's initial presence went in; the server's answers out.
    assert value(end, "kiln_c2s_stanzas_total", 'direction="in"') > in0
    assert value(end, "kiln_c2s_stanzas_total", 'direction="out"') > 0
