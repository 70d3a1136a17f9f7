#!/usr/bin/python3
"""tests/cluster/run.py - Kiln across network-namespace hosts, under traffic.

usage: run.py [--bin DIR] [--seconds S] [--users N] [--rate R]
              [--scenarios scale,rolling,faults,prometheus,failover] [--keep]

Builds the hosts (cluster.py: db, core, c2s1..c2s3, load, mon), starts
PostgreSQL and Redis on db, router + presenced + mucd on core, a c2s node
on each c2sN, Prometheus on mon, then runs each scenario with the load
driver (driver.py) on load, which counts every message (see its
docstring). Prints one table row per scenario (and per fault) and exits 1
if any accepted message was lost, delivered twice without an
explanation, or a scenario's own check failed. Root only. Everything is
torn down at the end, also on failure or Ctrl-C (--keep keeps the state
folder with every process log).

`make test` runs it short (tests/run-all.sh: CLUSTER_SECONDS=4,
CLUSTER_USERS=40), `make cluster-test` at full length (defaults: 60 s a
phase, 2000 users).
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cluster import C2S, ROUTER_HOSTS, Cluster, TOP  # noqa: E402


class Driver:
    """driver.py in the load namespace; status lines read by a thread."""

    def __init__(self, cl, a, nodes, churn=None, name="drv"):
        self.cl = cl
        addrs = ",".join(cl.addr[n] for n in nodes)
        self.logpath = os.path.join(cl.var, "log", name + ".log")
        argv = ["/usr/bin/python3", os.path.join(HERE, "driver.py"), "--c2s", addrs,
                "--users", str(a.users), "--rate", str(a.rate),
                "--churn", str(a.churn if churn is None else churn),
                "--login-s", str(a.login_s), "--drain-s", str(a.drain_s),
                # thousands of TLS clients in one Python process on a busy
                # machine: slower answers are not dead connections
                "--dead-after", "6" if a.users <= 200 else "15",
                "--connect-timeout", "3" if a.users <= 200 else "10",
                "--step-timeout", "10" if a.users <= 200 else "30",
                # a cut-off node's acknowledgements reach the router only
                # after the heal, if ever: the whole partition counts
                "--node-loss-window", str(a.partition_s + 6),
                "--log", self.logpath, "--tag", name[0]]
        self.p = subprocess.Popen(cl.net.argv("load", argv), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.status = {}
        self.report = None
        self.q = queue.Queue()
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()
        DRIVERS.append(self)

    def read(self):
        for line in self.p.stdout:
            if line.startswith("REPORT "):
                self.report = json.loads(line[7:])
            else:
                try:
                    self.status = json.loads(line)
                except ValueError:
                    pass

    def cmd(self, s):
        self.p.stdin.write(s + "\n")
        self.p.stdin.flush()

    def fault(self, name):
        self.cmd("fault " + name.replace(" ", "_"))

    def nodes(self, nodes):
        self.cmd("nodes " + ",".join(self.cl.addr[n] for n in nodes))

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("driver exited (%s)" % self.p.returncode)
            if self.status and pred(self.status):
                return time.monotonic()
            time.sleep(0.1)
        raise RuntimeError("timeout (%d s) waiting for %s; status %s" % (timeout, what, self.status))

    def all_online(self, n, timeout=600):
        """Every client logged in once (with churn, some rest at any time)."""
        return self.wait(lambda s: s["ever"] >= n and s["reconnecting"] == 0, timeout,
                         "%d clients logged in" % n)

    def settled(self, timeout=90):
        after = time.monotonic()
        return self.wait(lambda s: s["t"] > after and s["reconnecting"] == 0, timeout,
                         "reconnections")

    def stop(self, timeout=300):
        self.cmd("stop")
        self.p.wait(timeout)
        self.t.join(5)
        if self.report is None:
            raise RuntimeError("driver gave no report (log %s)" % self.logpath)
        return self.report


ROWS = []
FAILS = []
DRIVERS = []


def ensure(cl):
    """Every process up and no partition before a scenario."""
    for h in C2S:
        cl.net.heal(h)
    if cl.procs.get("redis") and not cl.procs["redis"].alive():
        cl.procs["redis"].start()
    for n in ("router", "presenced", "mucd") + tuple(C2S):
        if not cl.procs.get(n) or not cl.procs[n].alive():
            cl.start(n)
DONE = []
LATE_OK = set()  # in-doubt (or lost) ids of earlier scenarios


def row(scenario, rep, recovery="", acc=None):
    ROWS.append((scenario, rep["accepted"] if acc is None else acc["accepted"],
                 rep["delivered"] if acc is None else acc["delivered"],
                 rep["lost"] if acc is None else acc["lost"],
                 rep["duplicated"] if acc is None else acc["duplicated"], recovery))


def check(rep, scenario):
    if rep["lost"]:
        FAILS.append("%s: %d accepted messages lost (%s)" % (scenario, rep["lost"], rep["lost_ids"]))
    unexplained = rep["duplicated"] - rep["dup_unacked"] - rep.get("dup_node_loss", 0)
    if unexplained and not rep.get("dup_ok"):
        FAILS.append("%s: %d messages delivered twice (%s)" % (scenario, unexplained, rep["dup_ids"]))
    # Ids of an earlier scenario (another tag): a message that was in doubt
    # there (sent, the session ended before the server's <a/>) and not
    # received may have been stored after all and come at a later login:
    # allowed. Anything else (delivered there already, or never sent) fails.
    late = [m for m in rep.get("unknown_ids", []) if m in LATE_OK]
    other = [m for m in rep.get("unknown_ids", []) if m not in LATE_OK]
    if late:
        say("%s: %d in-doubt messages of an earlier scenario delivered now (%s)"
            % (scenario, len(late), late[:10]))
    if other or (rep["unknown"] and "unknown_ids" not in rep):
        FAILS.append("%s: %d messages nobody sent (%s)" % (scenario, rep["unknown"] - len(late),
                                                           other[:20]))
    LATE_OK.update(rep.get("doubt_undelivered_ids", []))
    LATE_OK.update(rep.get("lost_ids", []))
    if rep.get("dead_clients"):
        FAILS.append("%s: %d driver clients stopped (driver bug)" % (scenario, rep["dead_clients"]))
    if rep["accepted"] == 0:
        FAILS.append("%s: no message accepted" % scenario)


def say(s):
    print("cluster: [%s] %s" % (time.strftime("%H:%M:%S"), s), flush=True)


def dwell(a, k=1.0):
    time.sleep(a.seconds * k)


def sc_scale(cl, a):
    """Scenario 1: two c2s nodes, a third added under traffic."""
    for n in ("c2s1", "c2s2"):
        if not cl.procs.get(n) or not cl.procs[n].alive():
            cl.start(n)
    if cl.procs.get("c2s3") and cl.procs["c2s3"].alive():
        cl.stop("c2s3")
    starts = {n: p.starts for n, p in cl.procs.items() if n != "c2s3"}
    d = Driver(cl, a, ["c2s1", "c2s2"], name="scale")
    d.all_online(a.users)
    dwell(a)
    cl.start("c2s3")
    d.fault("scale-out_c2s3")
    d.nodes(C2S)
    t0 = time.monotonic()
    dwell(a, 2)
    rep = d.stop()
    on3 = rep["logins_by_node"].get(cl.addr["c2s3"], 0)
    restarted = [n for n, k in starts.items() if cl.procs[n].starts != k or not cl.procs[n].alive()]
    say("scale: logins by node %s; %d after c2s3 came (%.0f s)" % (
        rep["logins_by_node"], on3, time.monotonic() - t0))
    if on3 == 0:
        FAILS.append("scale: no login landed on c2s3")
    if restarted:
        FAILS.append("scale: restarted: %s" % restarted)
    check(rep, "scale")
    rec = rep["faults"][0]["recovery_s"] if rep["faults"] else None
    row("1 scale out (+c2s3)", rep, "%s s (c2s3 logins %d)" % (rec, on3))
    return rep


def sc_rolling(cl, a):
    """Scenario 2: every process restarted one at a time under traffic."""
    d = Driver(cl, a, C2S, name="rolling")
    d.all_online(a.users)
    dwell(a, 0.5)
    order = a.rolling.split(",")
    for n in order:
        t = time.monotonic()
        d.fault("restart_" + n)
        cl.restart(n)
        d.settled()
        say("rolling: %s restarted, clients settled in %.1f s" % (n, time.monotonic() - t))
        dwell(a, 0.5)
    rep = d.stop()
    check(rep, "rolling")
    worst = max((f["recovery_s"] or 0) for f in rep["faults"])
    none = [f["name"] for f in rep["faults"] if f["recovery_s"] is None]
    row("2 rolling restart (%d processes)" % len(order), rep,
        "max %s s%s" % (worst, (" (none: %s)" % none) if none else ""))
    for f in rep["faults"]:
        say("rolling: %s: recovery %s s" % (f["name"], f["recovery_s"]))
    return rep


def sc_faults(cl, a):
    """Scenario 3: kill -9 (c2s, presenced, mucd), PostgreSQL and Redis
    restarts, a Redis flush, a partition of c2s3."""
    d = Driver(cl, a, C2S, name="faults")
    d.all_online(a.users)
    dwell(a, 0.5)

    def kill_restart(n):
        cl.kill9(n)
        time.sleep(1.0)  # systemd's RestartSec=1
        cl.start(n)

    def redis_restart():
        cl.procs["redis"].kill9()
        time.sleep(1.0)
        cl.procs["redis"].start()

    def partition():
        def count(proc, text):
            return cl.procs[proc].text().count(text)
        lost0 = count("router", "node c2s3 lost")
        told0 = count("c2s3", "the router had declared c2s3 lost")
        d.cmd("cut " + cl.addr["c2s3"])
        cl.net.partition("c2s3")
        time.sleep(a.partition_s)
        cl.net.heal("c2s3")
        d.cmd("heal " + cl.addr["c2s3"])
        # If the router declared c2s3 lost (node_timeout_ms, 3 s), c2s3
        # ends its sessions once it hears so (the REHELLO, after its
        # ZeroMQ connection recovered: seconds) and its clients log in
        # again; settled() must not return before that, else the short
        # run's traffic ends before the recovery can be seen.
        t_heal = time.monotonic()
        while time.monotonic() < t_heal + 30:
            if count("router", "node c2s3 lost") == lost0:
                if time.monotonic() > t_heal + 2:
                    break  # not declared lost: the sessions stayed
            elif count("c2s3", "the router had declared c2s3 lost") > told0:
                break
            time.sleep(0.1)

    faults = [
        ("kill-9 c2s1", lambda: kill_restart("c2s1")),
        ("kill-9 presenced", lambda: kill_restart("presenced")),
        ("kill-9 mucd", lambda: kill_restart("mucd")),
        ("restart PostgreSQL", cl.pg_restart),
        ("restart Redis", redis_restart),
        ("Redis FLUSHALL", lambda: cl.redis_cli("flushall")),
        ("partition c2s3 %d s" % a.partition_s, partition),
    ]
    if a.faults:
        keep = a.faults.split(",")
        faults = [f for f in faults if any(k in f[0] for k in keep)] * a.fault_repeat
    for name, act in faults:
        t = time.monotonic()
        d.fault(name)
        act()
        d.settled(timeout=120)
        say("faults: %s: clients settled %.1f s after the fault" % (name, time.monotonic() - t))
        dwell(a, 0.5)
    rep = d.stop()
    check(rep, "faults")
    for f, (name, _) in zip(rep["faults"], faults):
        w = f["window"]
        ROWS.append(("3 " + name, w["accepted"], w["delivered"], w["lost"], w["duplicated"],
                     "%s s" % f["recovery_s"]))
        if f["recovery_s"] is None:
            FAILS.append("faults: %s: no recovery seen" % name)
    return rep


def sc_prometheus(cl, a):
    """Scenario 4: Prometheus (scraping every process since the start) is
    asked for the session count while every client is online."""
    d = Driver(cl, a, C2S, churn=0, name="prometheus")
    d.all_online(a.users)
    d.wait(lambda s: s["online"] == a.users, 60, "every client online")
    t_on = time.time()
    dwell(a, 0.5)
    want = a.users
    got = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        res = {}
        for q in ("sum(kiln_c2s_sessions)", "kiln_router_sessions", "count(up == 1)",
                  "count(up)", "min(timestamp(kiln_c2s_sessions))"):
            r = cl.prom_query(q)["data"]["result"]
            res[q] = float(r[0]["value"][1]) if r else None
        got = res
        if (res["min(timestamp(kiln_c2s_sessions))"] or 0) > t_on + 1 and \
                res["sum(kiln_c2s_sessions)"] == want:
            break
        time.sleep(0.5)
    rep = d.stop()
    say("prometheus: %s (want %d sessions)" % (got, want))
    targets = len(C2S) + 3
    ok = (got.get("sum(kiln_c2s_sessions)") == want and got.get("kiln_router_sessions") == want
          and got.get("count(up == 1)") == targets)
    if not ok:
        FAILS.append("prometheus: %s, want %d sessions and %d targets up" % (got, want, targets))
    check(rep, "prometheus")
    row("4 prometheus (sessions %s/%d)" % (
        int(got.get("sum(kiln_c2s_sessions)") or 0), want), rep, "-")
    return rep


def log_time(line):
    """Seconds since midnight of a Kiln log line (`<6>HH:MM:SS.mmm ...`)."""
    t = line.split(">", 1)[1].split(" ", 1)[0]
    h, m, sec = t.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def since(line, t):
    """Seconds from time t (time.time()) to a log line's time (local
    clock, as kn_log.c writes it)."""
    lt = time.localtime(t)
    day = lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (t % 1)
    return (log_time(line) - day + 43200) % 86400 - 43200


def log_line(proc, needle, timeout):
    """The first line of proc's log (this run) holding needle."""
    proc.wait_log(needle, timeout)
    return next(x for x in proc.text().splitlines() if needle in x)


