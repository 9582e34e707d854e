"""Fixtures for the dashboard's browser tests.

run.sh starts marquee (MARQUEE_TEST_URL, MARQUEE_TEST_ADMIN_TOKEN); these
fixtures make an organization and key through the admin API, run a local
webhook receiver whose answer the test controls, and open pages in
Debian's Chromium through Playwright (no downloaded browser).
"""

import http.server
import json
import os
import threading
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import sync_playwright

BASE = os.environ["MARQUEE_TEST_URL"]
ADMIN = os.environ["MARQUEE_TEST_ADMIN_TOKEN"]
ARTIFACTS = os.environ.get("MARQUEE_BROWSER_ARTIFACTS", "/tmp/marquee-browser-artifacts")
CHROMIUM = os.environ.get("MARQUEE_CHROMIUM", "/usr/bin/chromium")


def call(method, path, body=None, key=None, admin=False):
    """One JSON request; answers (status, parsed body)."""
    headers = {"content-type": "application/json"}
    if admin:
        headers["authorization"] = "Bearer " + ADMIN
    elif key:
        headers["x-api-key"] = key
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


@pytest.fixture(scope="session")
def org():
    """A fresh organization with the revolution profile (so its catalog has types) and a pro key."""
    st, o = call("POST", "/admin/v1/orgs", {"name": "Browser test " + uuid.uuid4().hex[:6], "profiles": ["revolution"]}, admin=True)
    assert st == 201, o
    st, k = call("POST", f"/admin/v1/orgs/{o['id']}/keys", {"tier": "pro", "name": "browser"}, admin=True)
    assert st == 201, k
    return {"id": o["id"], "name": o["name"], "key": k["key"]}


class Receiver:
    """A webhook receiver on 127.0.0.1 answering `status` with `body`."""

    def __init__(self):
        self.status = 500
        self.body = b'{"error":"receiver says no"}'
        self.received = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                outer.received.append((dict(self.headers), self.rfile.read(n)))
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, request):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.console_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    yield pg
    shot(pg, request.node.name + "-end")
    ctx.close()


def shot(pg, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    pg.screenshot(path=os.path.join(ARTIFACTS, name + ".png"), full_page=True)


def sign_in(pg, credential):
    pg.goto(BASE + "/dashboard")
    pg.get_by_label("API key or admin token").fill(credential)
    # Keyboard: Enter submits the form.
    pg.get_by_label("API key or admin token").press("Enter")
