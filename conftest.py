"""Test-session set-up shared by the unit tests and the nbval notebook runs."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from synthlib.runs import RUNS_ENV_VAR

# Notebook kernels inherit the environment: give the session its own runs folder
# so tests never touch a user's runs/.
_created = None
if not os.environ.get(RUNS_ENV_VAR):
    _created = tempfile.mkdtemp(prefix="synthlib-test-runs-")
    os.environ[RUNS_ENV_VAR] = _created
# ... and its own model zoo: the tiny zoo models are built there once (seconds), never into a user's cache.
_created_zoo = None
if not os.environ.get("SYNTHLIB_ZOO"):
    _created_zoo = tempfile.mkdtemp(prefix="synthlib-test-zoo-")
    os.environ["SYNTHLIB_ZOO"] = _created_zoo
#: The unit tests' runs folder; the notebooks run under nbval in its ``nbval/`` subfolder.
SESSION_RUNS = Path(os.environ[RUNS_ENV_VAR])
NBVAL_RUNS = SESSION_RUNS / "nbval"
_nbval_started = False


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads; on a shared machine a second thread only waits for a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    config.addinivalue_line("markers", "after_notebooks: runs after the nbval notebook runs (compares against them)")


def pytest_collection_modifyitems(session, config, items):
    # Tests that compare with the notebooks' run go last; the rest keep their order.
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _nbval_started
    # Before the first notebook's kernel starts: an empty runs folder of their own, so the
    # notebooks build every stage themselves instead of finding the unit tests' stages.
    if item.path.suffix == ".ipynb" and not _nbval_started:
        shutil.rmtree(NBVAL_RUNS, ignore_errors=True)
        NBVAL_RUNS.mkdir(parents=True)
        os.environ[RUNS_ENV_VAR] = str(NBVAL_RUNS)
        _nbval_started = True


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0:
        for folder in (_created, _created_zoo):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
