"""tests/cluster/cluster.py - a Kiln cluster across network-namespace hosts.

Hosts (tests/cluster/netns.py), with their address in SUBNET.0/24:

| host | address | runs |
|---|---|---|
| db | .2 | PostgreSQL (as the `postgres` user, TCP on .2:5432), Redis (.2:6379) |
| core | .3 | kiln-router (ZeroMQ .3:5270), kiln-presenced, kiln-mucd (metrics .3:9470-9472) |
| core2 | .4 | the second kiln-router (failover scenario only; ZeroMQ .4:5270, metrics .4:9470) |
| c2s1..c2s3 | .11-.13 | one kiln-c2s node each (STARTTLS :5222, HTTP + /metrics :5280) |
| load | .20 | the load driver (driver.py) |
| mon | .30 | prometheus (scrapes every process) |

Every address is in the generated config (kiln.conf in the state
folder): no Kiln process listens on or connects to 127.0.0.1. A second
router (hot standby, issue 14) has its own host `core2` (.4), used by the
failover scenario only: `use_routers(2)` rewrites the config with both
endpoints and `router.lease_ms` (kiln.conf, and kiln-router2.conf for
the router on core2, which binds there) and restarts every process;
`use_routers(1)` goes back.
"""

import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import time

from netns import Net, sh

HOSTS = {"db": 2, "core": 3, "core2": 4, "c2s1": 11, "c2s2": 12, "c2s3": 13, "load": 20,
         "mon": 30}
ROUTER_HOSTS = ["core", "core2"]  # the second only with use_routers(2)
LEASE_MS = 1500
C2S = ["c2s1", "c2s2", "c2s3"]
PG_PORT = 5432
REDIS_PORT = 6379
ROUTER_PORT = 5270
STARTTLS_PORT = 5222
HTTP_PORT = 5280
METRICS = {"router": 9470, "presenced": 9471, "mucd": 9472}
PROM_PORT = 9090

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pgbin():
    base = "/usr/lib/postgresql"
    vers = sorted((v for v in os.listdir(base) if v.isdigit()), key=int)
    return os.path.join(base, vers[-1], "bin")


class Proc:
    def __init__(self, cl, name, host, argv, ready=None):
        self.cl = cl
        self.name = name
        self.host = host
        self.argv = argv
        self.ready = ready  # log text that says it is up
        self.popen = None
        self.log = os.path.join(cl.var, "log", name + ".log")
        self.offset = 0
        self.starts = 0

    def start(self, timeout=60):
        with open(self.log, "ab") as f:
            self.offset = f.tell()
            self.popen = subprocess.Popen(self.cl.net.argv(self.host, self.argv),
                                          stdout=f, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        self.starts += 1
        if self.ready:
            self.wait_log(self.ready, timeout)

    def text(self):
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.popen.poll() is not None:
                raise RuntimeError("%s exited (%s) before '%s'; log %s:\n%s" % (
                    self.name, self.popen.returncode, needle, self.log, self.text()[-3000:]))
            time.sleep(0.05)
        raise RuntimeError("%s: no '%s' in %d s (log %s)" % (self.name, needle, timeout, self.log))

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=30):
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill9(self):
        if self.alive():
            self.popen.kill()
            self.popen.wait()


