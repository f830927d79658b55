"""OpenStack's dashboard (Horizon, with the octavia-dashboard plugin, both from PyPI) signs in to
the built-in Keystone and drives the load-balancer API through it, at the HTTP level and in a real
headless Chromium.

Horizon runs from its own virtualenv (`.venv-horizon`, made by scripts/test: Horizon pins its own
Django and clients) under Django's development server on a free loopback port, configured by a
`local/local_settings.py` of ours put on its PYTHONPATH. One Statera (`--auth builtin`) and one
Horizon serve both tests of this module.

- At the HTTP level the test does what a browser does: the login form (CSRF token and cookie,
  the password posted with the region and domain fields Horizon renders), the project overview,
  and octavia-dashboard's REST API, which creates and lists load balancers with openstacksdk
  inside Horizon — re-authenticating with the session's token on every call.
- In Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium, headless) a user
  types the admin's name and password into the login page and submits it; the load-balancer
  panel then shows a load balancer created beforehand with the openstack CLI. The panel is an
  Angular page: the name appears only once its JavaScript has run, called
  /api/lbaas/loadbalancers/ with the browser's session, and Statera has answered Horizon.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import LOG_KEEP_DIR, REPO_ROOT, OpenStackCli, StateraServer, free_port, start_statera

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # a skip (a failure under CI=true), decided by the test that needs it
    webdriver = None
    SELENIUM_IMPORT_ERROR = repr(e)

HORIZON_PYTHON = Path(os.environ.get("STATERA_HORIZON_PYTHON", REPO_ROOT / ".venv-horizon" / "bin" / "python"))
START_TIMEOUT = 90.0
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium
CHROMEDRIVER = Path("/usr/bin/chromedriver")  # Debian's chromium-driver, of the same build
# Seconds for each page load (Horizon's development server answers each of a page's many static
# files separately, as compression is off) and for each thing the browser must show.
BROWSER_WAIT = 30.0


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


@dataclass
class Horizon:
    base: str  # e.g. http://127.0.0.1:40124
    log_path: Path
    server: StateraServer  # the Statera it signs in to
    clouds_yaml: Path  # Statera's clouds.yaml (cloud `statera`, the admin)
    auth: dict  # that cloud's auth: username, password, project_name, ...

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as e:
            return f"(no Horizon log: {e})"


@contextlib.contextmanager
def run_horizon(python: Path, keystone_url: str):
    """Horizon under Django's development server on a free loopback port, signing in to
    `keystone_url`; yields (base URL, log path) once /auth/login/ answers 200; on exit stops it
    (SIGTERM, then SIGKILL after 15 s), keeps its log in target/e2e-logs/ and removes its
    directory."""
    work = Path(tempfile.mkdtemp(prefix="statera-horizon-"))
    port = free_port()
    log_path = work / "horizon.log"
    log = open(log_path, "wb")
    proc = None
    try:
        (work / "local").mkdir()
        (work / "local" / "__init__.py").write_text("")
        (work / "local" / "local_settings.py").write_text(_local_settings(keystone_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(
            PYTHONPATH=str(work),
            DJANGO_SETTINGS_MODULE="openstack_dashboard.settings",
            PYTHONDONTWRITEBYTECODE="1",
        )
        proc = subprocess.Popen(
            [str(python), "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=work,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        browser = Browser(base)
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, "Horizon exited:\n" + log_path.read_text()[-3000:]
            try:
                status, _, _ = browser.request("GET", "/auth/login/")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200, "Horizon's login page never answered:\n" + log_path.read_text()[-3000:]
        yield base, log_path
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        with contextlib.suppress(OSError):
            LOG_KEEP_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, LOG_KEEP_DIR / f"horizon-{os.getpid()}-{port}.log")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def horizon(horizon_python) -> Horizon:
    """One Statera with the built-in Keystone and one Horizon signing in to it, for the module."""
    with start_statera(auth_args=["--auth", "builtin"]) as server:
        clouds_yaml = server.data_dir / "data" / "clouds.yaml"
        auth = yaml.safe_load(clouds_yaml.read_text())["clouds"]["statera"]["auth"]
        with run_horizon(horizon_python, server.endpoint + "/v3") as (base, log_path):
            yield Horizon(base=base, log_path=log_path, server=server, clouds_yaml=clouds_yaml, auth=auth)


def test_horizon_signs_in_and_drives_load_balancers(horizon):
    browser = Browser(horizon.base)
    status, _, page = browser.request("GET", "/auth/login/")
    assert status == 200, f"{status} for /auth/login/:\n" + horizon.log_tail()

    # The login form, as rendered, with our credentials.
    parser = _Forms()
    parser.feed(page)
    form = next(f for a, f in parser.forms if "username" in f)
    form.update(username=horizon.auth["username"], password=horizon.auth["password"])
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
        + horizon.log_tail()
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


@pytest.fixture
def chromium():
    """A headless Chromium driven by Debian's chromedriver, with a fresh profile removed
    afterwards; skipped (a failure under CI=true) when Chromium, chromedriver or Selenium is
    missing. The flags keep Chromium from reaching out to Google's services (background
    networking, component updates, sync, QUIC): on a closed network, as in CI, those connections
    are refused."""
    if webdriver is None:
        pytest.skip(f"selenium is not importable ({SELENIUM_IMPORT_ERROR}): scripts/test installs it into .venv")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.skip(f"no {path}: install Debian's {package} (scripts/test does, as root)")
    profile = Path(tempfile.mkdtemp(prefix="statera-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # Chromium's sandbox refuses to run as root, as CI does
        "--disable-gpu",
        "--disable-dev-shm-usage",  # a container's /dev/shm may be 64 MB
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",  # desktop layout: the project selector in the top bar
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})  # JavaScript errors, for _explain
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(BROWSER_WAIT)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _explain(driver, horizon: Horizon, shot: Path, what: str) -> str:
    """`what`, with what the browser shows (its URL, the page's visible text, JavaScript errors,
    a screenshot) and the tail of Horizon's log."""
    parts = [what]
    try:
        parts.append(f"browser at {driver.current_url}")
        text = driver.find_element(By.TAG_NAME, "body").text
        parts.append("--- visible text ---\n" + (text[:2000] + " …" if len(text) > 2000 else text))
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            parts.append("--- browser console errors ---\n" + "\n".join(errors[-10:]))
        if driver.save_screenshot(str(shot)):
            parts.append(f"screenshot: {shot}")
    except WebDriverException as e:
        parts.append(f"(the browser could not tell more: {e.msg})")
    parts.append("--- horizon log (tail) ---\n" + horizon.log_tail())
    return "\n".join(parts)


