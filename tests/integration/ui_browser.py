#!/usr/bin/python3
"""ui_browser.py - drives the web console in a real headless Chromium.

Run by tests/integration/test_ui_browser.c, which starts NATS, PostgreSQL,
the gateway (auth on) and the workers, makes the jobs and keys, and passes
them here. Needs Debian's chromium, chromium-driver and python3-selenium
(ops/install-deps.sh). Every name resolution except 127.0.0.1 fails inside
the browser (--host-resolver-rules), and the page's network log is checked:
no request may leave for anything but the gateway.

With YARD_UI_SCREENSHOTS=DIR set, saves a PNG of each page it checks there.

Prints one line per check ("ok - ..." / "SKIP - ...") and exits 0 when all
pass; on a failure prints why and exits 1.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 20

class Failure(Exception):
    pass


SHOTS = os.environ.get("YARD_UI_SCREENSHOTS")
DRIVER = []


def check(cond, what):
    if not cond:
        raise Failure(what)
    print("ok - " + what, flush=True)
    if SHOTS and DRIVER:
        n = len(os.listdir(SHOTS))
        DRIVER[0].save_screenshot(os.path.join(SHOTS, "%02d.png" % n))


def http(base, method, path, key, body=None):
    """One API request outside the browser: (status, parsed body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + key)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None


def start_browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile, "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-extensions", "--window-size=1400,1000",
                # Nothing but the gateway on 127.0.0.1 can be reached.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


def wait(driver, cond, what):
    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(cond)
    except TimeoutException:
        raise Failure("timed out after %d s waiting for %s" % (WAIT_S, what))


