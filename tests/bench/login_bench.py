#!/usr/bin/env python3
"""tests/bench/login_bench.py - issue 15's login figures, two builds side
by side on one private stack, interleaved.

usage: tests/bench/login_bench.py [--builds build/base,build] [--repeat 3]
           [--users 1000] [--mod-users 300] [--roster-users 505]
           [--summary FILE] [--only SCENARIO,...] [--perf DIR]

Environment: KILN_VAR (default var/bench-login), KILN_PORT_OFFSET,
KILN_PG_PORT as for deploy/dev/stack. Brings the stack's PostgreSQL and
Redis up (logging at warning; down again at the end), provisions user1..N and the
100-contact cliques pres1..M once, then for each repetition and each
build (in the order given): fresh daemons of that build (router,
presenced, mucd, two c2s nodes), an unmeasured warm-up (one SCRAM and
one PLAIN login of every user: fills kiln-load's SCRAM key file and, for
a build that has them, c2s's PLAIN cache and the Redis credential
cache), then the measured scenarios:

  plain-tls-sat      PLAIN over direct TLS, 2 workers x 200 in flight
  scram-starttls-sat SCRAM-SHA-1 over STARTTLS, 2 x 200
  plain-tls-mod      PLAIN over direct TLS, 1 worker x 4 in flight
  scram-starttls-mod SCRAM-SHA-1 over STARTTLS, 1 x 4
  roster100-scram    presence: 505 users in cliques of 101 log in
                     (STARTTLS + SCRAM, roster, initial presence)

Logins/s and server CPU per login split by process (c2s, router,
presenced, mucd, Redis, PostgreSQL) for the connections scenarios,
measured over the login wave only (kiln-load's cpu_by_pid); for
roster100-scram over the whole presence run from /proc (logins, fan-out,
drain) divided by the logins. A second table splits each process's CPU
per login into user and kernel time (/proc, over each scenario's whole
kiln-load run). --perf DIR records perf of the server processes during
each scenario of the first repetition (DIR/<build>-<scenario>.data). Prints a table
of medians per build with the load average; --summary writes every run
as JSON.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMONS = [("router", "kiln-router", []), ("presenced", "kiln-presenced", []),
           ("mucd", "kiln-mucd", []),
           ("c2s-a", "kiln-c2s", ["--node", "c2s-a"]),
           ("c2s-b", "kiln-c2s", ["--node", "c2s-b"])]
GROUPS = ["c2s", "router", "presenced", "mucd", "redis", "postgres"]


def log(msg):
    print("login_bench: " + msg, file=sys.stderr, flush=True)


def stack_env():
    out = subprocess.run([os.path.join(TOP, "deploy/dev/stack"), "env"],
                         capture_output=True, text=True, check=True).stdout
    env = {}
    for m in re.finditer(r"export (.*)", out):
        for kv in re.finditer(r"(\w+)='([^']*)'", m.group(1)):
            env[kv.group(1)] = kv.group(2)
    return env


class Stack:
    def __init__(self, var):
        self.var = var
        self.procs = {}
        subprocess.run([os.path.join(TOP, "deploy/dev/stack"), "up"],
                       check=True, stdout=subprocess.DEVNULL)
        self.env = stack_env()
        self.conf = self.env["KILN_CONF"]
        text = open(self.conf).read()
        text = re.sub(r'^log_level = "[a-z]+";', 'log_level = "warning";',
                      text, flags=re.M)
        open(self.conf, "w").write(text)
        self.off = int(os.environ.get("KILN_PORT_OFFSET", "0"))

    def start(self, build):
        self.stop()
        os.makedirs(os.path.join(self.var, "log"), exist_ok=True)
        for name, binary, args in DAEMONS:
            logf = open(os.path.join(self.var, "log", "bench-%s.log" % name),
                        "a")
            p = subprocess.Popen([os.path.join(build, "bin", binary), "-c",
                                  self.conf, *args], stdout=logf,
                                 stderr=logf, start_new_session=True)
            self.procs[name] = p
        # ready: both c2s nodes accept and the router knows them; a SCRAM
        # login of user1 on each node proves it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.login_once(build):
                return
            time.sleep(0.5)
        raise SystemExit("daemons of %s did not come up" % build)

    def login_once(self, build):
        r = subprocess.run(
            [LOAD, "connections",
             "--port", "%d,%d" % (5222 + self.off, 5322 + self.off),
             "--users", "2", "--hold", "0", "--scram-cache",
             os.path.join(self.var, "scram-keys")],
            capture_output=True, text=True)
        return r.returncode == 0

    def stop(self):
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = {}

    def pids(self):
        """pid -> group of every server process."""
        out = {}
        for name, p in self.procs.items():
            out[p.pid] = "c2s" if name.startswith("c2s") else name
        run = os.path.join(self.var, "run")
        try:
            out[int(open(os.path.join(run, "redis.pid")).read())] = "redis"
        except (OSError, ValueError):
            pass
        pm = os.path.join(self.var, "pg", "data", "postmaster.pid")
        try:
            ppid = int(open(pm).readline())
            out[ppid] = "postgres"
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        st = open("/proc/%s/stat" % d).read()
                    except OSError:
                        continue
                    if int(st.rsplit(")", 1)[1].split()[1]) == ppid:
                        out[int(d)] = "postgres"
        except (OSError, ValueError):
            pass
        return out


def cpu_us(pids, which=(11, 12)):
    """pid -> utime + stime in microseconds, from /proc (which=(11,):
    user time only, (12,): kernel time only)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
            out[pid] = sum(int(f[i]) for i in which) * 1e6 / tick
        except (OSError, IndexError, ValueError):
            pass
    return out