class Cluster:
    def __init__(self, prefix, var, bindir, log_level="info"):
        self.prefix = prefix
        self.var = var
        self.bin = bindir
        self.net = Net(prefix)
        self.addr = {h: "%s.%d" % (self.net.subnet, o) for h, o in HOSTS.items()}
        self.procs = {}
        self.log_level = log_level
        # PostgreSQL must reach its data as the postgres user: keep it out
        # of a possibly private checkout
        self.pgdir = "/var/tmp/kiln-cluster-" + hashlib.md5(var.encode()).hexdigest()[:12]
        self.conf = os.path.join(var, "kiln.conf")
        self.conf2 = os.path.join(var, "kiln-router2.conf")
        self.routers = 1
        self.prom = None

    # ---- hosts
    def up(self):
        shutil.rmtree(self.var, ignore_errors=True)
        os.makedirs(os.path.join(self.var, "log"))
        self.net.up()
        for h, o in HOSTS.items():
            self.net.add_host(h, o)
        self.tls()
        self.write_conf()
        self.db_up()
        self.redis_start()
        self.migrate()

    def down(self):
        for p in reversed(list(self.procs.values())):
            if p.name not in ("postgres",):
                p.kill9()
        self.pg_ctl("stop", "-m", "immediate", check=False)
        if self.prom:
            self.prom.kill9()
        self.net.down()
        shutil.rmtree(self.pgdir, ignore_errors=True)

    def run(self, host, argv, **kw):
        return sh(*self.net.argv(host, argv), **kw)

    # ---- config
    def tls(self):
        d = os.path.join(self.var, "tls")
        os.makedirs(d)
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
           "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
           "-keyout", d + "/kiln.key", "-out", d + "/kiln.pem")

    def write_conf(self):
        self.write_conf_for(self.conf, ROUTER_HOSTS[0])
        if self.routers > 1:
            self.write_conf_for(self.conf2, ROUTER_HOSTS[1])

    def write_conf_for(self, path, rhost):
        """The config of every process; rhost: the router host whose
        address router.bind and metrics.bind take."""
        a = self.addr
        r = a[rhost]
        endpoint = ",".join("tcp://%s:%d" % (a[h], ROUTER_PORT)
                            for h in ROUTER_HOSTS[:self.routers])
        lease = "\n  lease_ms = %d;" % LEASE_MS if self.routers > 1 else ""
        nodes = ",\n".join(
            '    { name = "%s"; bind = "%s"; starttls_port = %d; tls_port = 0; http_port = %d; }'
            % (h, a[h], STARTTLS_PORT, HTTP_PORT) for h in C2S)
        text = """# generated by tests/cluster/cluster.py: one file for every host
domain = "localhost";
log_level = "%(log)s";
shutdown_drain_ms = 5000;
db = {
  conninfo = "host=%(db)s port=%(pg)d user=kiln dbname=kiln connect_timeout=3";
  pool_min = 2;
  pool_max = 8;
};
redis = { address = "tcp:%(db)s:%(redis)d"; };
metrics = {
  bind = "%(router)s";
  allow = "%(mon)s";
  router_port = %(mr)d;
  presenced_port = %(mp)d;
  mucd_port = %(mm)d;
};
router = {
  endpoint = "%(endpoint)s";
  bind = "tcp://%(router)s:%(rport)d";
  heartbeat_ms = 500;
  node_timeout_ms = 3000;%(lease)s
};
c2s = {
  tls = { cert = "%(var)s/tls/kiln.pem"; key = "%(var)s/tls/kiln.key"; };
  auth_fail_delay_ms = 0;
  rate_bytes_per_s = 0;
  # every client comes from the load host's one address: the per-address
  # admission (issue 16, c2s_flood.c) would refuse most logins at 2000
  # users (10 a second a node, 100 unfinished); the per-node limits stay
  accept = { addr_rate = 0; addr_unauth = 0; };
  http_plain_auth = true;
  sm = { resume_timeout = 60; };
  nodes = (
%(nodes)s
  );
};
""" % {"log": self.log_level, "db": a["db"], "pg": PG_PORT, "redis": REDIS_PORT,
            "core": a["core"], "mon": a["mon"], "mr": METRICS["router"],
            "mp": METRICS["presenced"], "mm": METRICS["mucd"], "router": r,
            "rport": ROUTER_PORT, "var": self.var, "nodes": nodes,
            "endpoint": endpoint, "lease": lease}
        with open(path, "w") as f:
            f.write(text)

    # ---- PostgreSQL and Redis on db
    def pg_ctl(self, *args, check=True):
        if not os.path.exists(os.path.join(self.pgdir, "data", "PG_VERSION")):
            return 1
        return self.run("db", ["runuser", "-u", "postgres", "--",
                               os.path.join(pgbin(), "pg_ctl"), "-D",
                               os.path.join(self.pgdir, "data")] + list(args), check=check)

    def db_up(self):
        shutil.rmtree(self.pgdir, ignore_errors=True)
        os.makedirs(self.pgdir)
        shutil.chown(self.pgdir, "postgres", "postgres")
        os.chmod(self.pgdir, 0o700)
        self.run("db", ["runuser", "-u", "postgres", "--", os.path.join(pgbin(), "initdb"),
                        "-D", os.path.join(self.pgdir, "data"), "-A", "trust", "-U", "kiln",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.pgdir, "data", "pg_hba.conf"), "a") as f:
            f.write("host all all %s.0/24 trust\n" % self.net.subnet)
        self.pg_start()
        self.psql("postgres", "create database kiln")

    def pg_start(self):
        self.pg_ctl("-l", os.path.join(self.pgdir, "postgres.log"), "-w", "-t", "60", "-o",
                    "-k %s -c listen_addresses=%s -p %d -c fsync=off -c synchronous_commit=off "
                    "-c full_page_writes=off -c max_connections=200"
                    % (self.pgdir, self.addr["db"], PG_PORT), "start")

    def pg_restart(self):
        self.pg_ctl("-m", "fast", "-w", "stop")
        self.pg_start()

    def psql(self, dbname, sql, stdin=None):
        argv = ["psql", "-v", "ON_ERROR_STOP=1", "-qAt",
                "host=%s port=%d user=kiln dbname=%s" % (self.addr["db"], PG_PORT, dbname),
                "-c", sql]
        r = subprocess.run(self.net.argv("db", argv), input=stdin, text=True,
                           capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr)
        return r.stdout

    def redis_start(self):
        p = Proc(self, "redis", "db",
                 ["redis-server", "--bind", self.addr["db"], "--port", str(REDIS_PORT),
                  "--protected-mode", "no", "--save", "", "--appendonly", "no",
                  "--maxmemory-policy", "noeviction", "--dir", self.var],
                 ready="Ready to accept connections")
        self.procs["redis"] = p
        p.start()

    def redis_cli(self, *args):
        return self.run("db", ["redis-cli", "-h", self.addr["db"], "-p", str(REDIS_PORT)]
                        + list(args), capture=True)

    def migrate(self):
        self.run("core", [os.path.join(self.bin, "kilnctl"), "-c", self.conf, "db", "migrate",
                          "--dir", os.path.join(TOP, "sql")])

    def provision(self, users, fmt="cu%d", password="pw", iterations=4096):
        """users rows by COPY; every account has the same password and salt
        (one PBKDF2 per hash here, one in the driver)."""
        salt = b"kiln-cluster-salt"
        cols = []
        for h in ("sha1", "sha256"):
            salted = hashlib.pbkdf2_hmac(h, password.encode(), salt, iterations)
            ck = hmac.new(salted, b"Client Key", h).digest()
            sk = hmac.new(salted, b"Server Key", h).digest()
            cols += ["\\\\x" + salt.hex(), "\\\\x" + hashlib.new(h, ck).hexdigest(),
                     "\\\\x" + sk.hex()]
        tail = "\t".join([str(iterations)] + cols)
        data = "".join("%s\t%s\n" % (fmt % i, tail) for i in range(users))
        self.psql("kiln", "copy users (username, iterations, sha1_salt, sha1_stored_key, "
                  "sha1_server_key, sha256_salt, sha256_stored_key, sha256_server_key) "
                  "from stdin", stdin=data)

    # ---- Kiln
    def kiln_proc(self, name):
        if name in self.procs:
            return self.procs[name]
        if name in C2S:
            argv = [os.path.join(self.bin, "kiln-c2s"), "-c", self.conf, "--node", name]
            host = name
        elif name == "router2":
            argv = [os.path.join(self.bin, "kiln-router"), "-c", self.conf2]
            host = ROUTER_HOSTS[1]
        else:
            argv = [os.path.join(self.bin, "kiln-" + name), "-c", self.conf]
            host = "core"
        p = Proc(self, name, host, argv, ready="ready:")
        self.procs[name] = p
        return p

    def start(self, name):
        self.kiln_proc(name).start()

    def stop(self, name):
        self.procs[name].stop()

    def kill9(self, name):
        self.procs[name].kill9()

    def restart(self, name):
        self.stop(name)
        self.start(name)

    def use_routers(self, n):
        """One router, or two (lease, the second on core2): every Kiln
        process is stopped, the config rewritten, all started again (the
        router on core first: it takes the lease)."""
        kiln = ["router", "router2", "presenced", "mucd"] + C2S
        for name in reversed(kiln):
            if name in self.procs:
                self.procs[name].stop()
                del self.procs[name]  # argv and log offset anew
        self.routers = n
        self.write_conf()
        self.start("router")
        if n > 1:
            self.procs["router"].wait_log("lease: acquired", 30)
            self.start("router2")
            self.procs["router2"].wait_log("lease: held by another router", 30)
        for name in ["presenced", "mucd"] + C2S:
            self.start(name)

    def start_core(self):
        for n in ("router", "presenced", "mucd"):
            self.start(n)

    def sanitizer_reports(self):
        bad = []
        for p in self.procs.values():
            try:
                with open(p.log, errors="replace") as f:
                    t = f.read()
            except FileNotFoundError:
                continue
            for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if pat in t:
                    bad.append("%s: %s" % (p.name, pat))
        return bad

    # ---- Prometheus on mon
    def prom_start(self, interval="1s"):
        d = os.path.join(self.var, "prometheus")
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        a = self.addr
        c2s = ", ".join("'%s:%d'" % (a[h], HTTP_PORT) for h in C2S)
        core = ", ".join("'%s:%d'" % (a["core"], p) for p in METRICS.values())
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("""global:
  scrape_interval: %s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: kiln-c2s
    static_configs: [{targets: [%s]}]
  - job_name: kiln-core
    static_configs: [{targets: [%s]}]
""" % (interval, c2s, core))
        p = Proc(self, "prometheus", "mon",
                 ["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
                  "--storage.tsdb.path=" + os.path.join(d, "data"),
                  "--web.listen-address=%s:%d" % (a["mon"], PROM_PORT),
                  "--storage.tsdb.retention.time=1d"],
                 ready="Server is ready to receive web requests")
        self.prom = p
        p.start()

    def prom_query(self, q):
        import json
        import urllib.parse
        url = "http://%s:%d/api/v1/query?query=%s" % (self.addr["mon"], PROM_PORT,
                                                      urllib.parse.quote(q))
        out = self.run("mon", ["curl", "-sS", "--max-time", "5", url], capture=True)
        return json.loads(out)
