"""The console in a real browser: Debian's chromium, headless, driven by selenium through chromedriver,
against a live gateway on 127.0.0.1 whose loops run and whose embedded sandbox finishes tasks at once.

One end-to-end test: a tenant's key signs in, New job, a PNG picked through the file input, submit; the
Job page shows the job reach `succeeded` without a reload and plays the video (`readyState`, `duration`
of the `<video>`); the Jobs list shows it with its thumbnail; both pages fit 1280 px and 375 px (no
sideways scrolling); then an admin key sees Spend and Upstream health. It fails on any browser console
error and on any request to a host other than 127.0.0.1 (chromedriver's performance log: CDP Network
events). Screenshots go to the test's tmp dir (new-, job-, jobs-, health-); with CONSOLE_SCREENSHOT=1
the Job page at 1280 px is also written to docs/console.png (the README's picture).

Without /usr/bin/chromium and /usr/bin/chromedriver (`make browser-deps`) the test skips, and fails under
CI=true, where they must be there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.conftest import REPO, serve
from tests.integration.test_tenants import ALICE, OPS, keyed

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SECONDS = 2  # the requested duration
T = TypeVar("T")


def browser_or_skip() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        why = f"{' and '.join(missing)} not installed: run `make browser-deps`"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@contextlib.contextmanager
def chromium(downloads: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--mute-audio",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    # With the driver's path given, selenium skips Selenium Manager (no driver download, no usage stats).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def until(what: str, probe: Callable[[], T | None], within: float = 15.0) -> T:
    """Ask the page until `probe` answers something truthy (a condition with a deadline, no fixed sleep)."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.05)


