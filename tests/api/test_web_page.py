"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against a real `serve` with SeaweedFS as the archive location. A
person's path: no token (told to paste one), a read-only token (an export refused in plain
words), then a token that may export: start an export, watch its bar reach 100%, download,
and the saved file is the bytes `stream-backend cat` prints. A screenshot of each state goes
to $STREAM_BACKEND_SCREENSHOTS (docs/ holds the committed ones) or the test's directory.

The browser reaches loopback only: its resolver maps every other host to nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import CLI, wait_until
from support.api_server import ADMIN, READER
from support.transfer import append_events

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM and CHROMEDRIVER, "needs Debian's chromium and chromium-driver: bash scripts/test installs them"
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never fetch a driver
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1100",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-client-side-phishing-detection",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _shots(tmp_path) -> Path:
    path = Path(os.environ.get("STREAM_BACKEND_SCREENSHOTS") or tmp_path / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_export_watch_the_bar_and_download_in_a_browser(browser, server, local_store, store_root, s3_bucket,
                                                         fault_proxy, tmp_path):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    local_store.create_stream("demo", "logs")
    append_events(local_store, "demo", "logs", 480, 50_000, seed=9)  # about 23 MiB
    slow = fault_proxy(s3_bucket.server, latency=1.0, latency_s=2.0, only_methods=("PUT",))  # each part 2 s: a bar to watch
    srv = server(endpoint=slow.endpoint_url)
    shots = _shots(tmp_path)
    find = browser.find_element

    def text(id_):
        return find(By.ID, id_).text

    def notice():
        shown = find(By.ID, "notice").is_displayed()
        return text("notice-text") if shown else ""

    def connect(token):
        if find(By.ID, "logout").is_displayed():
            find(By.ID, "logout").click()
            wait_until("the page to reload", lambda: not find(By.ID, "logout").is_displayed())
        find(By.ID, "token").send_keys(token)
        find(By.CSS_SELECTOR, "#login button[type=submit]").click()

    browser.get(srv.base + "/")
    wait_until("the page to ask for a token", lambda: "access token is missing" in notice(), timeout=30)
    browser.save_screenshot(str(shots / "ui-1-no-token.png"))

    connect(READER)
    wait_until("the streams to show", lambda: "demo/logs" in text("streams"), timeout=30)
    assert "demo/logs 1 480 22.9 MiB" in text("streams")  # segments, events, 24,000,000 bytes
    Select(find(By.ID, "export-location")).select_by_value("backups")
    find(By.CSS_SELECTOR, "#export-form button[type=submit]").click()
    wait_until("the refusal to show", lambda: "Not allowed" in notice(), timeout=30)
    assert "lacks the scope export" in notice()
    browser.save_screenshot(str(shots / "ui-2-not-allowed.png"))

    connect(ADMIN)
    wait_until("the streams to show", lambda: "demo/logs" in text("streams"), timeout=30)
    find(By.XPATH, "//table[@id='streams']//button[text()='Export…']").click()
    name = find(By.ID, "export-name").get_attribute("value")
    assert name.startswith("logs-") and find(By.ID, "export-path").get_attribute("value") == "demo/logs"
    assert find(By.ID, "export-view").is_selected()
    Select(find(By.ID, "export-location")).select_by_value("backups")
    browser.save_screenshot(str(shots / "ui-3-streams.png"))
    find(By.CSS_SELECTOR, "#export-form button[type=submit]").click()

    def request():
        """The request's row, its text and its bar's value; None until it shows (the page
        redraws rows on every status event, so an element may go stale under us)."""
        try:
            row = find(By.ID, f"request-exports-{name}")
            return row.text, float(row.find_element(By.TAG_NAME, "progress").get_attribute("value"))
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    states = []

    def running_partway():
        now = request()
        states.append(now)
        return now if now and "Running" in now[0] else None

    try:
        shown, _ = wait_until("the export to run", running_partway, timeout=120)
    except AssertionError:
        browser.save_screenshot(str(tmp_path / "stuck.png"))
        raise AssertionError(f"the row showed {sorted(set(states), key=states.index)[:20]}; notice {notice()!r}; server log:\n{srv.logs()[-3000:]}")
    assert "Pause" in shown
    browser.save_screenshot(str(shots / "ui-4-running.png"))
    seen = []

    def finished():
        now = request()
        if now:
            seen.append(now[1])
        return now if now and "Succeeded" in now[0] else None

    shown, percent = wait_until("the export to succeed", finished, timeout=300)
    assert percent == 100 and "100%" in shown and "480 events" in shown, shown
    assert seen == sorted(seen), seen  # the bar only moves forward
    browser.save_screenshot(str(shots / "ui-5-succeeded.png"))

    def click_download():
        try:
            find(By.ID, f"request-exports-{name}").find_element(By.XPATH, ".//button[text()='Download']").click()
            return True
        except StaleElementReferenceException:
            return False

    wait_until("the Download button to take a click", click_download, timeout=30)
    wait_until("the download to be saved", lambda: "Saved" in notice() or "Downloading" in notice(), timeout=60)

    def saved():
        files = [p for p in browser.downloads.iterdir() if not p.name.endswith(".crdownload")]
        return files[0] if files else None

    got = wait_until("the file to arrive", saved, timeout=120)
    expected = subprocess.run([CLI, "cat", "stream://demo/logs", "--root", str(store_root)], capture_output=True,
                              check=True, timeout=120).stdout
    assert got.read_bytes() == expected
    browser.save_screenshot(str(shots / "ui-6-downloaded.png"))
    assert ADMIN not in srv.logs() and READER not in srv.logs()
