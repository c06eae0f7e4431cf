"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) with the
internet cut, for tests that look at pages as a person would.

The browser resolves no host name but ``localhost`` and sends everything else to a closed
local port, so a page that loads an asset from a CDN fails to load it and the test sees it.
:func:`outside_requests` lists every request the page made that left 127.0.0.1, from the
browser's own network log; :func:`console_errors` the console's errors.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _options(tmp: Path) -> webdriver.ChromeOptions:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        # the internet is cut: no name resolves but localhost, and any proxied request
        # goes to a closed port; loopback bypasses the proxy
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=127.0.0.1;localhost;[::1]",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--metrics-recording-only",
        f"--user-data-dir={tmp / 'profile'}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return opts


def _start(folder: Path) -> webdriver.Chrome:
    driver = webdriver.Chrome(
        options=_options(folder), service=Service(executable_path=CHROMEDRIVER)
    )
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="session")
def _chromium(tmp_path_factory) -> Iterator[dict]:
    """One headless Chromium per test process (starting one costs seconds), restarted
    only when a test left it unusable."""
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    holder = {"driver": None, "folder": tmp_path_factory.mktemp("chromium")}
    yield holder
    if holder["driver"] is not None:
        holder["driver"].quit()


@pytest.fixture
def browser(_chromium: dict) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with the internet cut, on a blank page in a new tab with no
    cookies, its console and network logs emptied, as if it had just started."""
    driver = _chromium["driver"]
    if driver is not None:
        try:
            # a new tab: whatever an earlier test set on its page (a script injected
            # into every new document, emulation) goes with the old one
            old = driver.window_handles
            driver.switch_to.new_window("tab")
            for handle in old:
                driver.switch_to.window(handle)
                driver.close()
            driver.switch_to.window(driver.window_handles[0])
            driver.get("about:blank")
            driver.delete_all_cookies()
            driver.set_window_size(1400, 1000)
            driver.get_log("performance")
            driver.get_log("browser")
        except Exception:  # crashed or hung in an earlier test: start a new one
            with contextlib.suppress(Exception):
                driver.quit()
            driver = None
    if driver is None:
        driver = _chromium["driver"] = _start(_chromium["folder"])
    yield driver
    with contextlib.suppress(Exception):
        driver.get("about:blank")  # close the page's streams, so its server can stop


def outside_requests(driver: webdriver.Chrome) -> list[str]:
    """Every URL the page requested (since the last call) whose host is not loopback.

    ``data:`` and ``blob:`` URLs never leave the browser and are not listed.
    """
    out: list[str] = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "chrome", "devtools"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            out.append(url)
    return out


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """The browser console's messages at level SEVERE (since the last call)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """Save a PNG of the page under ``folder`` (the test's temporary folder)."""
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
