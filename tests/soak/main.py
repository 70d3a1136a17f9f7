"""python3 tests/soak/main.py OUT_DIR - the long soak (make soak).

Run by tests/soak/run.sh after it brought up the private PostgreSQL and
Redis (deploy/dev/stack, KILN_VAR=var/soak) and exported `stack env`:
starts router, presenced, mucd, c2s-a and c2s-b (tests/integration's
Cluster), runs soak.Soak for SOAK_SECONDS, writes OUT_DIR/soak.csv,
soak-rss.png and summary.txt, stops the processes; exit 1 when a chat
message was lost or duplicated (beyond the kill rule), a sanitizer
report appeared, or a process's RSS grew past SOAK_RSS_GROWTH_MB after
the warm-up. Duplicates are printed by class (soak.py's docstring);
only those XEP-0198 does not allow fail the run.

Environment: SOAK_SECONDS (3600), SOAK_USERS (40), SOAK_KILL_EVERY
("120,240" s), SOAK_KILL_NODES ("c2s-b"), SOAK_RSS_GROWTH_MB (32),
SOAK_WARMUP (min(300, SOAK_SECONDS / 5)).
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import soak  # noqa: E402


def main():
    if sys.argv[1] == "--report":
        return replot(os.path.abspath(sys.argv[2]))
    import conftest  # needs the stack's KILN_* variables
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    e = os.environ
    seconds = float(e.get("SOAK_SECONDS", 3600))
    nusers = int(e.get("SOAK_USERS", 40))
    kill_every = tuple(float(x) for x in e.get("SOAK_KILL_EVERY",
                                               "120,240").split(","))
    kill_nodes = tuple(x for x in e.get("SOAK_KILL_NODES", "c2s-b").split(",")
                       if x)
    bound_kb = float(e.get("SOAK_RSS_GROWTH_MB", 32)) * 1024
    warmup = float(e.get("SOAK_WARMUP", min(300, seconds / 5)))
    users = ["soak%d" % i for i in range(nusers)]
    var = e["KILN_VAR"]
    soak.setup_users(os.path.join(e["KILN_BIN"], "kilnctl"), e["KILN_CONF"],
                     users)
    c = conftest.Cluster()
    names = ("router", "presenced", "mucd", "c2s-a", "c2s-b")
    for n in names:
        c.procs[n].start()
    extra = {"postgres": lambda: soak.pg_pids(os.path.join(var, "pg", "data")),
             "redis": lambda: soak.pids_of(e["KILN_REDIS_SOCK"])}
    logf = open(os.path.join(out, "soak.log"), "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    log("soak: %d s, %d users, kill -9 of %s every %s s, warm-up %d s, "
        "bound +%d MiB RSS" % (seconds, nusers, ",".join(kill_nodes) or "none",
                               "-".join("%g" % k for k in kill_every), warmup,
                               bound_kb / 1024))
    s = soak.Soak(c, users, seconds, out, kill_nodes=kill_nodes,
                  kill_every=kill_every, warmup=warmup, extra_pids=extra,
                  log=log)
    try:
        rep = s.run()
    finally:
        for n in reversed(names):
            try:
                c.procs[n].stop()
            except AssertionError as ex:
                log("soak: %s" % ex)
    bad = c.sanitizer_reports()
    plots(out, "%d s, %d users" % (seconds, nusers))
    fails = summarize(rep, bound_kb, log)
    for name, reports in bad.items():
        fails.append("sanitizer report in %s" % name)
        log(reports[0][:3000])
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(rep, f, indent=1, default=str)
    log("soak: %s" % ("FAILED: " + "; ".join(fails) if fails else "passed"))
    return 1 if fails else 0


KILN = ("router", "presenced", "mucd", "c2s-a", "c2s-b")


def replot(out):
    """main.py --report OUT: figures and plots again from OUT/soak.csv and
    OUT/summary.json (after a change to this reporting)."""
    import csv
    with open(os.path.join(out, "summary.json")) as f:
        rep = json.load(f)
    s = soak.Soak.__new__(soak.Soak)
    s.warmup = rep["warmup"]
    with open(os.path.join(out, "soak.csv")) as f:
        s.samples = []
        for row in csv.DictReader(f):
            row = {k: v for k, v in row.items() if v != ""}
            row["t"] = float(row["t"])
            s.samples.append(row)
    rep["rss"] = s.rss_growth()
    rep["rss_anon"] = s.rss_growth("anon_kb")
    bound_kb = float(os.environ.get("SOAK_RSS_GROWTH_MB", 32)) * 1024
    fails = summarize(rep, bound_kb, print)
    plots(out, "%d s, %d users" % (rep["seconds"], rep["users"]))
    print("soak: %s" % ("FAILED: " + "; ".join(fails) if fails else "passed"))
    return 1 if fails else 0


def plots(out, what):
    """soak-rss.png: the Kiln processes' RSS; soak-rss-db.png:
    PostgreSQL's (postmaster + backends, anonymous memory: shared buffers
    would be counted once per backend) and Redis's."""
    csv_path = os.path.join(out, "soak.csv")
    soak.plot(csv_path, os.path.join(out, "soak-rss.png"),
              ["router", "presenced", "mucd", "c2s-a", "c2s-b"],
              "Kiln soak: RSS per process (%s)" % what)
    soak.plot(csv_path, os.path.join(out, "soak-rss-db.png"),
              ["postgres", "redis"],
              "Kiln soak: PostgreSQL and Redis anonymous RSS (%s)" % what,
              column="anon_kb", ylabel="RssAnon MiB")


