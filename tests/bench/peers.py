#!/usr/bin/python3
"""peers.py - runs the peers' harness (../shared/peers) for `make bench --peers`.

Copies the peers folder (read-only where it lives) to a new temporary folder,
runs its ./setup when the peers are not installed (apt-get and npm: needs the
network and root), then runs, one at a time, BullMQ with Redis AOF
(BULLMQ_DURABILITY=aof) and beanstalkd with its binlog (BS_VARIANTS=binlog).
PEERS_N (default 20000), PEERS_RUNS (default 3) and every other PEERS_* /
BULLMQ_* / BS_* variable pass through to the harness.

Prints one JSON document on stdout: per peer, the medians (and every run) of
its throughput and latency results, read from the harness's results/*.json.
The harness's own log lines go to stderr. Exits 1 when a peer could not run.

Usage: peers.py [PEERS_DIR]   (default: $YARD_PEERS_DIR or ../shared/peers
                               beside the repository)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# (peer, results file stem, column) for each figure the side-by-side table reads.
FILES = {
    "bullmq": {
        "bulk": "bullmq__bulk-aof__throughput.json",
        "single": "bullmq__single-aof__throughput.json",
        "latency": "bullmq__add-aof@{rate}ps__latency.json",
    },
    "beanstalkd": {
        "bulk": "beanstalkd__put-binlog__throughput.json",
        "latency": "beanstalkd__put-binlog@{rate}ps__latency.json",
    },
}
LABELS = {
    "bullmq": "BullMQ + Redis, AOF everysec",
    "beanstalkd": "beanstalkd, binlog",
}
RUNS = [("bench-bullmq", {"BULLMQ_DURABILITY": "aof"}),
        ("bench-beanstalkd", {"BS_VARIANTS": "binlog"})]


def log(*a):
    print("peers:", *a, file=sys.stderr, flush=True)


def installed(peers):
    """True when the servers and the node modules the two peers need are there."""
    return (shutil.which("redis-server") and shutil.which("beanstalkd")
            and os.path.isdir(os.path.join(peers, "node", "node_modules", "bullmq")))


def setup(peers):
    """Installs what is missing: the whole ./setup when a package is missing,
    else only the node modules (what ./setup does for node)."""
    if shutil.which("redis-server") and shutil.which("beanstalkd"):
        log("installing the node modules (npm install in node/)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], check=True,
                       cwd=os.path.join(peers, "node"), stdout=sys.stderr)
    else:
        log("peers not installed: running ./setup (apt-get, npm)")
        subprocess.run(["./setup"], check=True, cwd=peers, stdout=sys.stderr)


def summary(path):
    """The runs and medians of one results file, or None when it is missing."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    keep = ("tput", "submit_rate", "done_p50_ms", "done_p99_ms", "start_p50_ms",
            "start_p99_ms", "rss_mb", "pss_mb", "n", "secs")
    med = doc.get("median", {})
    return {"variant": doc.get("variant"), "durability": doc.get("durability"),
            "N": doc.get("N"), "rate": doc.get("rate"),
            "median": {k: med.get(k) for k in keep if med.get(k) is not None},
            "runs": [{k: r.get(k) for k in keep if r.get(k) is not None}
                     for r in doc.get("runs", [])]}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("YARD_PEERS_DIR")
           or os.path.join(here, "..", "..", "..", "shared", "peers"))
    if not os.path.isfile(os.path.join(src, "run-all")):
        log("no peers harness at %s (set YARD_PEERS_DIR)" % src)
        return 1
    tmp = tempfile.mkdtemp(prefix="yard-peers.")
    os.chmod(tmp, 0o755)
    peers = os.path.join(tmp, "peers")
    shutil.copytree(src, peers, ignore=shutil.ignore_patterns("results"))
    results = os.path.join(tmp, "results")
    env = dict(os.environ)
    env.setdefault("PEERS_N", "20000")
    env.setdefault("PEERS_RUNS", "3")
    env["PEERS_RESULTS"] = results
    rate = int(env.get("PEERS_RATE", "1000"))
    rc = 0
    try:
        if not installed(peers):
            setup(peers)
        for prog, extra in RUNS:
            e = dict(env)
            e.update(extra)
            log("running %s (%s, PEERS_N=%s PEERS_RUNS=%s)" % (
                prog, " ".join("%s=%s" % kv for kv in extra.items()), e["PEERS_N"],
                e["PEERS_RUNS"]))
            p = subprocess.run(["./" + prog], cwd=peers, env=e, stdout=sys.stderr)
            if p.returncode != 0:
                log("%s exited %d" % (prog, p.returncode))
                rc = 1
        doc = {"source": os.path.abspath(src), "N": int(env["PEERS_N"]),
               "runs": int(env["PEERS_RUNS"]), "rate": rate, "peers": {}}
        for peer, files in FILES.items():
            entry = {"label": LABELS[peer]}
            for col, name in files.items():
                s = summary(os.path.join(results, name.format(rate=rate)))
                if s is None:
                    log("missing result %s" % name.format(rate=rate))
                    rc = 1
                entry[col] = s
            doc["peers"][peer] = entry
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    except (subprocess.CalledProcessError, OSError) as e:
        log("failed: %s" % e)
        rc = 1
    finally:
        shutil.rmtree(tmp, True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
