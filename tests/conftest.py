"""Suite-wide fixtures.

The test suite never writes into the user's experiment store (``./mlflow.db``, ``./mlruns``):
every test, and every process a test starts (they inherit ``os.environ``), logs to a throw-away
SQLite store of its own. A test that needs another store sets MLFLOW_TRACKING_URI itself
(``monkeypatch.setenv``), which wins for that test.
"""

from __future__ import annotations

import pytest

#: The suite's own MLflow store, set for the whole session (``mlflow_store`` fixture).
TEST_STORE_ENV = "EAVATAR_TEST_MLFLOW_STORE"


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory):
    """Point MLFLOW_TRACKING_URI at a temporary SQLite store for the whole session; returns its path.
    Artifacts of new experiments land beside it (eavatar.tracking.mlflow_run.artifact_location)."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        mp.setenv(TEST_STORE_ENV, str(store))
        # a developer's MLFLOW_* settings (experiment, run id) must not leak into the suite's runs
        for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
            mp.delenv(key, raising=False)
        yield store