def sc_failover(cl, a):
    """Scenario 5 (issue 14): two routers, the active one holding the
    Redis lease, the other a hot standby on core2. Under traffic: kill -9
    of the active router (core), then a partition of the active router's
    host (core2 by then: cut off from Redis and every node). Each time the
    other router takes over within 5 s (asserted, from the kill or cut to
    its `taking over` line); in the partition the cut-off router stops by
    its own lease clock before the other one starts (log times, one
    machine clock: never two routers at once). Nothing accepted is lost."""
    takeover_max = 5.0
    cl.use_routers(2)
    try:
        d = Driver(cl, a, C2S, name="failover")
        d.all_online(a.users)
        dwell(a, 0.5)
        took = []
        # kill -9 of the active router
        d.fault("kill-9 active router")
        t = time.time()
        cl.kill9("router")
        line = log_line(cl.procs["router2"], "taking over as the active router",
                        takeover_max + 10)
        took.append(since(line, t))
        d.settled(timeout=120)
        cl.start("router")  # back as the standby
        cl.procs["router"].wait_log("lease: held by another router", 30)
        say("failover: kill -9: router2 took over in %.2f s" % took[-1])
        dwell(a, 0.5)
        # the active router's host cut off
        d.fault("partition active router host")
        t = time.time()
        cl.net.partition(ROUTER_HOSTS[1])
        line = log_line(cl.procs["router"], "taking over as the active router",
                        takeover_max + 10)
        took.append(since(line, t))
        stop = log_line(cl.procs["router2"], "lease: lost epoch", 30)
        if log_time(stop) > log_time(line):
            FAILS.append("failover: the cut-off router stopped at %s, after the other "
                         "took over at %s" % (stop.split()[0], line.split()[0]))
        time.sleep(min(a.partition_s, 10))
        cl.net.heal(ROUTER_HOSTS[1])
        d.settled(timeout=120)
        say("failover: partition: router took over in %.2f s" % took[-1])
        dwell(a, 0.5)
        rep = d.stop()
    finally:
        cl.net.heal(ROUTER_HOSTS[1])
        cl.use_routers(1)
    check(rep, "failover")
    names = ["kill-9 active router", "partition active router host"]
    for f, name, s in zip(rep["faults"], names, took):
        w = f["window"]
        ROWS.append(("5 " + name, w["accepted"], w["delivered"], w["lost"], w["duplicated"],
                     "takeover %.1f s, clients %s s" % (s, f["recovery_s"])))
        if s > takeover_max:
            FAILS.append("failover: %s: takeover took %.1f s (> %.0f)" % (name, s, takeover_max))
    return rep


