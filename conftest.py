"""Test-session set-up shared by the unit tests and the nbval notebook runs."""

import os
import shutil
import tempfile

from synthlib.runs import RUNS_ENV_VAR

# Notebook kernels inherit the environment: give the session its own runs folder
# so tests never touch a user's runs/, and the notebooks share one run in order.
_created = None
if not os.environ.get(RUNS_ENV_VAR):
    _created = tempfile.mkdtemp(prefix="synthlib-test-runs-")
    os.environ[RUNS_ENV_VAR] = _created


def pytest_sessionfinish(session, exitstatus):
    if _created and exitstatus == 0:
        shutil.rmtree(_created, ignore_errors=True)