def cpu_uk(pids):
    """(user, kernel): pid -> microseconds, from /proc."""
    return cpu_us(pids, (11,)), cpu_us(pids, (12,))


def uk_split(pids, before, after, logins):
    """group -> [user, kernel] microseconds per login between two
    cpu_uk() samples."""
    out = {}
    for k in (0, 1):
        for pid, us in after[k].items():
            g = pids.get(pid, "other")
            out.setdefault(g, [0.0, 0.0])
            out[g][k] += (us - before[k].get(pid, us)) / max(logins, 1)
    return out


def perf_start(a, b, tag, plist):
    """perf record -g of the server processes into DIR/<build>-<tag>.data."""
    os.makedirs(a.perf, exist_ok=True)
    return subprocess.Popen(
        ["perf", "record", "-q", "--call-graph", "dwarf,8192", "-F", "499",
         "-o",
         os.path.join(a.perf, "%s-%s.data" % (os.path.basename(b), tag)),
         "-p", plist], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(perf):
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)


def result(text):
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return None


LOAD = None  # one kiln-load for every build: the last build's


def run_load(build, args, timeout=600):
    r = subprocess.run([LOAD, *args],
                       capture_output=True, text=True, timeout=timeout)
    res = result(r.stdout)
    if res is not None and r.returncode != 0:
        log("kiln-load exited %d: %s" % (r.returncode, r.stdout[-300:]))
    if res is None:
        log("kiln-load failed (%d): %s %s" % (r.returncode, r.stdout[-500:],
                                               r.stderr[-500:]))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builds", default="build/base,build")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--mod-users", type=int, default=300)
    ap.add_argument("--roster-users", type=int, default=505)
    ap.add_argument("--summary", default=None)
    ap.add_argument("--only", default=None,
                    help="comma-separated scenarios to run (default all)")
    ap.add_argument("--perf", default=None,
                    help="DIR: perf record -g the server processes during each"
                    " scenario of the first repetition into"
                    " DIR/<build>-<scenario>.data")
    a = ap.parse_args()
    builds = [os.path.abspath(b) for b in a.builds.split(",")]
    global LOAD
    LOAD = os.path.join(builds[-1], "bin", "kiln-load")
    var = os.environ.setdefault("KILN_VAR", os.path.join(TOP, "var/bench-login"))
    st = Stack(var)
    off = st.off
    kilnctl = os.path.join(builds[-1], "bin", "kilnctl")
    marker = os.path.join(var, "provisioned-%d-%d" % (a.users, a.roster_users))
    if not os.path.exists(marker):
        log("provisioning (once)")
        subprocess.run([os.path.join(TOP, "tests/bench/provision"), "kiln",
                        "--kilnctl", kilnctl, "--config", st.conf,
                        "--users", str(a.users)], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([os.path.join(TOP, "tests/bench/provision"), "kiln",
                        "--kilnctl", kilnctl, "--config", st.conf,
                        "--users", str(a.roster_users), "--user-fmt", "pres%d",
                        "--roster", "100"], check=True,
                       stdout=subprocess.DEVNULL)
        open(marker, "w").close()
    keys = os.path.join(var, "scram-keys")
    starttls = ["--port", "%d,%d" % (5222 + off, 5322 + off)]
    tls = ["--direct-tls", "--port", "%d,%d" % (5223 + off, 5323 + off)]
    sat = ["--procs", "2", "--concurrency", "200", "--users", str(a.users)]
    mod = ["--procs", "1", "--concurrency", "4", "--users", str(a.mod_users)]
    scen = {
        "plain-tls-sat": tls + ["--sasl", "plain"] + sat,
        "scram-starttls-sat": starttls + sat,
        "plain-tls-mod": tls + ["--sasl", "plain"] + mod,
        "scram-starttls-mod": starttls + mod,
    }
    if a.only:
        scen = {k: v for k, v in scen.items() if k in a.only.split(",")}
    runs = []
    try:
        for rep in range(a.repeat):
            for b in builds:
                log("rep %d, %s: fresh daemons" % (rep + 1, b))
                st.start(b)
                for warm in (starttls, tls + ["--sasl", "plain"]):
                    run_load(b, ["connections", *warm, "--procs", "2",
                                 "--users", str(a.users), "--hold", "0",
                                 "--scram-cache", keys])
                run_load(b, ["connections", *starttls, "--procs", "2",
                             "--users", str(a.roster_users), "--user-fmt",
                             "pres%d", "--hold", "0", "--scram-cache", keys])
                pids = st.pids()
                plist = ",".join(str(p) for p in pids)
                for name, args in scen.items():
                    perf = perf_start(a, b, name, plist) \
                        if a.perf and rep == 0 else None
                    u0 = cpu_uk(pids)
                    res = run_load(b, ["connections", *args, "--hold", "0",
                                       "--scram-cache", keys,
                                       "--server-pids", plist])
                    u1 = cpu_uk(pids)
                    perf_stop(perf)
                    if res is None:
                        continue
                    split = {g: 0.0 for g in GROUPS}
                    for item in res.get("cpu_by_pid", "-").split(","):
                        if ":" in item:
                            pid, us = item.split(":")
                            split[pids.get(int(pid), "other")] = \
                                split.get(pids.get(int(pid), "other"), 0) + \
                                float(us)
                    row = {"rep": rep + 1, "build": b, "scenario": name,
                           "logins_per_s": float(res["logins_per_s"]),
                           "cpu_us_per_login": float(res["cpu_us_per_login"]),
                           "errors": int(res["errors"]), "split": split,
                           "uk": uk_split(pids, u0, u1,
                                          int(res.get("logins", 0))),
                           "load": os.getloadavg()[0]}
                    runs.append(row)
                    log("%s %s: %.0f logins/s, %.0f us/login %s" % (
                        os.path.basename(b), name, row["logins_per_s"],
                        row["cpu_us_per_login"],
                        " ".join("%s=%.0f" % kv for kv in split.items())))
                if a.only and "roster100-scram" not in a.only.split(","):
                    continue
                # one profile per build and scenario
                perf = perf_start(a, b, "roster100-scram", plist) \
                    if a.perf and rep == 0 else None
                # CPU of each server process over the whole presence run
                # (logins, fan-out, the 10 s drain), per login.
                u0 = cpu_uk(pids)
                c0 = cpu_us(pids)
                res = run_load(b, ["presence", *starttls, "--procs", "2",
                                   "--users", str(a.roster_users),
                                   "--user-fmt", "pres%d", "--roster", "100",
                                   "--rounds", "1", "--drain", "10",
                                   "--scram-cache", keys])
                c1 = cpu_us(pids)
                u1 = cpu_uk(pids)
                perf_stop(perf)
                if res is not None:
                    split = {g: 0.0 for g in GROUPS}
                    for pid, us in c1.items():
                        g = pids.get(pid, "other")
                        split[g] = split.get(g, 0) + (us - c0.get(pid, us)) \
                            / a.roster_users
                    row = {"rep": rep + 1, "build": b,
                           "scenario": "roster100-scram",
                           "logins_per_s": float(res["logins_per_s"]),
                           "cpu_us_per_login": sum(split.values()),
                           "split": split,
                           "uk": uk_split(pids, u0, u1, a.roster_users),
                           "incomplete": int(res["incomplete"]),
                           "errors": int(res["errors"]),
                           "load": os.getloadavg()[0]}
                    runs.append(row)
                    log("%s roster100-scram: %.0f logins/s, incomplete %d,"
                        " %.0f us/login %s" % (
                            os.path.basename(b), row["logins_per_s"],
                            row["incomplete"], row["cpu_us_per_login"],
                            " ".join("%s=%.0f" % kv for kv in split.items())))
                if a.summary:
                    json.dump(runs, open(a.summary, "w"), indent=1)
    finally:
        st.stop()
        subprocess.run([os.path.join(TOP, "deploy/dev/stack"), "down"],
                       stdout=subprocess.DEVNULL)
    print("| scenario | build | logins/s (median; runs), load avg | server CPU/login "
          "(median) | c2s | router | presenced | mucd | Redis | PostgreSQL |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in list(scen) + ["roster100-scram"]:
        for b in builds:
            rs = [r for r in runs if r["scenario"] == name and r["build"] == b]
            if not rs:
                continue
            lps = [r["logins_per_s"] for r in rs]
            line = "| %s | %s | %.0f (%s) |" % (
                name, os.path.basename(b), statistics.median(lps),
                ", ".join("%.0f" % x for x in lps))
            line = line[:-1] + "load %.1f-%.1f |" % (
                min(r["load"] for r in rs), max(r["load"] for r in rs))
            if "split" in rs[0]:
                line += " %.0f µs |" % statistics.median(
                    r["cpu_us_per_login"] for r in rs)
                for g in GROUPS:
                    line += " %.0f |" % statistics.median(
                        r["split"].get(g, 0) for r in rs)
            else:
                line += " | | | | | | |"
            print(line)
    print()
    print("| scenario | build | server user / kernel µs per login (median)"
          " | " + " | ".join(GROUPS) + " |")
    print("|---|---|---|" + "---|" * len(GROUPS))
    for name in list(scen) + ["roster100-scram"]:
        for b in builds:
            rs = [r for r in runs if r["scenario"] == name and r["build"] == b
                  and "uk" in r]
            if not rs:
                continue

            def med(g, k):
                return statistics.median(r["uk"].get(g, [0, 0])[k] for r in rs)
            tu = statistics.median(sum(v[0] for v in r["uk"].values())
                                   for r in rs)
            tk = statistics.median(sum(v[1] for v in r["uk"].values())
                                   for r in rs)
            print("| %s | %s | %.0f / %.0f |" % (name, os.path.basename(b),
                                                 tu, tk) +
                  "".join(" %.0f / %.0f |" % (med(g, 0), med(g, 1))
                          for g in GROUPS))


if __name__ == "__main__":
    main()
