"""10 load tool: every kiln-load scenario once, at a small size, against
the real cluster (both c2s nodes). Proves the tool works on Kiln and that
no message is lost; speed is measured by `make bench`, never asserted
here."""

import os
import subprocess

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_load_tool_smoke_loses_nothing(live):
    build = os.path.dirname(os.environ["KILN_BIN"])
    r = subprocess.run(
        [os.path.join(TOP, "tests", "bench", "smoke.sh"), build,
         str(live.ports["c2s-a"]["starttls"]),
         str(live.ports["c2s-b"]["starttls"])],
        capture_output=True, text=True, timeout=600)
    print(r.stdout[-4000:])
    print(r.stderr[-4000:])
    assert r.returncode == 0, "kiln-load smoke failed:\n" + r.stdout[-3000:]
    results = [l for l in r.stdout.splitlines() if l.startswith("RESULT")]
    assert any("scenario=connections" in l for l in results), results
    assert any("scenario=throughput" in l for l in results), results
    assert any("scenario=muc" in l for l in results), results
    assert any("scenario=presence" in l for l in results), results
    for line in results:
        assert " lost=0" in line or "lost=" not in line, line
    # Presence, counted (RFC 6121 4.2.2, 4.5.2): each user sees each
    # contact come and the staying half sees each leaver go exactly once,
    # and every user gets its own initial presence back once.
    pres = [dict(kv.split("=", 1) for kv in l.split()[1:] if "=" in kv)
            for l in results if "scenario=presence" in l][0]
    assert pres["presence"] == pres["presence_expected"], pres
    assert pres["unavail"] == pres["unavail_expected"], pres
    assert pres["repeats"] == "0", pres
    assert int(pres["self"]) == int(pres["users"]) * int(pres["rounds"]), pres
    # The status wave (--status-rate): each change of show/status reaches
    # each of the sender's 10 contacts once (RFC 6121 4.4.2), none lost;
    # the sender's own copy is not counted as a delivery.
    status = [dict(kv.split("=", 1) for kv in l.split()[1:] if "=" in kv)
              for l in results if "scenario=presence-status" in l][0]
    assert int(status["status_sent"]) > 0, status
    assert int(status["due"]) == 10 * int(status["status_sent"]), status
    assert status["recv"] == status["due"], status
    assert status["lost"] == "0", status
