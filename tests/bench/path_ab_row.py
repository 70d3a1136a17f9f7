"""One AB line of tests/bench/path_ab.sh from a kiln-load throughput run
of one rate: its step row (stdout) and STEPCPU lines (stderr)."""
import sys

pids, outf, errf, label, mam, rate, rep, step = sys.argv[1:]
name = {}
for line in open(pids):
    f = line.split()
    if len(f) == 2:
        name[f[1]] = {"c2s-a": "c2s", "c2s-b": "c2s", "mucd": "other",
                      "redis": "other"}.get(f[0], f[0])
out = open(outf).read().splitlines()
res = [l for l in out if l.startswith("RESULT")]
kv = dict(w.split("=", 1) for w in (res[0].split()[1:] if res else [])
          if "=" in w)
# step row: offered sent/s delivered/s p50 p90 p99 p99.9 max lost late cpu
row = None
for l in out:
    f = l.split()
    if len(f) >= 11 and f[0] == rate:
        row = f
groups, user, sys_ = {}, 0, 0
for l in open(errf):
    if not l.startswith("STEPCPU"):
        continue
    d = dict(w.split("=") for w in l.split()[1:])
    g = name.get(d["pid"], "other")
    u, s = int(d["user_us"]), int(d["sys_us"])
    groups[g] = groups.get(g, 0) + u + s
    user += u
    sys_ += s
# messages received in the step and its drain: kiln-load's own
# "cpu us" column is the same CPU divided by that count
msgs = 1.0
if row and float(row[10]) > 0:
    msgs = (user + sys_) / float(row[10])
def us(t):
    return t / msgs
print("AB build=%s mam=%s rate=%s rep=%s delivered_ps=%s lost=%s p50_ms=%s "
      "p99_ms=%s us_per_msg=%.1f user_us=%.1f sys_us=%.1f %s" % (
          label, mam, rate, rep, row[2] if row else "-", kv.get("lost"),
          row[3] if row else "-", row[5] if row else "-",
          us(user + sys_), us(user), us(sys_),
          " ".join("%s=%.1f" % (g, us(t)) for g, t in sorted(groups.items()))),
      flush=True)
