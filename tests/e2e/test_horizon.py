"""OpenStack's dashboard (Horizon, with the octavia-dashboard plugin, both from PyPI) signs in to
the built-in Keystone and drives the load-balancer API through it.

Horizon runs from its own virtualenv (`.venv-horizon`, made by scripts/test: Horizon pins its own
Django and clients) under Django's development server on a free loopback port, configured by a
`local/local_settings.py` of ours put on its PYTHONPATH. The test then does what a browser does at
the HTTP level: the login form (CSRF token and cookie, the password posted with the region and
domain fields Horizon renders), the project overview, and octavia-dashboard's REST API, which
creates and lists load balancers with openstacksdk inside Horizon — re-authenticating with the
session's token on every call.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT, free_port, start_statera

HORIZON_PYTHON = Path(os.environ.get("STATERA_HORIZON_PYTHON", REPO_ROOT / ".venv-horizon" / "bin" / "python"))
START_TIMEOUT = 90.0


class _Forms(HTMLParser):
    """The inputs of every form on a page: [(action, {name: value})]."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._in_select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append((a.get("action") or "", {}))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1][1].setdefault(a["name"], a.get("value") or "")
        elif self.forms and tag == "select" and a.get("name"):
            self._in_select = a["name"]
        elif self.forms and tag == "option" and self._in_select:
            self.forms[-1][1].setdefault(self._in_select, a.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._in_select = None


class Browser:
    """Cookies, redirects and CSRF as a browser keeps them."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, resp.geturl(), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.geturl(), e.read().decode(errors="replace")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def api(self, method: str, path: str, body=None):
        """octavia-dashboard's REST API, called as Horizon's Angular pages call it."""
        headers = {
            "Accept": "application/json",
            "X-Requested-With": "XMLHttpRequest",
            "X-CSRFToken": self.cookie("csrftoken") or "",
            "Referer": self.base + "/project/load_balancer/",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, _, text = self.request(method, path, data, headers)
        return status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)


def _local_settings(keystone_url: str) -> str:
    return f"""
DEBUG = False
ALLOWED_HOSTS = ["*"]
SECRET_KEY = "statera-e2e-{os.getpid()}-not-secret"
OPENSTACK_KEYSTONE_URL = "{keystone_url}"
OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = "Default"
OPENSTACK_KEYSTONE_DEFAULT_ROLE = "member"
COMPRESS_OFFLINE = False
COMPRESS_ENABLED = False
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CACHES = {{"default": {{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}}}
LOGGING = {{"version": 1, "disable_existing_loggers": False,
           "handlers": {{"console": {{"class": "logging.StreamHandler"}}}},
           "root": {{"handlers": ["console"], "level": "WARNING"}}}}
"""


@pytest.fixture(scope="module")
def horizon_python() -> Path:
    if not HORIZON_PYTHON.exists():
        pytest.skip(f"no Horizon virtualenv at {HORIZON_PYTHON}: scripts/test creates it (.venv-horizon)")
    probe = subprocess.run(
        [str(HORIZON_PYTHON), "-c", "import openstack_dashboard, octavia_dashboard"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"Horizon or octavia-dashboard not importable: {probe.stderr.strip()[-300:]}")
    return HORIZON_PYTHON


def test_horizon_signs_in_and_drives_load_balancers(horizon_python):
    with start_statera(auth_args=["--auth", "builtin"]) as server:
        clouds = yaml.safe_load((server.data_dir / "data" / "clouds.yaml").read_text())
        auth = clouds["clouds"]["statera"]["auth"]
        keystone_url = server.endpoint + "/v3"

        work = Path(tempfile.mkdtemp(prefix="statera-horizon-"))
        (work / "local").mkdir()
        (work / "local" / "__init__.py").write_text("")
        (work / "local" / "local_settings.py").write_text(_local_settings(keystone_url))
        port = free_port()
        log = open(work / "horizon.log", "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            PYTHONPATH=str(work),
            DJANGO_SETTINGS_MODULE="openstack_dashboard.settings",
            PYTHONDONTWRITEBYTECODE="1",
        )
        proc = subprocess.Popen(
            [str(horizon_python), "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=work,
            env=env,
        )
        try:
            browser = Browser(f"http://127.0.0.1:{port}")
            deadline = time.monotonic() + START_TIMEOUT
            status = None
            while time.monotonic() < deadline:
                assert proc.poll() is None, "Horizon exited:\n" + (work / "horizon.log").read_text()[-3000:]
                try:
                    status, _, page = browser.request("GET", "/auth/login/")
                    if status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            assert status == 200, "Horizon's login page never answered:\n" + (work / "horizon.log").read_text()[-3000:]

            # The login form, as rendered, with our credentials.
            parser = _Forms()
            parser.feed(page)
            form = next(f for a, f in parser.forms if "username" in f)
            form.update(username=auth["username"], password=auth["password"])
            if "domain" in form:
                form["domain"] = "Default"
            status, url, page = browser.request(
                "POST",
                "/auth/login/",
                urllib.parse.urlencode(form).encode(),
                {"Content-Type": "application/x-www-form-urlencoded", "Referer": browser.base + "/auth/login/"},
            )
            assert status in (200, 403) and "/auth/login" not in urllib.parse.urlsplit(url).path, (
                f"login did not go through (ended at {url}):\n"
                + re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))[:1500]
                + "\n--- horizon log ---\n"
                + (work / "horizon.log").read_text()[-3000:]
            )
            # Signed in (the landing page, the compute overview, is refused: this cloud has no
            # compute service): the load-balancer panel renders, with the admin project chosen.
            status, url, page = browser.request("GET", "/project/load_balancer/")
            assert status == 200 and "/auth/login" not in url, f"{status} at {url}"
            assert "Load Balancers" in page and "admin" in page

            # octavia-dashboard creates a load balancer through Statera's API…
            status, subnets = browser.api("GET", "/api/neutron/subnets/")
            assert status == 200, subnets
            subnet = next(s for s in subnets["items"] if s["name"] == "host-subnet")
            status, created = browser.api(
                "POST",
                "/api/lbaas/loadbalancers/",
                {"loadbalancer": {"name": "from-horizon", "vip_subnet_id": subnet["id"]}},
            )
            assert status in (200, 201), created
            lb_id = created["id"]
            deadline = time.monotonic() + 30
            while True:
                status, shown = browser.api("GET", f"/api/lbaas/loadbalancers/{lb_id}/")
                assert status == 200, shown
                lb = shown.get("loadbalancer", shown)
                if lb["provisioning_status"] == "ACTIVE":
                    break
                assert time.monotonic() < deadline, f"not ACTIVE in 30 s: {lb}"
                time.sleep(0.3)
            # …and lists it.
            status, listed = browser.api("GET", "/api/lbaas/loadbalancers/")
            assert status == 200, listed
            assert [lb["name"] for lb in listed["items"] if lb["id"] == lb_id] == ["from-horizon"]
            status, _ = browser.api("DELETE", f"/api/lbaas/loadbalancers/{lb_id}/")
            assert status in (200, 204)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            shutil.rmtree(work, ignore_errors=True)
