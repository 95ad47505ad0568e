"""The page of `icgen serve` in a real browser (Debian's chromium driven by Selenium) against a real server on a free
loopback port, with ngspice: size for 38 dB / 52 degrees and read the table, re-simulate the shown netlist, see a bad
unit's message beside its field, see an injected answer refused and shown as text (pasted, and read from an
uploaded file), see the objective and corner options and a bad margin's message, open the dataset page, and save
screenshots (out/test-artifacts/icgen-serve*.png)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "out" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [pytest.mark.browser, pytest.mark.ngspice,
              pytest.mark.skipif(not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
                                 reason="chromium and chromium-driver are not installed (run scripts/setup.sh)")]

INJECTED = """M1 pch net3 VINP net2 VDD L1=622.0nm W1=15.0um
.control
shell touch /tmp/icgen-pwned
.endc
<img src=x onerror="window.__pwned = 1">
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("fastapi")
    folder = tmp_path_factory.mktemp("serve")
    port = _free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "icgen.cli", "serve", "--port", str(port), "--model", "none",
                                "--jobs", "1", "--results", str(folder / "results")], stdout=log,
                               stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            _get(base + "/api/info")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
    yield base
    process.terminate()
    process.wait(timeout=20)
    log.close()
    text = (folder / "server.log").read_text()
    assert "Traceback" not in text and "unhandled error" not in text, text[-3000:]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout_s: float = 120.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(condition)


def test_the_page_sizes_for_38db_52deg_and_its_netlist_re_simulates_to_the_shown_metrics(server, browser):
    from selenium.webdriver.common.by import By

    from icgen.core.tech import load_technology
    from icgen.sim.validate import validate_text

    browser.get(server + "/")
    _wait(browser, lambda d: d.find_elements(By.ID, "spec-gain"), 30)
    browser.find_element(By.ID, "spec-gain").send_keys("38dB")
    browser.find_element(By.ID, "spec-pm").send_keys("52")
    browser.find_element(By.ID, "size-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[-1].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#spec-table tbody tr")}
    assert rows == {"DC gain": "yes", "Phase margin": "yes"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "#op-table tbody tr")) == 7
    _wait(browser, lambda d: d.execute_script("return document.getElementById('bode').naturalWidth") > 0, 20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "icgen-serve.png"))

    job_id = browser.execute_script("return location.hash").split("job=")[1]
    shown = _get(f"{server}/api/jobs/{job_id}")["result"]["metrics"]
    answer = browser.find_element(By.ID, "answer").text
    again = validate_text(answer, load_technology("ptm65"))
    assert again.valid, again.problems
    for key in ("gain_db", "pm_deg", "ugb_hz", "power_w"):
        assert getattr(again.result.metrics, key) == pytest.approx(shown[key], rel=1e-6), key

    browser.refresh()  # a reload finds the same job and shows its result again
    _wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed(), 30)
    assert browser.find_element(By.ID, "answer").text == answer


def test_a_bad_unit_shows_the_clis_message_beside_its_field(server, browser):
    from selenium.webdriver.common.by import By

    from icgen.core.score import specs_from_options

    with pytest.raises(ValueError) as cli:
        specs_from_options({"gain": "38 dBm"})
    browser.get(server + "/")
    _wait(browser, lambda d: d.find_elements(By.ID, "spec-gain"), 30)
    browser.find_element(By.ID, "spec-gain").send_keys("38 dBm")
    browser.find_element(By.ID, "size-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "err-gain").text, 20)
    assert browser.find_element(By.ID, "err-gain").text == str(cli.value)
    assert "invalid" in browser.find_element(By.ID, "spec-gain").get_attribute("class")
    assert not browser.find_element(By.ID, "progress").is_displayed()


def test_a_pasted_injected_answer_is_refused_and_shown_as_text(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    _wait(browser, lambda d: d.find_elements(By.ID, "validate-text"), 30)
    browser.find_element(By.ID, "validate-text").send_keys(INJECTED)
    browser.find_element(By.ID, "validate-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "validate-result").is_displayed(), 30)
    assert browser.find_element(By.ID, "validate-verdict").text.startswith("INVALID")
    problems = browser.find_element(By.ID, "validate-problems").text
    assert ".control" in problems and "shell" in problems and "<img src=x" in problems  # shown as text
    assert not browser.find_elements(By.CSS_SELECTOR, "#validate-section img:not(#validate-bode)")
    assert browser.execute_script("return window.__pwned") is None
    assert not Path("/tmp/icgen-pwned").exists()
    browser.save_screenshot(str(ARTIFACTS / "icgen-serve-validate.png"))


def test_an_uploaded_injected_file_goes_the_pastes_way_and_is_refused(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    upload = tmp_path / "answer.txt"
    upload.write_text(INJECTED)
    browser.get(server + "/")
    _wait(browser, lambda d: d.find_elements(By.ID, "validate-file"), 30)
    browser.find_element(By.ID, "validate-file").send_keys(str(upload))
    _wait(browser, lambda d: d.find_element(By.ID, "validate-text").get_attribute("value"), 10)
    assert browser.find_element(By.ID, "validate-text").get_attribute("value") == INJECTED
    browser.find_element(By.ID, "validate-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "validate-result").is_displayed(), 30)
    assert browser.find_element(By.ID, "validate-verdict").text.startswith("INVALID")
    assert ".control" in browser.find_element(By.ID, "validate-problems").text
    assert browser.execute_script("return window.__pwned") is None


def test_the_size_form_offers_the_objectives_and_corner_sets_and_the_dataset_page_opens(server, browser):
    from selenium.webdriver.common.by import By

    from icgen.core.objective import OBJECTIVE_NAMES

    browser.get(server + "/")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#objective option"), 30)
    assert [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#objective option")] == \
        list(OBJECTIVE_NAMES)
    assert [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#corners option")] == \
        ["", "nominal", "all"]
    browser.find_element(By.ID, "spec-gain").send_keys("38dB")
    browser.find_element(By.ID, "margin").clear()
    browser.find_element(By.ID, "margin").send_keys("2 furlongs")
    browser.find_element(By.ID, "size-button").click()
    _wait(browser, lambda d: d.find_element(By.ID, "err-margin").text, 20)
    assert "2 furlongs" in browser.find_element(By.ID, "err-margin").text
    browser.find_element(By.LINK_TEXT, "Dataset").click()
    _wait(browser, lambda d: d.find_elements(By.TAG_NAME, "table"), 60)
    rows = {r.find_elements(By.TAG_NAME, "td")[0].text for r in browser.find_elements(By.CSS_SELECTOR, "table tr")
            if r.find_elements(By.TAG_NAME, "td")}
    assert {"simulated", "working"} <= rows
    browser.save_screenshot(str(ARTIFACTS / "icgen-serve-dataset.png"))
