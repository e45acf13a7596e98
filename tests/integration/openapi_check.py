#!/usr/bin/python3
"""openapi_check.py - checks the gateway's real answers against schemas/openapi.yaml.

Run by tests/integration/test_openapi.c, which starts NATS, PostgreSQL, the
gateway (auth on) and an execute worker and passes the keys. This script
makes jobs through the API, waits for them to finish, then sends one request
per case below and checks: the status is one the document lists for that
route and method, and the body matches that response's schema (a small
checker for the part of OpenAPI 3.0 schemas the document uses: type,
nullable, properties, required, additionalProperties, items, enum, oneOf,
allOf, $ref, minimum, maximum, maxItems, minItems, pattern, format uuid and
date-time). Every route and method in the document must be exercised by a
case, so a new route cannot go undocumented or unchecked.

NOT_IN_TREE lists the routes other parts of Switchyard add (DLQ, workflows,
schedules): while one answers 404 its cases are skipped with a printed
reason; once it answers, its answers are checked like any other. Shrink the
list as those routes land.

Prints "ok - ..." / "SKIP - ..." lines; exits 0 when all pass, 1 otherwise.
"""
import argparse
import datetime
import json
import re
import sys
import time
import urllib.error
import urllib.request

import yaml

NOT_IN_TREE = set()

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class SchemaError(Exception):
    pass


class Checker:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise SchemaError("unsupported $ref " + ref)
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
        return node

    def check(self, schema, value, where="$"):
        schema = self.resolve(schema)
        if value is None:
            if schema.get("nullable") or not schema.get("type") and not any(
                    k in schema for k in ("properties", "oneOf", "allOf", "enum")):
                return
            raise SchemaError("%s: null where the schema does not allow it" % where)
        for sub in schema.get("allOf", []):
            self.check(sub, value, where)
        if "oneOf" in schema:
            fits = 0
            for sub in schema["oneOf"]:
                try:
                    self.check(sub, value, where)
                    fits += 1
                except SchemaError:
                    pass
            if fits != 1:
                raise SchemaError("%s: matches %d of the oneOf schemas, not exactly 1" % (where, fits))
        t = schema.get("type")
        kinds = {"object": dict, "array": list, "string": str, "boolean": bool}
        if t in kinds and not isinstance(value, kinds[t]):
            raise SchemaError("%s: expected %s, got %s" % (where, t, type(value).__name__))
        if t == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
            raise SchemaError("%s: expected integer, got %r" % (where, value))
        if t == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise SchemaError("%s: expected number, got %r" % (where, value))
        if "enum" in schema and value not in schema["enum"]:
            raise SchemaError("%s: %r is not one of %s" % (where, value, schema["enum"]))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                raise SchemaError("%s: %r is below %r" % (where, value, schema["minimum"]))
            if "maximum" in schema and value > schema["maximum"]:
                raise SchemaError("%s: %r is above %r" % (where, value, schema["maximum"]))
        if isinstance(value, str):
            if "pattern" in schema and not re.search(schema["pattern"], value):
                raise SchemaError("%s: %r does not match %s" % (where, value, schema["pattern"]))
            fmt = schema.get("format")
            if fmt == "uuid" and not UUID.match(value):
                raise SchemaError("%s: %r is not a uuid" % (where, value))
            if fmt == "date-time":
                try:
                    datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise SchemaError("%s: %r is not a date-time" % (where, value))
                if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", value):
                    raise SchemaError("%s: %r is not RFC 3339" % (where, value))
        if isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                raise SchemaError("%s: more than %d items" % (where, schema["maxItems"]))
            if "minItems" in schema and len(value) < schema["minItems"]:
                raise SchemaError("%s: fewer than %d items" % (where, schema["minItems"]))
            for i, item in enumerate(value):
                if "items" in schema:
                    self.check(schema["items"], item, "%s[%d]" % (where, i))
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    raise SchemaError("%s: required field %s is missing" % (where, name))
            extra = schema.get("additionalProperties", True)
            for name, v in value.items():
                if name in props:
                    self.check(props[name], v, where + "." + name)
                elif extra is False:
                    raise SchemaError("%s: field %s is not in the document" % (where, name))
                elif isinstance(extra, dict):
                    self.check(extra, v, where + "." + name)


