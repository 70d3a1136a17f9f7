"""00 foundation: the private stack answers, and kilnctl migrates the schema
and manages users with SCRAM credentials that a client can actually use.

Runs under tests/run-all.sh, which exports KILN_CONF, KILN_BIN,
KILN_SQL_DIR, KILN_PG (libpq conninfo for psql) and KILN_REDIS_SOCK.
Only subprocess and the standard library: psql and redis-cli from Debian,
hashlib/hmac to recompute SCRAM keys independently of the C code.
Every test uses its own user names, so tests do not depend on each other.
"""

import hashlib
import hmac
import os
import re
import subprocess
import uuid

import pytest

REQUIRED = ("KILN_CONF", "KILN_BIN", "KILN_SQL_DIR", "KILN_PG", "KILN_REDIS_SOCK")
missing = [v for v in REQUIRED if not os.environ.get(v)]
if missing:
    pytest.fail("run these through `make test` (tests/run-all.sh): missing %s"
                % ", ".join(missing), pytrace=False)

CONF = os.environ["KILN_CONF"]
KILNCTL = os.path.join(os.environ["KILN_BIN"], "kilnctl")
SQL_DIR = os.environ["KILN_SQL_DIR"]
PG = os.environ["KILN_PG"]
REDIS_SOCK = os.environ["KILN_REDIS_SOCK"]


