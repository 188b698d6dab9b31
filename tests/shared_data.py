"""Where the shared test data (../shared: videos, LPIPS references) is, wherever the clone sits."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """$EAVATAR_SHARED, else ../shared beside the clone, else /work/shared (this project's machines)."""
    for candidate in (os.environ.get("EAVATAR_SHARED"), REPO.parent / "shared", Path("/work/shared")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def shared_path(*parts: str) -> Path:
    """A file under the shared folder; skips the test, saying where it looked, when absent."""
    root = shared_dir()
    path = root.joinpath(*parts) if root else None
    if path is None or not path.exists():
        pytest.skip(f"shared test data {'/'.join(parts)} not found (set EAVATAR_SHARED to the shared folder)")
    return path
