"""Headless Chromium driven by selenium, for the page's end-to-end test and its screenshot.

Debian's packages ``chromium`` and ``chromium-driver`` provide the two binaries; selenium is
pointed at them, so it never tries to download a browser or a driver.
"""
from __future__ import annotations

import shutil
import tempfile

CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--window-size=1200,820")


def chromium_problem() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no chromium binary (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver binary (Debian: apt-get install chromium-driver)"
    return None


class Chromium:
    """``with Chromium() as driver:`` a fresh headless browser with its own profile folder."""

    def __enter__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.TemporaryDirectory(prefix="toonface-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        for arg in CHROME_ARGS:
            opts.add_argument(arg)
        opts.add_argument(f"--user-data-dir={self.profile.name}")
        self.driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
        self.driver.set_page_load_timeout(60)
        return self.driver

    def __exit__(self, *exc):
        try:
            self.driver.quit()
        finally:
            self.profile.cleanup()
