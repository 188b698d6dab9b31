"""Reading params.yaml: one section per stage, unknown keys are errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


def load_params(path: str | Path, section: str) -> dict[str, Any]:
    """The ``section`` mapping of a params file, with the file and section named on error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise SystemExit(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise SystemExit(f"{path}: not valid YAML ({err})") from None
    if section not in data or not isinstance(data[section], dict):
        raise SystemExit(f"{path}: section '{section}' is missing")
    return data[section]


def apply_overrides(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    """A copy of dataclass ``obj`` with nested ``overrides`` applied; ``where`` names the params key."""
    if not dataclasses.is_dataclass(obj):
        raise SystemExit(f"{where}: cannot set fields on a {type(obj).__name__}")
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names or key.startswith("_"):
            raise SystemExit(f"{where}.{key}: unknown parameter (known: {', '.join(sorted(n for n in names if not n.startswith('_')))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = apply_overrides(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            changes[key] = tuple(value)
        else:
            changes[key] = value
    return dataclasses.replace(obj, **changes)