def request(base, method, path, key, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def template_of(spec, path):
    """The document's path template that path (without query) matches;
    a literal template wins over one with {name} segments."""
    bare = path.split("?")[0]
    if bare in spec["paths"]:
        return bare
    for tmpl in spec["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(tmpl)) + "$"
        if "{" in tmpl and re.match(rx, bare):
            return tmpl
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--user-key", required=True)
    ap.add_argument("--reader-key", required=True)
    args = ap.parse_args()
    base = args.url.rstrip("/")
    with open(args.spec) as f:
        spec = yaml.safe_load(f)
    checker = Checker(spec)
    admin, user, reader = args.admin_key, args.user_key, args.reader_key

    # Jobs to read: one that succeeds, one that dies after 2 attempts.
    _, _, raw = request(base, "POST", "/v1/jobs", user, {"type": "echo", "payload": {"hello": "world"}})
    ok_id = json.loads(raw)["id"]
    _, _, raw = request(base, "POST", "/v1/jobs", user, {"type": "fail", "max_attempts": 2,
                                                          "payload": {"retryable": True, "message": "boom"}})
    dead_id = json.loads(raw)["id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        got = [json.loads(request(base, "GET", "/v1/jobs/" + i, user)[2]).get("status") for i in (ok_id, dead_id)]
        if got == ["succeeded", "dead"]:
            break
        time.sleep(0.2)
    else:
        print("FAIL - jobs did not finish in 60 s: %s" % got)
        return 1
    _, _, raw = request(base, "GET", "/v1/jobs?limit=1", user)
    cursor = json.loads(raw)["next_cursor"]
    unknown = "00000000-0000-7000-8000-000000000000"

    cases = [
        ("POST", "/v1/jobs", user, {"type": "noop", "queue": "default", "priority": "high"}),
        ("POST", "/v1/jobs", user, {"type": "noop", "run_at": "2999-01-01T00:00:00Z"}),
        ("POST", "/v1/jobs", user, {"type": "Not A Name"}),
        ("POST", "/v1/jobs", reader, {"type": "noop"}),
        ("POST", "/v1/jobs", None, {"type": "noop"}),
        ("POST", "/v1/jobs/batch", user, {"jobs": [{"type": "noop"}, {"type": "BAD"}]}),
        ("GET", "/v1/jobs", user, None),
        ("GET", "/v1/jobs?status=dead&limit=5", user, None),
        ("GET", "/v1/jobs?limit=1&cursor=" + (cursor or ""), user, None),
        ("GET", "/v1/jobs?error=boom&since=2020-01-01T00:00:00Z", admin, None),
        ("GET", "/v1/jobs?status=nope", user, None),
        ("GET", "/v1/jobs/" + ok_id, user, None),
        ("GET", "/v1/jobs/" + dead_id, admin, None),
        ("GET", "/v1/jobs/" + unknown, user, None),
        ("GET", "/v1/jobs/not-a-uuid", user, None),
        ("DELETE", "/v1/jobs/" + dead_id, user, None),
        ("DELETE", "/v1/jobs/" + ok_id, reader, None),
        ("GET", "/v1/jobs/" + dead_id + "/attempts", user, None),
        ("GET", "/v1/jobs/" + unknown + "/attempts", user, None),
        ("GET", "/v1/whoami", reader, None),
        ("GET", "/v1/whoami", None, None),
        ("GET", "/v1/queues", reader, None),
        ("GET", "/healthz", None, None),
        ("GET", "/readyz", None, None),
        ("GET", "/metrics", None, None),
        ("GET", "/ui/", None, None),
        ("GET", "/ui/app.js", None, None),
        ("GET", "/ui/no-such-file.js", None, None),
        ("GET", "/v1/dlq?limit=10", admin, None),
        ("GET", "/v1/dlq", user, None),
        ("POST", "/v1/dlq/replay", admin, {"all": True, "dry_run": True}),
        ("POST", "/v1/dlq/replay", reader, {"all": True, "dry_run": True}),
        ("POST", "/v1/workflows", user, {"name": "pair", "steps": [
            {"id": "a", "type": "noop"}, {"id": "b", "type": "echo", "depends_on": ["a"]}]}),
        ("GET", "/v1/workflows?limit=10", user, None),
        ("GET", "/v1/workflows/{created}", user, None),
        ("DELETE", "/v1/workflows/{created}", user, None),
        ("POST", "/v1/schedules", user, {"name": "nightly", "cron": "0 3 * * *", "timezone": "UTC",
                                          "job": {"type": "noop"}}),
        ("GET", "/v1/schedules", user, None),
        ("GET", "/v1/schedules/nightly", user, None),
        ("POST", "/v1/schedules/nightly/pause", user, None),
        ("POST", "/v1/schedules/nightly/resume", user, None),
        ("DELETE", "/v1/schedules/nightly", user, None),
    ]
    failures = 0
    exercised = set()
    created = unknown
    for method, path, key, body in cases:
        path = path.replace("{created}", created)
        tmpl = template_of(spec, path)
        what = "%s %s" % (method, path[:70])
        op = spec["paths"].get(tmpl, {}).get(method.lower()) if tmpl else None
        if op is None:
            print("FAIL - %s: the document has no such route" % what)
            failures += 1
            continue
        exercised.add((method, tmpl))
        status, ctype, raw = request(base, method, path, key, body)
        if (method, tmpl) in NOT_IN_TREE and status in (404, 405):
            print("SKIP - %s: answers %d in this tree (listed in NOT_IN_TREE)" % (what, status))
            continue
        resp = op["responses"].get(str(status)) or op["responses"].get("default")
        if resp is None:
            print("FAIL - %s: status %d is not documented (documented: %s)" % (what, status, list(op["responses"])))
            failures += 1
            continue
        resp = checker.resolve(resp)
        content = resp.get("content", {})
        try:
            if "application/json" in content:
                if not ctype.startswith("application/json"):
                    raise SchemaError("Content-Type %r, expected application/json" % ctype)
                value = json.loads(raw)
                checker.check(content["application/json"].get("schema", {}), value)
                if method == "POST" and tmpl == "/v1/workflows" and status == 202:
                    created = value["id"]
            elif content:
                want = next(iter(content))
                if not ctype.startswith(want):
                    raise SchemaError("Content-Type %r, expected %s" % (ctype, want))
            print("ok - %s -> %d matches the document" % (what, status))
        except (SchemaError, ValueError) as e:
            print("FAIL - %s -> %d: %s; body: %.300s" % (what, status, e, raw[:300]))
            failures += 1
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m in
                  ("get", "post", "put", "delete", "patch")}
    missing = documented - exercised
    if missing:
        print("FAIL - routes in the document no case exercises: %s" % sorted(missing))
        failures += 1
    else:
        print("ok - every documented route (%d) was exercised" % len(documented))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