def test_chromium_signs_in_and_shows_load_balancers(chromium, horizon, tmp_path):
    driver = chromium
    shot = tmp_path / "chromium.png"

    def wait(what: str, condition):
        """`condition(driver)` once truthy (polled for at most BROWSER_WAIT s); otherwise the test
        fails with what the browser shows."""
        try:
            return WebDriverWait(driver, BROWSER_WAIT).until(condition)
        except (TimeoutException, WebDriverException) as e:
            detail = f"timed out after {BROWSER_WAIT:.0f} s" if isinstance(e, TimeoutException) else e.msg
            raise AssertionError(_explain(driver, horizon, shot, f"waiting for {what}: {detail}")) from None

    def open_page(path: str) -> None:
        try:
            driver.get(horizon.base + path)
        except WebDriverException as e:  # TimeoutException too: the page did not load in time
            raise AssertionError(_explain(driver, horizon, shot, f"loading {path}: {e.msg}")) from None

    def path_of(url: str) -> str:
        return urllib.parse.urlsplit(url).path

    # A load balancer in the admin's project, made with the openstack CLI as that admin.
    cli = OpenStackCli(horizon.server.endpoint, clouds_yaml=horizon.clouds_yaml)
    name = "seen-in-chromium"
    cli.run("loadbalancer", "create", "--name", name, "--vip-subnet-id", "host-subnet")

    # Sign in: type into the rendered form, submit with its button, and wait to be let in.
    open_page("/auth/login/")
    wait("the user name field", lambda d: d.find_element(By.NAME, "username")).send_keys(horizon.auth["username"])
    wait("the password field", lambda d: d.find_element(By.NAME, "password")).send_keys(horizon.auth["password"])
    wait("the Sign In button", lambda d: d.find_element(By.ID, "loginBtn")).click()
    wait(
        "the browser to leave /auth/login after signing in",
        lambda d: not path_of(d.current_url).startswith("/auth/login")
        and d.execute_script("return document.readyState") == "complete",
    )

    # The load-balancer panel: octavia-dashboard's Angular table lists the load balancer.
    open_page("/project/load_balancer/")
    assert path_of(driver.current_url).rstrip("/") == "/project/load_balancer", _explain(
        driver, horizon, shot, "the load-balancer panel sent the browser elsewhere"
    )
    wait(
        f"the load-balancer table to show {name!r}",
        lambda d: d.find_elements(By.XPATH, f"//hz-resource-table//td[normalize-space(.)={name!r}]"),
    )
    # The project Horizon scoped the session to at sign-in (clouds.yaml's), in the top bar.
    project = wait("the current project in the top bar", lambda d: d.find_element(By.CSS_SELECTOR, ".context-project"))
    shown = project.get_attribute("textContent").strip()
    assert shown == "admin", _explain(driver, horizon, shot, f"the top bar names project {shown!r}, not 'admin'")
