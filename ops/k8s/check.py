#!/usr/bin/python3
"""check.py - checks the Kubernetes manifests of ops/k8s against the real programs.

    python3 ops/k8s/check.py --bin bin --nats-url nats://127.0.0.1:4222 \
        --nats-monitor 8222 --pg-dsn postgresql://postgres@127.0.0.1:55432/yard

It needs a nats-server with JetStream (single node is enough) and an empty or
migrated PostgreSQL database; tests/integration/test_k8s_manifests.c starts
both and runs it (that is how `make test` runs it). What it checks:

  * yamllint (strict, ops/k8s/.yamllint) on every manifest and the Helm values;
  * every workload: non-root, read-only root file system, no privilege
    escalation, all capabilities dropped, CPU and memory requests and limits,
    the Dockerfile's image user; its command is a program the Dockerfile
    installs and `make` builds;
  * every YARD_* variable a container gets (ConfigMap, Secret, env) is a
    setting of that program (--print-config lists it, with that value) and
    the program accepts its flags: the migration Job's yardctl really
    migrates the database, and each Deployment's program is started with its
    command, flags and variables (only the addresses of NATS, PostgreSQL and
    its own listening port are pointed at the test's), and its liveness and
    readiness probes are answered 200 on the route and port they name;
  * every KEDA trigger reads stream JOBS and a consumer that the programs,
    once run with this configuration, created (read back from the NATS
    monitoring endpoint KEDA reads, /jsz?consumers=true), the consumer of the
    queue its target Deployment serves; every queue has its Deployment and
    ScaledObject, every worker role of `yard-worker --help` its Deployment;
  * Services, HPA and PodDisruptionBudgets select or target what exists;
  * the Helm values: 3 nodes with JetStream on file storage, replicas equal
    to YARD_JS_REPLICAS, the monitoring port KEDA uses, max_payload; one NATS
    user per workload (its YARD_NATS_USER) whose password comes from the
    YARD_NATS_PASSWORD of the credentials Secret that workload gets, and a
    gateway user that cannot consume;
  * the PostgreSQL settings ConfigMap holds ops/postgres/yard.conf as it is;
  * the Dockerfile: Debian 12, multi-stage, `make`, a non-root USER, the
    build stage has every library package of ops/install-deps.sh, and the
    runtime packages provide every shared library the programs link.

Prints one line per failure and exits 1 if there was any, else 0.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

NAMESPACE = "switchyard"
STREAM_JOBS = "JOBS"
CONSUMER_EXECUTE = "execute_"
HELM_VALUES = "nats-values.yaml"
START_TIMEOUT_S = 30
RUN_TIMEOUT_S = 60
# Settings pointed at the test's servers when a program is started; every
# other value is the manifest's own.
TEST_OVERRIDES = ("YARD_NATS_URL", "YARD_PG_DSN", "YARD_NATS_TOKEN", "YARD_NATS_USER",
                  "YARD_NATS_PASSWORD", "YARD_HTTP_ADDR",
                  "YARD_HTTP_PORT", "YARD_JS_REPLICAS")


class Checker:
    def __init__(self, args):
        self.args = args
        self.dir = args.dir
        self.failures = []
        self.checks = 0
        self.notes = []

    # ---- reporting -----------------------------------------------------------
    def check(self, ok, what):
        self.checks += 1
        if not ok:
            self.failures.append(what)
        return ok

    def note(self, what):
        self.notes.append(what)

    # ---- loading -------------------------------------------------------------
    def load(self):
        self.files = sorted(f for f in os.listdir(self.dir) if f.endswith(".yaml"))
        self.objects = []  # (file, doc)
        for f in self.files:
            if f == HELM_VALUES:
                continue
            with open(os.path.join(self.dir, f)) as fh:
                for doc in yaml.safe_load_all(fh):
                    if doc:
                        self.objects.append((f, doc))
        with open(os.path.join(self.dir, HELM_VALUES)) as fh:
            self.helm = yaml.safe_load(fh)

    def of_kind(self, kind):
        return [(f, o) for f, o in self.objects if o.get("kind") == kind]

    def named(self, kind, name):
        for _, o in self.of_kind(kind):
            if o["metadata"]["name"] == name:
                return o
        return None

    # ---- yamllint and kustomization ------------------------------------------
    def check_lint(self):
        paths = [os.path.join(self.dir, f) for f in self.files]
        r = subprocess.run(["yamllint", "-s", "-c", os.path.join(self.dir, ".yamllint")] + paths,
                           capture_output=True, text=True)
        self.check(r.returncode == 0, "yamllint: " + (r.stdout + r.stderr).strip()[:2000])

    def check_kustomization(self):
        kust = [o for f, o in self.objects if f == "kustomization.yaml"]
        if not self.check(len(kust) == 1, "kustomization.yaml: missing"):
            return
        listed = set(kust[0].get("resources", []))
        for f in self.files:
            if f in ("kustomization.yaml", HELM_VALUES) or "Job" in {
                    o.get("kind") for g, o in self.objects if g == f}:
                continue
            self.check(f in listed, "kustomization.yaml: does not list %s" % f)
        for f in listed:
            self.check(os.path.exists(os.path.join(self.dir, f)),
                       "kustomization.yaml: lists %s, which does not exist" % f)

    # ---- the Dockerfile ------------------------------------------------------
    def check_dockerfile(self):
        path = self.args.dockerfile
        with open(path) as fh:
            text = fh.read()
        froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
        self.check(len(froms) >= 2, "Dockerfile: expected a multi-stage build, got FROM %s" % froms)
        self.check(all(re.match(r"debian:(12|bookworm)\b", f) for f in froms),
                   "Dockerfile: expected every stage on Debian 12, got %s" % froms)
        self.check(re.search(r"^RUN .*\bmake\b", text, re.M) is not None,
                   "Dockerfile: expected the programs built with make")
        users = re.findall(r"^USER\s+(\d+)(?::(\d+))?", text, re.M)
        self.uid = int(users[-1][0]) if users else None
        self.check(self.uid not in (None, 0), "Dockerfile: expected a numeric non-root USER, got %s"
                   % users)
        copied = re.findall(r"^COPY --from=\S+ (.+) (/\S+/)\s*$", text, re.M)
        self.installed = set()
        for sources, dest in copied:
            for s in sources.split():
                self.installed.add(dest + os.path.basename(s))
        # The build stage has every library package `make deps` installs.
        first = text[:text.find("\nFROM", text.find("FROM") + 1)]
        with open(os.path.join(os.path.dirname(path), "install-deps.sh")) as fh:
            dev = set(re.findall(r"\blib[a-z0-9.+-]*-dev\b", fh.read()))
        for pkg in sorted(dev):
            self.check(re.search(r"\b%s\b" % re.escape(pkg), first) is not None,
                       "Dockerfile: the build stage lacks %s (ops/install-deps.sh has it)" % pkg)
        # Runtime packages: the last stage's apt-get install list.
        last = text[text.rfind("\nFROM"):]
        pkgs = set(re.findall(r"\b(lib[a-z0-9.+-]+|ca-certificates)\b",
                              last.split("apt-get install", 1)[-1].split("rm -rf")[0]))
        for prog in ("yard-gateway", "yard-worker", "yardctl"):
            binary = os.path.join(self.args.bin, prog)
            r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True)
            for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", r.stdout):
                # Sanitizer runtimes come from `make asan` builds, never from the image's.
                if re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib):
                    continue
                owner = self.lib_package(lib)
                if owner in ("libc6", None):
                    self.check(owner is not None, "Dockerfile: no package found for %s" % lib)
                    continue
                self.check(owner in pkgs, "Dockerfile: %s links %s (package %s), which the "
                           "runtime stage does not install (it installs %s)"
                           % (prog, lib, owner, " ".join(sorted(pkgs))))

    @staticmethod
    def lib_package(lib):
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
                  "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"):
            p = os.path.join(d, lib)
            if os.path.exists(p):
                for candidate in (p, os.path.realpath(p)):
                    r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                    if r.returncode == 0:
                        return r.stdout.split(":")[0]
        return None

    # ---- workloads -----------------------------------------------------------
    def workloads(self):
        """(kind, name, pod spec, file) of every Deployment and Job."""
        out = []
        for kind in ("Deployment", "Job"):
            for f, o in self.of_kind(kind):
                out.append((kind, o["metadata"]["name"], o["spec"]["template"]["spec"], f, o))
        return out

    def container_env(self, c):
        env = {}
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                cm = self.named("ConfigMap", src["configMapRef"]["name"])
                if self.check(cm is not None, "%s: envFrom names ConfigMap %s, which is not in "
                              "the manifests" % (c["name"], src["configMapRef"]["name"])):
                    env.update({k: str(v) for k, v in cm.get("data", {}).items()})
            if "secretRef" in src:
                sec = self.named("Secret", src["secretRef"]["name"])
                if self.check(sec is not None, "%s: envFrom names Secret %s, which is not in "
                              "the manifests" % (c["name"], src["secretRef"]["name"])):
                    env.update({k: str(v) for k, v in sec.get("stringData", {}).items()})
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
        return env

    def check_static(self):
        images = set()
        for kind, name, pod, f, obj in self.workloads():
            where = "%s %s (%s)" % (kind, name, f)
            self.check(obj["metadata"].get("namespace") == NAMESPACE,
                       "%s: expected namespace %s" % (where, NAMESPACE))
            psc = pod.get("securityContext", {})
            self.check(psc.get("runAsNonRoot") is True, "%s: runAsNonRoot is not true" % where)
            self.check(psc.get("runAsUser") == self.uid, "%s: runAsUser %s, the image's USER is %s"
                       % (where, psc.get("runAsUser"), self.uid))
            if kind == "Deployment":
                sel = obj["spec"]["selector"]["matchLabels"]
                labels = obj["spec"]["template"]["metadata"]["labels"]
                self.check(all(labels.get(k) == v for k, v in sel.items()),
                           "%s: selector %s does not match the pod labels %s" % (where, sel, labels))
            for c in pod["containers"]:
                cw = "%s container %s" % (where, c["name"])
                images.add(c.get("image"))
                sc = c.get("securityContext", {})
                self.check(sc.get("readOnlyRootFilesystem") is True,
                           "%s: readOnlyRootFilesystem is not true" % cw)
                self.check(sc.get("allowPrivilegeEscalation") is False,
                           "%s: allowPrivilegeEscalation is not false" % cw)
                self.check(sc.get("capabilities", {}).get("drop") == ["ALL"],
                           "%s: capabilities are not all dropped" % cw)
                res = c.get("resources", {})
                for part in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        self.check(r in res.get(part, {}), "%s: no %s %s" % (cw, r, part))
                cmd = c.get("command", [])
                if self.check(len(cmd) == 1, "%s: expected command [program], got %s" % (cw, cmd)):
                    self.check(cmd[0] in self.installed, "%s: command %s is not a program the "
                               "Dockerfile installs (%s)" % (cw, cmd[0], sorted(self.installed)))
                    prog = os.path.join(self.args.bin, os.path.basename(cmd[0]))
                    self.check(os.access(prog, os.X_OK), "%s: command %s is not a built program "
                               "(%s)" % (cw, cmd[0], prog))
                if kind == "Deployment":
                    for probe in ("livenessProbe", "readinessProbe"):
                        self.check("httpGet" in c.get(probe, {}), "%s: no %s with httpGet"
                                   % (cw, probe))
        self.check(len(images) == 1, "workloads run different images: %s" % sorted(images))

    # ---- running the programs --------------------------------------------------
    def run_env(self, env, port=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("YARD_")}
        e.update(env)
        e["YARD_NATS_URL"] = self.args.nats_url
        e["YARD_PG_DSN"] = self.args.pg_dsn
        e["YARD_NATS_TOKEN"] = ""  # the test's nats-server has no authorization
        e["YARD_NATS_USER"] = ""
        e["YARD_NATS_PASSWORD"] = ""
        e["YARD_HTTP_ADDR"] = "127.0.0.1"
        e["YARD_JS_REPLICAS"] = "1"  # one test server; the Helm values check R3
        if port is not None:
            e["YARD_HTTP_PORT"] = str(port)
        return e

    def check_print_config(self, where, prog, args, env):
        """Runs prog args --print-config with env as given; checks every YARD_* variable
        is one of its settings, printed with its value."""
        if not os.access(prog, os.X_OK):
            return  # reported by check_static
        e = {k: v for k, v in os.environ.items() if not k.startswith("YARD_")}
        e.update(env)
        r = subprocess.run([prog] + args + ["--print-config"], env=e, capture_output=True,
                           text=True, timeout=RUN_TIMEOUT_S)
        if not self.check(r.returncode == 0, "%s: `%s %s --print-config` exited %d: %s"
                          % (where, os.path.basename(prog), " ".join(args), r.returncode,
                             r.stderr.strip()[:500])):
            return
        printed = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition(" = ")
            printed[k.strip()] = v
        for var, value in sorted(env.items()):
            if not var.startswith("YARD_"):
                continue
            key = var[5:].lower()
            if not self.check(key in printed, "%s: %s is not a setting of %s (--print-config "
                              "does not list `%s`)" % (where, var, os.path.basename(prog), key)):
                continue
            if "***" not in printed[key]:
                self.check(printed[key] == value, "%s: %s=%s, but %s --print-config shows "
                           "%s = %s" % (where, var, value, os.path.basename(prog), key,
                                        printed[key]))

    def check_migrate_job(self):
        for kind, name, pod, f, obj in self.workloads():
            if kind != "Job":
                continue
            for c in pod["containers"]:
                prog = os.path.join(self.args.bin, os.path.basename(c["command"][0]))
                env = self.container_env(c)
                where = "Job %s (%s)" % (name, f)
                if not os.access(prog, os.X_OK):
                    continue  # reported by check_static
                self.check_print_config(where, prog, [], env)
                r = subprocess.run([prog] + c.get("args", []), env=self.run_env(env),
                                   capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
                self.check(r.returncode == 0, "%s: `%s %s` exited %d: %s"
                           % (where, c["command"][0], " ".join(c.get("args", [])), r.returncode,
                              r.stderr.strip()[-800:]))

    @staticmethod
    def free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    @staticmethod
    def http_status(port, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def listen_port(self, c, env):
        """The port the program of container c listens on, and its args with that port
        replaced by a free one (for the test) and the free port."""
        args = list(c.get("args", []))
        free = self.free_port()
        if "--metrics-port" in args:
            i = args.index("--metrics-port")
            port = int(args[i + 1])
            args[i + 1] = str(free)
            return port, args, free, None
        return int(env.get("YARD_HTTP_PORT", "8080")), args, free, free

    def probe_port(self, c, probe):
        port = c[probe]["httpGet"]["port"]
        if isinstance(port, int):
            return port
        for p in c.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        return None

    def served_roles(self):
        r = subprocess.run([os.path.join(self.args.bin, "yard-worker"), "--help"],
                           capture_output=True, text=True)
        roles = []
        section = False
        for line in r.stdout.splitlines():
            if line.startswith("Roles:"):
                section = True
            elif section and line and not line.startswith(" "):
                break
            elif section:
                m = re.match(r"^  ([a-z]+)\s{2,}", line)
                if m:
                    roles.append(m.group(1))
        return roles

    def check_deployments_run(self):
        self.deployment_queues = {}
        self.deployment_roles = {}
        served = self.served_roles()
        self.check(len(served) > 0, "yard-worker --help lists no roles")
        # The gateway first: it makes the topology of YARD_JS_QUEUES.
        deps = sorted(self.workloads(), key=lambda w: w[1] != "yard-gateway")
        for kind, name, pod, f, obj in deps:
            if kind != "Deployment":
                continue
            for c in pod["containers"]:
                self.run_container(name, f, c, served)

    def run_container(self, name, f, c, served):
        where = "Deployment %s (%s) container %s" % (name, f, c["name"])
        prog = os.path.join(self.args.bin, os.path.basename(c["command"][0]))
        env = self.container_env(c)
        args = c.get("args", [])
        if not os.access(prog, os.X_OK):
            return  # reported by check_static
        if "--role" in args:
            role = args[args.index("--role") + 1]
            self.deployment_roles[name] = role
            if "--queues" in args:
                self.deployment_queues[name] = args[args.index("--queues") + 1]
            if role not in served:
                self.note("%s: `yard-worker --role %s` is not served by this build (its --help "
                          "lists %s): the Deployment is checked statically only"
                          % (where, role, ", ".join(served)))
                self.check_print_config(where, prog, args, env)
                return
        self.check_print_config(where, prog, args, env)
        port, run_args, test_port, http_port = self.listen_port(c, env)
        for probe in ("livenessProbe", "readinessProbe"):
            pp = self.probe_port(c, probe)
            self.check(pp == port, "%s: %s port %s, but the program listens on %s"
                       % (where, probe, c[probe]["httpGet"]["port"], port))
        log = open(os.path.join(self.args.work, "%s.log" % name), "w")
        proc = subprocess.Popen([prog] + run_args, env=self.run_env(env, http_port), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(self.args.work, "%s.pid" % name), "w") as pf:
            pf.write("%d\n" % proc.pid)
        try:
            for probe in ("livenessProbe", "readinessProbe"):
                path = c[probe]["httpGet"]["path"]
                deadline = time.time() + START_TIMEOUT_S
                status = None
                while time.time() < deadline and proc.poll() is None:
                    status = self.http_status(test_port, path)
                    if status == 200:
                        break
                    time.sleep(0.1)
                self.check(status == 200, "%s: %s GET %s answered %s within %d s (exit %s); "
                           "see %s.log" % (where, probe, path, status, START_TIMEOUT_S,
                                           proc.poll(), name))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()

    # ---- KEDA ----------------------------------------------------------------
    def live_consumers(self):
        url = "http://127.0.0.1:%d/jsz?consumers=true" % self.args.nats_monitor
        with urllib.request.urlopen(url, timeout=5) as r:
            jsz = json.load(r)
        out = {}
        for acct in jsz.get("account_details", []):
            for st in acct.get("stream_detail", []):
                out.setdefault(st["name"], set()).update(
                    c["name"] for c in st.get("consumer_detail", []))
        return out

    def check_keda(self):
        consumers = self.live_consumers()
        cm = self.named("ConfigMap", "yard-config") or {"data": {}}
        queues = [q.strip() for q in cm["data"].get("YARD_JS_QUEUES", "default").split(",")
                  if q.strip()]
        monitor = self.helm.get("config", {}).get("monitor", {})
        scaled = {}
        for f, so in self.of_kind("ScaledObject"):
            name = so["metadata"]["name"]
            where = "ScaledObject %s (%s)" % (name, f)
            target = so["spec"]["scaleTargetRef"]["name"]
            dep = self.named("Deployment", target)
            if not self.check(dep is not None, "%s: targets Deployment %s, which is not in the "
                              "manifests" % (where, target)):
                continue
            scaled[target] = so
            triggers = so["spec"].get("triggers", [])
            queue = self.deployment_queues.get(target)
            base = CONSUMER_EXECUTE + (queue or "?").replace(".", "_")
            tiers = {base, base + "_HIGH", base + "_LOW"}
            named = {t.get("metadata", {}).get("consumer") for t in triggers}
            self.check(len(triggers) == 3 and named == tiers and
                       all(t.get("type") == "nats-jetstream" for t in triggers),
                       "%s: expected one nats-jetstream trigger per priority tier %s, got %s"
                       % (where, sorted(tiers), triggers))
            for t in triggers:
                md = t.get("metadata", {})
                self.check(md.get("stream") == STREAM_JOBS, "%s: trigger reads stream %s, jobs "
                           "are in %s" % (where, md.get("stream"), STREAM_JOBS))
                consumer = md.get("consumer")
                self.check(consumer in consumers.get(STREAM_JOBS, set()),
                           "%s: trigger names consumer %s, which the programs did not create on "
                           "%s (they created %s)" % (where, consumer, STREAM_JOBS,
                                                    sorted(consumers.get(STREAM_JOBS, set()))))
                self.check(self.deployment_roles.get(target) == "execute" and consumer in tiers,
                           "%s: trigger reads %s, but %s runs --role %s --queues %s (consumer %s)"
                           % (where, consumer, target, self.deployment_roles.get(target), queue,
                              sorted(tiers)))
                lag = str(md.get("lagThreshold", ""))
                self.check(lag.isdigit() and int(lag) > 0, "%s: lagThreshold %r is not a positive "
                           "integer" % (where, lag))
                self.check(md.get("account") == "$G", "%s: account %r, expected $G (no accounts "
                           "configured)" % (where, md.get("account")))
                endpoint = md.get("natsServerMonitoringEndpoint", "")
                self.check(endpoint.endswith(":%s" % monitor.get("port")) and
                           endpoint.startswith("nats"),
                           "%s: natsServerMonitoringEndpoint %s is not the monitoring port %s of "
                           "the Helm release `nats`" % (where, endpoint, monitor.get("port")))
        for dep, role in self.deployment_roles.items():
            if role == "execute":
                self.check(dep in scaled, "Deployment %s runs execute workers but no "
                           "ScaledObject scales it" % dep)
        for q in queues:
            self.check(q in self.deployment_queues.values(), "queue %s (YARD_JS_QUEUES) has no "
                       "execute Deployment" % q)
        for q in self.deployment_queues.values():
            self.check(q in queues, "an execute Deployment serves queue %s, which YARD_JS_QUEUES "
                       "(%s) does not list: the gateway would refuse its jobs" % (q, queues))
        for role in self.served_roles():
            self.check(role in self.deployment_roles.values(), "role %s (yard-worker --help) has "
                       "no Deployment" % role)

    # ---- Services, HPA, PDB, Helm values -----------------------------------------
    def pods_matching(self, selector):
        out = []
        for _, d in self.of_kind("Deployment"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                out.append(d)
        return out

    def check_selectors(self):
        for f, s in self.of_kind("Service"):
            where = "Service %s (%s)" % (s["metadata"]["name"], f)
            pods = self.pods_matching(s["spec"].get("selector"))
            if not self.check(len(pods) > 0, "%s: selects no Deployment's pods" % where):
                continue
            ports = {p.get("name") for d in pods for c in d["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])} | {
                p.get("containerPort") for d in pods
                for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for p in s["spec"]["ports"]:
                self.check(p.get("targetPort") in ports, "%s: targetPort %s is no port of its "
                           "pods" % (where, p.get("targetPort")))
        for f, h in self.of_kind("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            self.check(ref.get("kind") == "Deployment" and self.named("Deployment", ref["name"]),
                       "HPA %s: targets %s, which is not a Deployment here" % (
                           h["metadata"]["name"], ref))
            self.check(ref["name"] not in {so["spec"]["scaleTargetRef"]["name"]
                                           for _, so in self.of_kind("ScaledObject")},
                       "HPA %s: its Deployment is scaled by KEDA too" % h["metadata"]["name"])
        covered = set()
        for f, p in self.of_kind("PodDisruptionBudget"):
            pods = self.pods_matching(p["spec"]["selector"].get("matchLabels"))
            self.check(len(pods) > 0, "PodDisruptionBudget %s (%s): selects no pods"
                       % (p["metadata"]["name"], f))
            covered.update(d["metadata"]["name"] for d in pods)
        for _, d in self.of_kind("Deployment"):
            self.check(d["metadata"]["name"] in covered, "Deployment %s has no "
                       "PodDisruptionBudget" % d["metadata"]["name"])

    def check_helm_values(self):
        cfg = self.helm.get("config", {})
        cm = self.named("ConfigMap", "yard-config") or {"data": {}}
        cluster = cfg.get("cluster", {})
        replicas = int(cm["data"].get("YARD_JS_REPLICAS", "1"))
        self.check(cluster.get("enabled") is True and cluster.get("replicas", 0) >= 3,
                   "nats-values.yaml: expected a cluster of 3 nodes, got %s" % cluster)
        self.check(cluster.get("replicas", 0) >= replicas, "nats-values.yaml: %s nodes cannot "
                   "hold YARD_JS_REPLICAS=%d" % (cluster.get("replicas"), replicas))
        js = cfg.get("jetstream", {})
        self.check(js.get("enabled") is True and js.get("fileStore", {}).get("enabled") is True
                   and js.get("fileStore", {}).get("pvc", {}).get("enabled") is True,
                   "nats-values.yaml: expected JetStream on file storage with a PVC, got %s" % js)
        self.check(cfg.get("monitor", {}).get("enabled") is True,
                   "nats-values.yaml: the monitoring port (KEDA, probes) is not enabled")
        merge = cfg.get("merge", {})
        self.check(isinstance(merge.get("max_payload"), int) and
                   merge["max_payload"] >= 2 * 1024 * 1024,
                   "nats-values.yaml: max_payload %r is below 2 MiB (the JOBS message limit)"
                   % merge.get("max_payload"))
        self.check_nats_users(merge)

    def check_nats_users(self, merge):
        """Every workload's YARD_NATS_USER is a user of the Helm values whose password
        comes from the key YARD_NATS_PASSWORD of the Secret that gives the workload that
        user; the gateway's user may not consume (no MSG.NEXT, no acks, no subscription
        beyond _INBOX.>)."""
        users = {u.get("user"): u for u in merge.get("authorization", {}).get("users", [])}
        env = self.helm.get("container", {}).get("env", {})
        self.check("token" not in merge.get("authorization", {}),
                   "nats-values.yaml: a shared token besides the per-program users")
        for kind, name, pod, f, obj in self.workloads():
            for c in pod["containers"]:
                cenv = self.container_env(c)
                user = cenv.get("YARD_NATS_USER", "")
                where = "%s %s (%s)" % (kind, name, f)
                if not self.check(user in users, "%s: YARD_NATS_USER %r is not a user of "
                                  "nats-values.yaml (%s)" % (where, user, sorted(users))):
                    continue
                m = re.fullmatch(r"<< \$(\w+) >>", str(users[user].get("password", "")))
                if not self.check(m is not None, "nats-values.yaml: user %s: password is not "
                                  "<< $VAR >>" % user):
                    continue
                ref = env.get(m.group(1), {}).get("valueFrom", {}).get("secretKeyRef", {})
                given = [src["secretRef"]["name"] for src in c.get("envFrom", [])
                         if "secretRef" in src and "YARD_NATS_USER" in
                         (self.named("Secret", src["secretRef"]["name"]) or {})
                         .get("stringData", {})]
                self.check(ref.get("key") == "YARD_NATS_PASSWORD" and ref.get("name") in given,
                           "nats-values.yaml: user %s's password comes from %s, not from "
                           "YARD_NATS_PASSWORD of the Secret %s gets (%s)" % (user, ref, where, given))
        gw = users.get("gateway", {}).get("permissions", {})
        deny = gw.get("publish", {}).get("deny", [])
        self.check("$JS.API.CONSUMER.MSG.NEXT.>" in deny and "$JS.ACK.>" in deny and
                   gw.get("subscribe", {}).get("allow") == ["_INBOX.>"],
                   "nats-values.yaml: the gateway's user may consume: %s" % gw)

    # ---- PostgreSQL settings -------------------------------------------------
    def check_postgres_settings(self):
        # Next to this script's folder: the manifests checked may be a copy.
        here = os.path.dirname(os.path.abspath(__file__))
        shipped = os.path.join(here, "..", "postgres", "yard.conf")
        cm = self.named("ConfigMap", "yard-postgres-settings")
        try:
            with open(shipped) as fh:
                want = fh.read()
        except OSError as e:
            self.check(False, "cannot read %s: %s" % (shipped, e))
            return
        got = (cm or {}).get("data", {}).get("yard.conf")
        self.check(got == want, "postgres-settings.yaml: yard.conf differs from "
                   "ops/postgres/yard.conf (what make up and make bench use)")

    def run(self):
        self.load()
        self.check_lint()
        self.check_kustomization()
        self.check_dockerfile()
        self.check_static()
        self.check_migrate_job()
        self.check_deployments_run()
        self.check_keda()
        self.check_selectors()
        self.check_helm_values()
        self.check_postgres_settings()
        for n in self.notes:
            print("note: " + n)
        for f in self.failures:
            print("FAIL: " + f)
        print("%d checks, %d failed" % (self.checks, len(self.failures)))
        return 1 if self.failures else 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=here, help="the manifests (default: this folder)")
    p.add_argument("--dockerfile", default=os.path.join(here, "..", "Dockerfile"))
    p.add_argument("--bin", required=True, help="the built programs")
    p.add_argument("--nats-url", required=True)
    p.add_argument("--nats-monitor", type=int, required=True, help="nats-server's monitoring port")
    p.add_argument("--pg-dsn", required=True)
    p.add_argument("--work", default=".", help="where the programs' logs and pid files go")
    args = p.parse_args()
    if not shutil.which("yamllint"):
        print("FAIL: yamllint is not installed (make deps)")
        return 1
    return Checker(args).run()


if __name__ == "__main__":
    sys.exit(main())
