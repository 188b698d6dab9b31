"""params.yaml: one section per stage, applied to the stage's config dataclass through tyro.

A stage's defaults live in its config dataclass (the training's in ``eavatar.ns.method``, what
``ns-train eavatar --help`` shows); a params section holds only overrides, nested as the
dataclass is. They are parsed by tyro, as ``ns-train`` parses its flags, so a key that names no
field and a value of the wrong type fail the same way in both, here as one line that names the
params key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml

from eavatar.errors import EAvatarError

T = TypeVar("T")


class ConfigError(EAvatarError, ValueError):
    """A params file or section that cannot be read or applied; the message names file and key."""


def load_params(path: str | Path, section: str) -> dict[str, Any]:
    """The ``section`` mapping of a params file (an empty section is ``{}``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if section not in data:
        raise ConfigError(f"{path}: section '{section}' is missing")
    if data[section] is None:
        return {}
    if not isinstance(data[section], dict):
        raise ConfigError(f"{path}: section '{section}' must be a mapping of keys to values")
    return data[section]


def to_cli_args(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """Nested overrides as the flags ``ns-train`` takes: {"a": {"b_c": 1}} -> ["--a.b-c", "1"]."""
    args: list[str] = []
    for key, value in overrides.items():
        name = f"{prefix}{key}".replace("_", "-")
        if isinstance(value, dict) and value:
            args += to_cli_args(value, f"{prefix}{key}.")
        elif isinstance(value, (list, tuple)):
            args += [f"--{name}", *(str(v) for v in value)]
        else:
            args += [f"--{name}", str(value)]
    return args


def apply_overrides(default: T, overrides: dict[str, Any], where: str) -> T:
    """``default`` (a config dataclass) with ``overrides`` applied; ``where`` names the params section."""
    import tyro

    if not dataclasses.is_dataclass(default):
        raise ConfigError(f"{where}: cannot set fields on a {type(default).__name__}")
    if not overrides:
        return default
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages), contextlib.redirect_stdout(messages):
            return tyro.cli(tyro.conf.FlagConversionOff[type(default)], default=default, args=to_cli_args(overrides))
    except SystemExit:
        raise ConfigError(f"{where}: {tyro_reason(messages.getvalue())}") from None


def tyro_reason(text: str) -> str:
    """tyro's boxed error report as one line: the reason, and the field it suggests."""
    lines = [re.sub(r"[│╭╮╰╯─\s]+", " ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines[1:] if line.strip("-")]  # the first is the box title
    unknown = next((line for line in lines if line.startswith("Unrecognized options:")), None)
    if unknown is not None:
        flag = unknown.split(":", 1)[1].split(",")[0].strip()
        guess = next((line.split()[0] for line in lines if re.match(r"--[a-z]", line)), None)
        return f"unknown key {flag}" + (f" (did you mean {guess}?)" if guess else "")
    reason = next((line for line in lines if line.startswith("Error parsing")), lines[0] if lines else "invalid value")
    return reason[0].lower() + reason[1:]