def visible_text(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def sign_in(driver, base, key):
    driver.get(base + "/ui/")
    wait(driver, ec.presence_of_element_located((By.ID, "api-key")), "the sign-in form")
    box = driver.find_element(By.ID, "api-key")
    box.clear()
    box.send_keys(key)
    driver.find_element(By.ID, "signin-button").click()


def sign_out(driver):
    driver.execute_script("sessionStorage.clear();")
    driver.get("about:blank")


def requested_urls(driver):
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--user-key", required=True, help="submit,read: owns the jobs")
    ap.add_argument("--reader-key", required=True, help="read only")
    ap.add_argument("--quota-job", required=True, help="a dead job whose error says quota")
    ap.add_argument("--xss-job", required=True, help="a dead job whose error is HTML")
    ap.add_argument("--reader-job", required=True, help="a queued job of the reader key")
    ap.add_argument("--flaky-job", required=True, help="a dead job that succeeds once the switch exists")
    ap.add_argument("--flaky-switch", required=True, help="the file that makes the flaky job succeed")
    args = ap.parse_args()
    base = args.url.rstrip("/")

    profile = tempfile.mkdtemp(prefix="yard-chromium-")
    driver = start_browser(profile)
    DRIVER.append(driver)
    try:
        run(driver, base, args)
    finally:
        driver.quit()


def run(driver, base, args):
    # The page itself: security headers.
    with urllib.request.urlopen(base + "/ui/", timeout=10) as res:
        csp = res.headers.get("Content-Security-Policy", "")
        check("script-src 'self'" in csp and "unsafe-inline" not in csp
              and "default-src 'none'" in csp, "/ui/ carries a strict CSP (%s)" % csp[:60])

    # Sign in: a wrong key is refused, the right one shows the queues.
    sign_in(driver, base, "yk_not_a_real_key")
    wait(driver, lambda d: "not valid" in visible_text(d, "#signin-error"), "the wrong-key message")
    check(True, "a wrong API key is refused on the sign-in page")
    sign_in(driver, base, args.user_key)
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#queues-body tr[data-queue='default']")),
         "the queues table")
    check("user" in visible_text(driver, "#who"), "signed in: the header names the key")

    # Find a failed job by its error text, through the filter form.
    driver.get(base + "/ui/#/jobs")
    wait(driver, ec.presence_of_element_located((By.ID, "filter-error")), "the job filters")
    driver.find_element(By.ID, "filter-error").send_keys("QUOTA exceeded")
    driver.find_element(By.ID, "filter-apply").click()
    wait(driver, lambda d: "error=QUOTA" in d.current_url, "the filter in the URL")
    rows = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job]"), "job rows")
    ids = [r.get_attribute("data-job") for r in rows]
    check(ids == [args.quota_job], "the error filter finds exactly the quota job (%s)" % ids)
    shared = driver.current_url

    # The link can be shared: a fresh load of it shows the same job.
    driver.get("about:blank")
    driver.get(shared)
    rows = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job]"), "job rows")
    check([r.get_attribute("data-job") for r in rows] == [args.quota_job],
          "the shared link shows the same filtered list")

    # Open it: its attempts with error and duration, and its trace id.
    driver.find_element(By.CSS_SELECTOR, "#jobs-body a.job-link").click()
    attempts = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#attempts-body tr[data-attempt]"),
                    "the attempts table")
    text = attempts[0].text
    check(len(attempts) == 2 and "quota exceeded" in text and " ms" in text,
          "the job's page lists its 2 attempts with error and duration")
    trace = visible_text(driver, "dd[data-field='trace-id']")
    check(len(trace) == 32, "the job's page shows its trace id (%s)" % trace)

    # The XSS payload is text: no element made from it, no script ran.
    driver.get(base + "/ui/#/job/" + args.xss_job)
    wait(driver, lambda d: "<img" in d.find_element(By.ID, "job-fields").text, "the HTML error as text")
    attempt_text = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#attempts-body td.error"), "attempts")
    check("<script>" in attempt_text[0].text, "the attempt's error shows <script> as text")
    check(driver.find_elements(By.CSS_SELECTOR, "main img, main script") == [],
          "no img or script element came from the error")
    driver.get(base + "/ui/#/jobs?error=onerror")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#jobs-body tr[data-job]"), "the XSS job in the list")
    time.sleep(0.5)
    check(driver.execute_script("return window.__xss === undefined && document.title.indexOf('pwned') < 0"),
          "the payload's handlers never ran (window.__xss unset)")

    # Cancel is offered to a submit key on an unfinished job only (dead: none).
    driver.get(base + "/ui/#/job/" + args.quota_job)
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "#attempts-body tr")), "the job page")
    check(driver.find_elements(By.ID, "cancel-job") == [] and driver.find_elements(By.ID, "retry-job") == [],
          "a dead job offers no cancel, and no retry to a non-admin key")

    # A read-only key: no cancel button on its own queued job; the API says 403.
    sign_out(driver)
    sign_in(driver, base, args.reader_key)
    wait(driver, ec.presence_of_element_located((By.ID, "queues-body")), "the queues page")
    driver.get(base + "/ui/#/job/" + args.reader_job)
    wait(driver, lambda d: "queued" in d.find_element(By.ID, "job-fields").text, "the reader's queued job")
    check(driver.find_elements(By.ID, "cancel-job") == [], "a read-only key sees no cancel button")
    st, _ = http(base, "DELETE", "/v1/jobs/" + args.reader_job, args.reader_key)
    check(st == 403, "the API refuses a read-only key's cancel (403, got %d)" % st)
    driver.get(base + "/ui/#/dlq")
    wait(driver, ec.presence_of_element_located((By.ID, "dlq-body")), "the dead letters")
    check(driver.find_elements(By.ID, "dlq-replay") == [] and driver.find_elements(By.CSS_SELECTOR, ".dlq-select") == [],
          "a read-only key sees no replay button")
    st, _ = http(base, "POST", "/v1/dlq/replay", args.reader_key, {"all": True, "dry_run": True})
    check(st == 403, "the API refuses a read-only key's replay (403, got %d)" % st)

    # Admin: select the flaky job's dead letter, confirm, watch it succeed.
    sign_out(driver)
    sign_in(driver, base, args.admin_key)
    wait(driver, ec.presence_of_element_located((By.ID, "queues-body")), "the queues page")
    driver.get(base + "/ui/#/dlq?error=switch")
    box = wait(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#dlq-body tr[data-job='%s'] input.dlq-select" % args.flaky_job),
        "the flaky job's dead letter")
    box[0].click()
    driver.find_element(By.ID, "dlq-replay").click()
    confirm = wait(driver, ec.presence_of_element_located((By.ID, "dlq-confirm")), "the confirmation")
    check("Replay 1 dead letter?" in confirm.text, "the confirmation says how many (%s)" % confirm.text[:40])
    open(args.flaky_switch, "w").close()  # from now on the job succeeds
    driver.find_element(By.ID, "dlq-confirm-yes").click()
    wait(driver, lambda d: "Replayed 1 of 1" in d.find_element(By.ID, "dlq-note").text, "the replay result")
    check(True, "the replay is confirmed")
    driver.get(base + "/ui/#/job/" + args.flaky_job)
    wait(driver, lambda d: "succeeded" in d.find_element(By.ID, "job-fields").text,
         "the replayed job to succeed (the page polls)")
    check(True, "the replayed job succeeded, seen without reloading")

    # Workflows and schedules, against the real routes.
    for page in ("workflows", "schedules"):
        real_page(driver, base, args, page)

    # Nothing left for another host.
    urls = requested_urls(driver)
    # chrome:// pages (the first blank tab) are the browser's own, not network.
    network = [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp")]
    foreign = [u for u in network if not u.startswith(base + "/")]
    check(network and not foreign,
          "every request went to the gateway (%d requests, foreign: %s)" % (len(network), foreign[:3]))
    blocked = driver.execute_async_script(
        "const done = arguments[0];"
        "fetch('http://example.com/').then(() => done('reached'), () => done('blocked'));")
    check(blocked == "blocked", "the page cannot reach another host")


def real_page(driver, base, args, page):
    """The workflows and schedules pages against the real routes: a diamond
    whose one branch dies (its child is skipped) drawn as a layered graph with
    each step's state, and a schedule with its cron and next fire time."""
    if page == "workflows":
        body = {"name": "<i>diamond</i>", "steps": [
            {"id": "a", "type": "noop"},
            {"id": "b", "type": "noop", "depends_on": ["a"]},
            {"id": "c", "type": "fail", "max_attempts": 1, "payload": {"retryable": False, "message": "<b>virus</b>"},
             "depends_on": ["a"]},
            {"id": "d", "type": "noop", "depends_on": ["b", "c"]}]}
        st, doc = http(base, "POST", "/v1/workflows", args.admin_key, body)
        check(st == 202 and doc and doc.get("id"), "a real workflow is accepted (%s)" % st)
        driver.get(base + "/ui/#/workflows")
        link = wait(driver, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#workflows-body a")
                                       if a.text == doc["id"]], "the workflow in the list")
        row = link[0].find_element(By.XPATH, "./ancestor::tr").text
        check("<i>diamond</i>" in row, "workflows list: the name shows as text")
        link[0].click()
        want = {"a": "succeeded", "b": "succeeded", "c": "dead", "d": "skipped"}

        def settled(d):
            nodes = d.find_elements(By.CSS_SELECTOR, "#workflow-graph g[data-step]")
            got = {n.get_attribute("data-step"): n.get_attribute("data-status") for n in nodes}
            return nodes if got == want else False
        nodes = wait(driver, settled, "the steps to reach %s (the page polls)" % want)
        pos = {n.get_attribute("data-step"): float(n.find_element(By.TAG_NAME, "rect").get_attribute("x"))
               for n in nodes}
        lines = driver.find_elements(By.CSS_SELECTOR, "#workflow-graph line")
        check(len(lines) == 4 and pos["a"] < pos["b"] == pos["c"] < pos["d"],
              "a real workflow is drawn as a layered graph with each step's state (%s)" % pos)
        check("<b>virus</b>" in driver.find_element(By.ID, "steps-body").text,
              "a real step's error shows as text")
    else:
        body = {"name": "ui-nightly", "cron": "0 3 * * *", "timezone": "UTC", "job": {"type": "noop"}}
        st, doc = http(base, "POST", "/v1/schedules", args.admin_key, body)
        check(st in (200, 201) and doc and doc.get("next_fire_at"), "a real schedule is created (%s)" % st)
        day = doc["next_fire_at"][:10]
        driver.get(base + "/ui/#/schedules")
        row = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#schedules-body tr[data-schedule='ui-nightly']"),
                   "the schedule")
        check(day + " 03:00:00Z" in row[0].text and "0 3 * * *" in row[0].text,
              "a real schedule shows its cron and next fire time (%s)" % row[0].text)
    driver.get("about:blank")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL - " + str(e), flush=True)
        sys.exit(1)
