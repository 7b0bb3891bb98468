"""The browser tests' headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed
by scripts/test-deps.sh) driven by Selenium: ``chromium`` opens one, ``By``, ``Keys``, ``seen``
and ``WebDriverWait`` are what the tests drive it with."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

__all__ = ["CHROMEDRIVER", "CHROMIUM", "By", "Keys", "WebDriverWait", "chromium", "replaced", "seen"]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# What Chromium answers, instead of a stale-element error, when asked about a node of a page it is
# leaving for the next one at that moment.
DETACHED = "does not belong to the document"


def replaced(element: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """A wait condition: ``element``'s page has been replaced by the next one (Selenium's
    ``staleness_of``, also when Chromium answers mid-navigation that the node left the page)."""

    def gone(_driver: webdriver.Chrome) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if DETACHED in str(exc.msg):
                return True
            raise
        return False

    return gone


@contextmanager
def chromium(
    profile: Path, *, size: str, page_load_timeout: float, extra: tuple[str, ...] = (), skip_outside_ci: bool = False
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium whose window is ``size`` ("412,915"), its profile in ``profile``;
    quit after. Missing Chromium fails the test (``make test`` installs it), or with
    ``skip_outside_ci`` skips it outside CI."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if skip_outside_ci and not os.environ.get("CI"):
            pytest.skip("Chromium is not installed (scripts/test-deps.sh installs it)")
        pytest.fail("Chromium is missing: run `bash scripts/test-deps.sh` (make test does)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        *extra,
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(page_load_timeout)
        yield driver
    finally:
        driver.quit()
