"""Notebook 02 in a real browser: JupyterLab + headless Chromium (Debian's) driven by Selenium.

Runs all cells, drags an expression slider and checks that the rendered image changed, which
nbmake cannot see (it runs no front end: no widget manager, no comms). Skipped without
/usr/bin/chromium and /usr/bin/chromedriver, except under CI (the CI variable set), where
that is a failure, so CI cannot skip it silently. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_FLAGS = [  # the machine has no network: without these Chromium hangs on its own background requests
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1500,1100",
]  # fmt: skip

PAGE_CONFIG = {"buildCheck": False, "buildAvailable": False, "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    why = f"{', '.join(missing)} not found (apt-get install -y chromium chromium-driver; .ci/run does it)"
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1:<free port> with a token, serving a copy of the notebooks (a fresh clone's view)."""
    require_browser()
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("editor_outputs", ".ipynb_checkpoints"))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    port, token = free_port(), secrets.token_hex(16)
    config = root / "config"  # a clean Jupyter config: no build-check dialog, no news toast, no user settings
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0", "--allow-root"]  # fmt: skip (root: CI's machines)
    log = (root / "lab.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}: {(root / 'lab.log').read_text()[-2000:]}")
        try:
            return urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(up, 90, "JupyterLab to answer")
        yield url, token
    finally:
        stop_group(proc)
        log.close()


def stop_group(proc: subprocess.Popen) -> None:
    """End the server and the kernels it started: its own process group, by id."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


#: The pixels of the editor's image widget (ipywidgets' Image is an <img class="widget-image">), as a data URL.
IMAGE_PIXELS = """
const img = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) img.widget-image');
if (!img || !img.complete || img.naturalWidth === 0) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
c.getContext('2d').drawImage(img, 0, 0);
return c.toDataURL('image/png');
"""


def slider_box(driver, label: str):
    """The ipywidgets FloatSlider whose description is ``label`` (label, noUiSlider track and handle, readout)."""
    from selenium.webdriver.common.by import By

    for box in driver.find_elements(By.CSS_SELECTOR, ".widget-hslider"):
        if box.find_element(By.CSS_SELECTOR, ".widget-label").text.strip() == label:
            return box
    return None


def test_notebook_02_slider_rerenders_the_avatar(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, token = lab
    browser.get(f"{url}/lab/tree/notebooks/02_expression_editing.ipynb?token={token}")
    wait_for(lambda: browser.execute_script("return !!(window.jupyterapp && document.querySelector('.jp-NotebookPanel'))"), 90, "the notebook to open")
    kernel_idle = "return [...window.jupyterapp.shell.widgets('main')].some(w => w.sessionContext?.session?.kernel?.status === 'idle')"
    wait_for(lambda: browser.execute_script(kernel_idle), 120, "the kernel to start")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")  # the open notebook is the current one
    before = wait_for(lambda: browser.execute_script(IMAGE_PIXELS), 300, "the editor's image after running all cells", every=1)
    label = "jaw_open"
    box = wait_for(lambda: slider_box(browser, label), 30, f"the {label} slider")
    readout = box.find_element(By.CSS_SELECTOR, ".widget-readout")
    assert readout.text.strip() == "0.00"
    handle = box.find_element(By.CSS_SELECTOR, ".noUi-handle")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
    ActionChains(browser).click_and_hold(handle).move_by_offset(60, 0).move_by_offset(60, 0).release().perform()
    assert float(readout.text) > 0.5  # the drag really moved the slider (to its end: 1.00)
    after = wait_for(lambda: (p := browser.execute_script(IMAGE_PIXELS)) != before and p, 180, f"the image to change after moving {label}", every=1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "notebook02_after_slider.png"))
    assert after != before
    errors = browser.execute_script("return [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"]')].map(e => e.innerText).filter(t => /Error|Traceback/.test(t))")
    assert not errors, errors


def test_a_missing_browser_skips_locally_and_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium not found"):
        require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI"):
        require_browser()