def summarize(rep, bound_kb, log):
    """Log the figures; the list of failures."""
    fails = []
    log("soak: logins %d (failed %s), clean logouts %d, dropped %d, "
        "sessions cut by kill -9 %d, kills %d"
        % (rep["logins"], rep["login_failures"] or 0, rep["logouts"],
           rep["drops"], rep["killed_sessions"], len(rep["kills"])))
    log("soak: chat sent %d, accepted %d, in doubt %d (delivered %d), "
        "received %d, bounced %d (%d accepted; %s), lost %d"
        % (rep["chat_sent"], rep["chat_accepted"], rep["chat_in_doubt"],
           rep["in_doubt_delivered"], rep["chat_received"], rep["bounced"],
           rep["bounced_accepted"], rep["bounce_why"] or "-",
           len(rep["lost"])))
    if "dup_allowed" in rep:
        ok = rep["dup_allowed"]
        log("soak: duplicates allowed by XEP-0198 (ack never confirmed, "
            "then the connection ended abruptly): node killed %d, TCP "
            "cut by us %d, closed by the server %d; allowed across a crash "
            "(node killed < 1 s after the ack was read) %d; NOT allowed %d"
            % (ok.get("killed", 0), ok.get("dropped", 0), ok.get("closed", 0),
               ok.get("killed just after", 0), len(rep["dup"])))
        log("soak: session ends %s; stream errors %s; stanzas in the read "
            "that brought <enabled/> %d"
            % (rep["session_ends"], rep["stream_errors"] or "-",
               rep["early_stanzas"]))
    else:  # a summary.json of the driver before the classification
        log("soak: duplicates %d (after the acking connection died: %d)"
            % (len(rep["dup"]), len(rep["dup_after_kill"])))
    log("soak: presence sent %d, received %d; group sent %d, accepted %d, "
        "received %d" % (rep["presence_sent"], rep["presence_rx"],
                         rep["group_sent"], rep["group_accepted"],
                         rep["group_rx"]))
    for name, (a, b, g) in sorted(rep["rss"].items()):
        an = rep.get("rss_anon", {}).get(name, (None, None, None))
        if g is None:
            log("soak: rss %-9s end %6d KiB (no sample after warm-up in its "
                "last run)" % (name, b))
            continue
        log("soak: rss %-9s after warm-up %6d KiB, end %6d KiB, growth %+6d "
            "KiB (anonymous: %s -> %s KiB)" % (name, a, b, g, an[0], an[1]))
        # PostgreSQL's sum counts shared buffers once per backend, and
        # both it and Redis cache by design: reported, not bounded.
        if g > bound_kb and name in KILN:
            fails.append("%s RSS grew %d KiB" % (name, g))
    if rep["lost"]:
        fails.append("%d accepted messages lost (e.g. %s)"
                     % (len(rep["lost"]), rep["lost"][:5]))
    if rep["dup"]:
        fails.append("%d duplicates not allowed (e.g. %s)"
                     % (len(rep["dup"]), rep["dup"][:5]))
    if rep["chat_accepted"] == 0:
        fails.append("no message accepted")
    return fails


if __name__ == "__main__":
    sys.exit(main())
