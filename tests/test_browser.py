"""JupyterLab in a real browser: 00 and 04_generation run in headless Chromium; the painter paints and generates.

Needs Debian's ``chromium``: ``.ci/run`` installs it, and under CI (``CI=true``) or with
``SYNTHLIB_REQUIRE_BROWSER=1`` a missing browser is a failure, not a skip. Playwright drives the system Chromium; no
browser is downloaded. The notebooks run on the smoke profile in a copy of ``notebooks/``
(nothing of the checkout is saved over) against a copy of the nbval runs folder, so their stages
are reused and the reference run that test_crash_resume compares with is never written over. Screenshots go to ``$SYNTHLIB_SCREENSHOTS`` when set (the
committed ones: ``SYNTHLIB_SCREENSHOTS=results/browser``), else to the test's temporary folder.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import NBVAL_RUNS
from synthlib.runs import RUNS_ENV_VAR

pytestmark = pytest.mark.after_notebooks  # reuses the stages the nbval notebook runs made

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
# Chromium as root in a container, on a closed network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
WIDGET_SECONDS = 180  # a widget's round trip through the kernel, on a machine busy with other tests
SMOKE = {"height": 32, "width": 64, "zoom": 4, "seeds": 3}  # the painter's result: one image per seed, side by side

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true" or os.environ.get("SYNTHLIB_REQUIRE_BROWSER"):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium for the browser tests")
    pytest.skip("no Chromium (Debian: apt-get install chromium); .ci/run installs it", allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free local port over a copy of the notebooks, with the smoke stages 04 needs."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    # A copy of the nbval runs: the notebooks rewrite their figures, and the nbval run is test_crash_resume's reference.
    if NBVAL_RUNS.is_dir():
        shutil.copytree(NBVAL_RUNS, root / "runs", symlinks=True)
    settings = root / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell in the page: JupyterLab 4 otherwise renders only the cells in view, and the widgets sit near the end.
    notebook = root / "settings" / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = dict(os.environ, SYNTHLIB_PROFILE="smoke", JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"), JUPYTER_RUNTIME_DIR=str(root / "runtime"),
               OMP_NUM_THREADS="1", **{RUNS_ENV_VAR: str(root / "runs")})  # fmt: skip
    made = (root / "runs" / "smoke" / "diffusion" / "stage2" / "manifest.json").is_file()  # by the nbval runs
    for step in () if made else ("data", "pseudo_labels", "stage1", "stage2"):
        subprocess.run([sys.executable, "-m", "synthlib", "stage", step, "--profile", "smoke"], env=env, check=True,
                       capture_output=True, cwd=REPO)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", server, root / "server.log")
        # ?reset: a fresh workspace, so the page holds the one notebook a test opens
        yield f"http://127.0.0.1:{port}/lab/tree/notebooks/{{}}?reset&token={token}"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("SYNTHLIB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_00_data_runs_in_jupyterlab_and_its_browser_widget_renders(lab, page, shots):
    _run_notebook(page, lab.format("00_data.ipynb"))
    assert _errors(page) == []
    browser = page.locator(".jp-OutputArea-output .widget-dropdown select").last  # viz.browse's dataset picker
    browser.wait_for(timeout=WIDGET_SECONDS * 1000)
    browser.scroll_into_view_if_needed()
    image = page.locator(".jp-OutputArea-output .widget-box img, .jp-OutputArea-output .widget-box canvas").last
    assert image.count() == 1 and image.bounding_box()["width"] > 100
    page.screenshot(path=str(shots / "browser_00_data.png"))


def test_the_painter_paints_and_generates_in_the_browser(lab, page, shots):
    _run_notebook(page, lab.format("04_generation.ipynb"))
    assert _errors(page) == []
    painter = page.locator(".widget-vbox", has=page.locator("button.jupyter-button", has_text="generate")).last
    painter.wait_for(timeout=WIDGET_SECONDS * 1000)  # the widget renders once its comm is open: slow on a busy machine
    painter.scroll_into_view_if_needed()
    map_view, result = painter.locator("img").nth(0), painter.locator("img").nth(1)
    before = map_view.get_attribute("src")
    painter.locator(".widget-dropdown select").select_option("car")  # the shape under the controls becomes a car
    page.wait_for_function("([img, src]) => img.src !== src", arg=[map_view.element_handle(), before], timeout=WIDGET_SECONDS * 1000)
    painter.locator("button.jupyter-button", has_text="paint").click()
    painter.locator("button.jupyter-button", has_text="generate").click()
    status = painter.locator(".widget-label", has_text="images, seeds")
    status.wait_for(timeout=300000)
    assert status.inner_text().startswith(f"{SMOKE['seeds']} images")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=result.element_handle(), timeout=WIDGET_SECONDS * 1000)
    width, height = result.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (SMOKE["seeds"] * SMOKE["width"] * SMOKE["zoom"], SMOKE["height"] * SMOKE["zoom"])
    painter.screenshot(path=str(shots / "browser_painter.png"))
    page.screenshot(path=str(shots / "browser_04_generation.png"))


# --- helpers ------------------------------------------------------------------------------


def _wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} in {seconds} s:\n{log.read_text()[-3000:]}")


def _run_notebook(page, url: str, seconds: float = 900) -> None:
    """Open a notebook, run all its cells and wait until the kernel is idle with no cell pending.

    Run-all is sent again while no cell has started: on a cold server the first one can
    arrive before the notebook panel takes commands. A timeout names the cells' prompts.
    """
    page.goto(url)
    kernel = "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel"
    page.wait_for_function(f"() => window.jupyterapp && {kernel}?.status === 'idle'", timeout=120000, polling=500)
    # Only the current notebook's cells: a restored workspace can hold other notebooks' cells in the page.
    state = f"""() => {{ const node = window.jupyterapp.shell.currentWidget?.node ?? document;
        const prompts = [...node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
        const failed = node.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
        return {{status: {kernel}?.status, prompts, failed: failed !== null}}; }}"""
    end, sent = time.monotonic() + seconds, 0.0
    while time.monotonic() < end:
        now = page.evaluate(state)
        started = any("*" in t or any(c.isdigit() for c in t) for t in now["prompts"])
        pending = any("*" in t for t in now["prompts"])
        finished = now["prompts"] and all(any(c.isdigit() for c in t) for t in now["prompts"])
        if started and now["status"] == "idle" and not pending and (finished or now["failed"]):
            return
        if not started and time.monotonic() - sent > 30:
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            sent = time.monotonic()
        time.sleep(2)
    raise TimeoutError(f"{url.split('?')[0]}: cells not done in {seconds} s; kernel {now['status']}, prompts {now['prompts']}")


def _errors(page) -> list[str]:
    """The tracebacks the notebook's cells printed."""
    return page.evaluate(
        """[...(window.jupyterapp.shell.currentWidget?.node ?? document).querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(e => e.textContent).filter(t => t.includes('Traceback') || t.includes('Error'))"""
    )
