"""test/tap.py: what the Python test suites share: TAP lines and their summary, psql, and
the SQLSTATE an expression raises. The database is the one the environment names (PGHOST,
PGPORT, PGUSER, PGDATABASE)."""
import subprocess
import sys
import time

COUNTS = {"passed": 0, "failed": 0}


def ok(cond, what):
    """One TAP line; returns cond."""
    COUNTS["passed" if cond else "failed"] += 1
    n = COUNTS["passed"] + COUNTS["failed"]
    print("%s %d - %s" % ("ok" if cond else "not ok", n, what))
    sys.stdout.flush()
    return cond


def summary():
    """The "N passed, N failed" line; the exit status."""
    print("%d passed, %d failed" % (COUNTS["passed"], COUNTS["failed"]))
    return 1 if COUNTS["failed"] else 0


def try_psql(sql):
    """(rows, stderr) of sql through psql: tab-separated fields, no error stop."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    return [line.split("\t") for line in r.stdout.splitlines() if line], r.stderr


def psql(sql):
    """Rows of sql; a RuntimeError with psql's message when it fails."""
    rows, err = try_psql(sql)
    if "ERROR" in err:
        raise RuntimeError(err.strip())
    return rows


def sqlstate(expr):
    """(SQLSTATE, message, seconds) of the error `SELECT expr` raises; ('', stderr, s) if none."""
    t0 = time.time()
    _, err = try_psql("DO $$ BEGIN PERFORM %s; EXCEPTION WHEN OTHERS THEN "
                      "RAISE EXCEPTION USING MESSAGE = 'caught|' || SQLSTATE || '|' || SQLERRM; END $$" % expr)
    secs = time.time() - t0
    if "caught|" not in err:
        return ("", err.strip(), secs)
    code, msg = err.split("caught|", 1)[1].splitlines()[0].strip().split("|", 1)
    return (code, msg, secs)