def picture(path: Path) -> Path:
    """A 640x360 PNG with something to look at (the sandbox may animate it)."""
    image = Image.new("RGB", (640, 360), (30, 64, 175))
    draw = ImageDraw.Draw(image)
    for i in range(0, 640, 40):
        draw.rectangle((i, 0, i + 20, 360), fill=(40 + i // 4, 120, 200 - i // 4))
    draw.ellipse((220, 80, 420, 280), fill=(250, 204, 21))
    image.save(path, format="PNG")
    return path


def sign_in(driver: WebDriver, key: str) -> None:
    field = until("the sign-in form", lambda: _shown(driver, "[data-testid=api-key]"))
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=sign-in]").click()
    until("the console after sign-in", lambda: _shown(driver, "#content"))


def _shown(driver: WebDriver, selector: str) -> Any:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found and found[0].is_displayed() else None


def logs(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def fits(driver: WebDriver) -> bool:
    width = driver.execute_script("return document.documentElement.scrollWidth")
    viewport = driver.execute_script("return window.innerWidth")
    return bool(width <= viewport + 1)


def drive(url: str, tmp: Path) -> None:
    image = picture(tmp / "cat.png")
    with chromium(tmp) as driver:
        driver.get(url + "/")
        assert urlsplit(driver.current_url).path == "/console"
        sign_in(driver, ALICE)
        assert driver.execute_script("return document.cookie") == ""  # the key is no cookie
        driver.find_element(By.CSS_SELECTOR, "[data-testid=new-job]").click()

        # New job: the form comes from /v1/models; the file goes through the file input.
        until("the models", lambda: len(Select(driver.find_element(By.ID, "model")).options) > 3)
        durations = Select(driver.find_element(By.ID, "duration"))
        assert [o.get_attribute("value") for o in durations.options] == [str(s) for s in range(2, 16)]
        durations.select_by_value(str(SECONDS))
        Select(driver.find_element(By.ID, "resolution")).select_by_value("720P")
        driver.find_element(By.CSS_SELECTOR, "[data-testid=prompt]").send_keys("a yellow sun over stripes")
        driver.find_element(By.CSS_SELECTOR, "[data-testid=image-file]").send_keys(str(image))
        curl_text: Callable[[], str] = lambda: driver.find_element(By.ID, "curl").text  # noqa: E731
        curl = until("the curl command", lambda: curl_text() if "cat.png" in curl_text() else None)
        assert "-F reference_image=@cat.png" in curl and "-F duration=2" in curl and ALICE not in curl
        driver.save_screenshot(str(tmp / "new-1280.png"))
        driver.find_element(By.CSS_SELECTOR, "[data-testid=submit-job]").click()

        # The Job page: the job runs to `succeeded` on this page, without a reload.
        until("the job page", lambda: "/console/jobs/job" in driver.current_url)
        job_id = driver.current_url.rsplit("/", 1)[1]
        driver.execute_script("window.__stayed = true")
        status = driver.find_element(By.CSS_SELECTOR, "[data-testid=job-status]")
        until("succeeded", lambda: status.text == "succeeded", within=30)
        state = until(
            "the video to load",
            lambda: driver.execute_script(
                "const v = document.getElementById('player');"
                "return v && v.readyState >= 2 ? {ready: v.readyState, duration: v.duration} : null"
            ),
        )
        assert abs(state["duration"] - SECONDS) < 0.25, state
        played = driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; const v = document.getElementById('player');"
            "v.muted = true;"
            "v.play().then(() => setTimeout(() => done(v.currentTime), 300), (e) => done(String(e)));"
        )
        assert isinstance(played, float | int) and played > 0, played
        assert driver.execute_script("return window.__stayed === true"), "the page was reloaded"
        timeline = driver.find_element(By.ID, "events").text
        assert "job.queued" in timeline and "job.succeeded" in timeline
        assert "Task id" in driver.find_element(By.ID, "upstream").text
        until("the request's image", lambda: driver.find_element(By.ID, "ref-image").get_attribute("src"))
        driver.save_screenshot(str(tmp / "job-1280.png"))
        if os.environ.get("CONSOLE_SCREENSHOT") == "1":
            shutil.copy(tmp / "job-1280.png", REPO / "docs" / "console.png")
        assert fits(driver)

        # The Jobs list: the row, its status and its thumbnail.
        driver.find_element(By.LINK_TEXT, "Jobs").click()
        row = until("the job's row", lambda: _shown(driver, f"[data-testid=job-row][data-job-id='{job_id}']"))
        assert row.find_element(By.CSS_SELECTOR, "[data-testid=job-status]").text == "succeeded"
        until(
            "the thumbnail",
            lambda: driver.execute_script(
                "const i = document.querySelector('[data-testid=job-row] img');return i && i.naturalWidth > 0"
            ),
        )
        driver.save_screenshot(str(tmp / "jobs-1280.png"))
        assert fits(driver)
        driver.set_window_size(375, 812)
        until("the 375 px layout", lambda: driver.execute_script("return window.innerWidth <= 400"))
        assert fits(driver), "the Jobs page scrolls sideways at 375 px"
        driver.save_screenshot(str(tmp / "jobs-375.png"))
        driver.get(f"{url}/console/jobs/{job_id}")
        until(
            "succeeded", lambda: (s := _shown(driver, "[data-testid=job-status]")) and s.text == "succeeded"
        )
        assert fits(driver), "the Job page scrolls sideways at 375 px"
        driver.save_screenshot(str(tmp / "job-375.png"))
        driver.set_window_size(1280, 900)

        # An admin: Spend of every tenant, and upstream health.
        driver.get(f"{url}/console/spend")
        until("the sign-out button", lambda: _shown(driver, "#sign-out")).click()
        sign_in(driver, OPS)
        until("the spend row", lambda: "CNY" in driver.find_element(By.ID, "spend-rows").text)
        Select(driver.find_element(By.ID, "spend-group")).select_by_value("tenant")
        driver.find_element(By.CSS_SELECTOR, "#spend-form button").click()
        until("alice's spend", lambda: "alice" in driver.find_element(By.ID, "spend-rows").text)
        driver.find_element(By.LINK_TEXT, "Upstream health").click()
        until("the queue figures", lambda: "jobs_by_status" in driver.find_element(By.ID, "stats").text)
        until("readiness", lambda: "checks" in driver.find_element(By.ID, "ready").text)
        driver.save_screenshot(str(tmp / "health-1280.png"))

        errors = [entry for entry in logs(driver, "browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
        hosts = set()
        for entry in logs(driver, "performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                target = urlsplit(message["params"]["request"]["url"])
                if target.scheme not in ("data", "blob"):
                    hosts.add(target.hostname)
        assert hosts == {"127.0.0.1"}, hosts


async def test_console_signs_in_submits_a_png_watches_it_succeed_and_plays_it(
    tmp_path: Path, database_url: str
) -> None:
    browser_or_skip()
    # The loops run in the gateway (a browser does not call run_once); the sandbox finishes at once.
    # The clip animates the PNG the form sent, as a user sees it (the rest of the suite turns that off).
    settings = keyed(tmp_path, database_url, workers_enabled=True, sandbox_clip_pictures=True)
    async with serve(settings) as served:
        # selenium blocks: the browser runs in a thread while this loop serves it.
        await asyncio.to_thread(drive, served.url, tmp_path)