def kilnctl(*args, conf=CONF, stdin=None):
    return subprocess.run([KILNCTL, "-c", conf, *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def psql(sql, conninfo=PG):
    r = subprocess.run(["psql", conninfo, "-XAtq", "-v", "ON_ERROR_STOP=1",
                        "-c", sql], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def conf_domain():
    with open(CONF) as f:
        m = re.search(r'^\s*domain\s*=\s*"([^"]*)"', f.read(), re.M)
    assert m, "no domain in " + CONF
    return m.group(1)


def unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:10])


def sq(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


COLS = ("iterations, encode(sha1_salt, 'hex'), encode(sha1_stored_key, 'hex'),"
        " encode(sha1_server_key, 'hex'), encode(sha256_salt, 'hex'),"
        " encode(sha256_stored_key, 'hex'), encode(sha256_server_key, 'hex')")


def user_row(name):
    out = psql("select %s from users where username = %s" % (COLS, sq(name)))
    if not out:
        return None
    f = out.split("|")
    return {"iterations": int(f[0]),
            "sha1": [bytes.fromhex(x) for x in f[1:4]],
            "sha256": [bytes.fromhex(x) for x in f[4:7]]}


def expected_keys(hname, password, salt, iterations):
    salted = hashlib.pbkdf2_hmac(hname, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    stored = hashlib.new(hname, client_key).digest()
    server = hmac.new(salted, b"Server Key", hname).digest()
    return stored, server


def assert_keys_verify(row, password):
    for hname, n in (("sha1", 20), ("sha256", 32)):
        salt, stored, server = row[hname]
        assert len(salt) == 16
        assert len(stored) == n and len(server) == n
        want_stored, want_server = expected_keys(hname, password, salt,
                                                 row["iterations"])
        assert hmac.compare_digest(stored, want_stored), hname + " StoredKey"
        assert hmac.compare_digest(server, want_server), hname + " ServerKey"


def add_user(name, password="secret"):
    r = kilnctl("user", "add", name, password)
    assert r.returncode == 0, r.stderr
    return r


# ---- the stack --------------------------------------------------------


def test_postgres_answers():
    assert psql("select 1") == "1"


def test_redis_answers_ping():
    r = subprocess.run(["redis-cli", "-s", REDIS_SOCK, "ping"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "PONG"


# ---- db migrate ---------------------------------------------------------


def sql_files():
    return sorted(f for f in os.listdir(SQL_DIR)
                  if re.fullmatch(r"\d{4}_.+\.sql", f))


def test_migrate_twice_is_a_noop():
    first = kilnctl("db", "migrate", "--dir", SQL_DIR)
    assert first.returncode == 0, first.stderr
    count = psql("select count(*) from schema_migrations")
    second = kilnctl("db", "migrate", "--dir", SQL_DIR)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert psql("select count(*) from schema_migrations") == count
    assert int(count) == len(sql_files())


@pytest.fixture
def scratch_db(tmp_path):
    """A fresh empty database on the same server, with a config for it."""
    name = unique("kiln_scratch")
    psql("create database " + name)
    if re.search(r"\bdbname=\S+", PG):
        conninfo = re.sub(r"\bdbname=\S+", "dbname=" + name, PG)
    else:
        conninfo = PG + " dbname=" + name
    conf = tmp_path / "scratch.conf"
    conf.write_text('domain = "%s";\ndb = { conninfo = "%s"; };\n'
                    % (conf_domain(), conninfo))
    yield str(conf), conninfo
    psql("drop database if exists %s with (force)" % name)


def test_concurrent_migrators_apply_each_file_once(scratch_db):
    conf, conninfo = scratch_db
    procs = [subprocess.Popen([KILNCTL, "-c", conf, "db", "migrate", "--dir",
                               SQL_DIR], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    applied = sum(out.count("applied 0") for out, _ in outs)
    assert applied == len(sql_files())
    assert (psql("select count(*) from schema_migrations", conninfo)
            == str(len(sql_files())))


def test_failing_migration_leaves_nothing(scratch_db, tmp_path):
    conf, conninfo = scratch_db
    sql = tmp_path / "sql"
    sql.mkdir()
    for f in sql_files():
        (sql / f).write_text(open(os.path.join(SQL_DIR, f)).read())
    (sql / "9999_broken.sql").write_text(
        "create table half_done (a int);\nselect * from no_such_table;\n")
    r = kilnctl("db", "migrate", "--dir", str(sql), conf=conf)
    assert r.returncode == 1
    assert "9999_broken.sql" in r.stderr
    assert psql("select count(*) from schema_migrations where version = "
                "'9999'", conninfo) == "0"
    assert psql("select to_regclass('half_done') is null", conninfo) == "t"
    # everything before it was applied and recorded
    assert (psql("select count(*) from schema_migrations", conninfo)
            == str(len(sql_files())))


# ---- users ---------------------------------------------------------------


def test_user_add_stores_verifiable_scram_keys():
    name = unique("alice")
    r = add_user(name, "secret")
    assert name in r.stdout
    row = user_row(name)
    assert row is not None
    assert row["iterations"] == 4096
    assert_keys_verify(row, "secret")
    # the two hashes do not share a salt
    assert row["sha1"][0] != row["sha256"][0]
    # no plaintext anywhere in the row, as text or as bytes
    whole = psql("select u::text from users u where username = %s" % sq(name))
    assert "secret" not in whole
    assert b"secret".hex() not in whole
    assert psql("select count(*) from users u where u::text like "
                "'%%secret%%' or u::text like '%%%s%%'" % b"secret".hex()) == "0"


def test_user_add_duplicate_fails():
    name = unique("dup")
    add_user(name)
    r = kilnctl("user", "add", name, "other")
    assert r.returncode == 1
    assert "already exists" in r.stderr
    # the first credentials are untouched
    assert_keys_verify(user_row(name), "secret")


def test_user_del():
    name = unique("gone")
    add_user(name)
    r = kilnctl("user", "del", name)
    assert r.returncode == 0, r.stderr
    assert user_row(name) is None
    r = kilnctl("user", "del", name)
    assert r.returncode == 1
    assert "no user" in r.stderr


def test_user_passwd():
    name = unique("pw")
    add_user(name, "old-secret")
    before = user_row(name)
    r = kilnctl("user", "passwd", name, "new-secret")
    assert r.returncode == 0, r.stderr
    after = user_row(name)
    assert_keys_verify(after, "new-secret")
    assert after["sha1"][0] != before["sha1"][0]  # fresh salt
    r = kilnctl("user", "passwd", unique("nobody"), "x")
    assert r.returncode == 1


def test_password_from_stdin():
    name = unique("stdin")
    r = kilnctl("user", "add", name, stdin="from stdin\n")
    assert r.returncode == 0, r.stderr
    assert_keys_verify(user_row(name), "from stdin")
    r = kilnctl("user", "passwd", name, "-", stdin="changed\r\n")
    assert r.returncode == 0, r.stderr
    assert_keys_verify(user_row(name), "changed")
    r = kilnctl("user", "add", unique("nopw"), stdin="")
    assert r.returncode == 1


def test_password_is_saslprepped():
    # U+00AD (soft hyphen) maps to nothing, U+00A0 to a space (RFC 4013)
    name = unique("prep")
    add_user(name, "pa\u00adss\u00a0word")
    assert_keys_verify(user_row(name), "pass word")
    r = kilnctl("user", "add", unique("ctrl"), "bad\x07pw")
    assert r.returncode == 1


def test_user_names_are_nodeprepped_and_domain_checked():
    base = unique("Carol")
    add_user("%s@%s" % (base, conf_domain().upper()))
    assert user_row(base.lower()) is not None
    assert user_row(base) is None
    r = kilnctl("user", "add", base.lower(), "x")
    assert r.returncode == 1  # same user after preparation
    r = kilnctl("user", "add", unique("eve") + "@elsewhere.example", "x")
    assert r.returncode == 1
    assert "domain" in r.stderr
    r = kilnctl("user", "add", unique("full") + "@%s/res" % conf_domain(), "x")
    assert r.returncode == 1
    r = kilnctl("user", "add", "bad\"name", "x")  # '"' is prohibited
    assert r.returncode == 1
    listed = kilnctl("user", "list")
    assert listed.returncode == 0
    assert base.lower() in listed.stdout.split()


def test_usage_errors_exit_2():
    assert kilnctl().returncode == 2
    assert kilnctl("user").returncode == 2
    assert kilnctl("user", "add").returncode == 2
    assert kilnctl("db").returncode == 2
    assert kilnctl("no-such-command").returncode == 2
    r = subprocess.run([KILNCTL, "--no-such-option"], capture_output=True,
                       text=True)
    assert r.returncode == 2


# ---- --check-config -------------------------------------------------------


def test_check_config_broken_file(tmp_path):
    bad = tmp_path / "broken.conf"
    bad.write_text('domain = "localhost";\ndb = {\n  conninfo = ;\n};\n')
    r = subprocess.run([KILNCTL, "-c", str(bad), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "%s:3" % bad in r.stderr
    assert "config ok" not in r.stdout


def test_check_config_unknown_key(tmp_path):
    bad = tmp_path / "typo.conf"
    bad.write_text('domain = "localhost";\ndb = { conninfo = "x"; '
                   'pool_mxa = 3; };\n')
    r = subprocess.run([KILNCTL, "-c", str(bad), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "pool_mxa" in r.stderr


def test_check_config_good_file(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text('domain = "localhost";\n'
                    'db = { conninfo = "host=/nonexistent dbname=kiln"; };\n')
    r = subprocess.run([KILNCTL, "-c", str(good), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "config ok"
    # the run's own config, found through $KILN_CONF
    r = subprocess.run([KILNCTL, "--check-config"], capture_output=True,
                       text=True, env=dict(os.environ, KILN_CONF=CONF))
    assert r.returncode == 0, r.stderr


def test_missing_config_file_fails(tmp_path):
    r = subprocess.run([KILNCTL, "-c", str(tmp_path / "none.conf"),
                        "--check-config"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "none.conf" in r.stderr