SCENARIOS = {"scale": sc_scale, "rolling": sc_rolling, "faults": sc_faults,
             "prometheus": sc_prometheus, "failover": sc_failover}


def table():
    hdr = ("scenario", "accepted", "delivered", "lost", "duplicated", "recovery")
    rows = [hdr] + [tuple(str(x) for x in r) for r in ROWS]
    w = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
    out = []
    for k, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin"))
    ap.add_argument("--var", default=os.path.join(TOP, "var", "cluster"))
    ap.add_argument("--prefix", default=os.environ.get("KILN_CLUSTER_PREFIX", "kcl"))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("CLUSTER_SECONDS", 60)))
    ap.add_argument("--users", type=int, default=int(os.environ.get("CLUSTER_USERS", 2000)))
    ap.add_argument("--rate", type=float, default=None, help="messages/s in total")
    ap.add_argument("--churn", type=float, default=None,
                    help="logouts per user per second (default 0.02; short runs 0.05)")
    ap.add_argument("--partition-s", type=float, default=None)
    ap.add_argument("--scenarios", default="scale,rolling,faults,prometheus,failover")
    ap.add_argument("--faults", default="",
                    help="only the faults whose name holds one of these words")
    ap.add_argument("--fault-repeat", type=int, default=1)
    ap.add_argument("--rolling", default=None,
                    help="processes the rolling restart restarts, in order (default "
                    "c2s1,c2s2,c2s3,presenced,mucd,router)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--log-level", default="info")
    a = ap.parse_args()
    if a.rate is None:
        a.rate = max(10.0, min(a.users / 4.0, 400.0))
    if a.churn is None:
        a.churn = 0.05 if a.seconds < 20 else 0.02
    if a.rolling is None:
        a.rolling = ",".join(C2S + ["presenced", "mucd", "router"])
    if a.partition_s is None:
        a.partition_s = 30 if a.seconds >= 30 else max(4, a.seconds)
    a.login_s = min(30.0, max(1.0, a.users / 100.0))
    a.drain_s = 30.0 if a.seconds < 20 else 120.0
    # SIGTERM/SIGHUP (a killed make, a closed terminal) tear down like
    # Ctrl-C; background jobs of a shell even ignore SIGINT
    import signal

    def interrupted(signo, frame):
        raise KeyboardInterrupt("signal %d" % signo)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, interrupted)
    if os.geteuid() != 0:
        print("cluster: needs root (network namespaces)", file=sys.stderr)
        return 2
    cl = Cluster(a.prefix, a.var, a.bin, a.log_level)
    rc = 1
    t0 = time.monotonic()
    try:
        say("hosts up (prefix %s, %s.0/24), PostgreSQL and Redis on db" % (a.prefix, cl.net.subnet))
        cl.up()
        cl.provision(a.users)
        cl.start_core()
        for n in C2S:
            cl.start(n)
        cl.prom_start()
        say("cluster up in %.1f s; %d users, %.0f msg/s, %.0f s a phase" % (
            time.monotonic() - t0, a.users, a.rate, a.seconds))
        for s in a.scenarios.split(","):
            t = time.monotonic()
            say("scenario %s" % s)
            try:
                ensure(cl)
                rep = SCENARIOS[s](cl, a)
            except Exception as e:  # noqa: BLE001 - reported; the next one runs
                FAILS.append("%s: harness: %s: %s" % (s, type(e).__name__, e))
                for d in DRIVERS:
                    if d.p.poll() is None:
                        d.p.kill()
                        d.p.wait()
                continue
            DONE.append(s)
            say("%s: %s (%.0f s)" % (s, json.dumps({k: v for k, v in rep.items()
                                                    if k != "faults"}), time.monotonic() - t))
        san = cl.sanitizer_reports()
        if san:
            FAILS.append("sanitizer reports: %s" % san)
        rc = 1 if FAILS else 0
    except Exception as e:  # noqa: BLE001 - reported, then torn down
        FAILS.append("harness: %s: %s" % (type(e).__name__, e))
    finally:
        print()
        print(table())
        print()
        for f in FAILS:
            print("cluster: FAIL " + f)
        ran = [x for x in a.scenarios.split(",") if x in DONE]
        bad = {f.split(":")[0] for f in FAILS}
        npass = sum(1 for x in ran if x not in bad)
        print("cluster: %d scenarios passed, %d failed" % (
            npass, len(a.scenarios.split(",")) - npass))
        print("cluster: %s in %.0f s (logs %s)" % ("ok" if not FAILS else "FAILED",
                                                   time.monotonic() - t0,
                                                   os.path.join(a.var, "log")))
        if FAILS:  # what is left in offline storage explains most losses
            try:
                with open(os.path.join(a.var, "log", "offline_left.txt"), "w") as f:
                    f.write(cl.psql("kiln", "select id, username, stanza from offline_messages"))
            except Exception:  # noqa: BLE001 - the database may be the problem
                pass
        cl.down()
        if not a.keep and not FAILS:
            import shutil
            shutil.rmtree(a.var, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
