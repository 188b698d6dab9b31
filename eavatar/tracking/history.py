"""Training histories (``history.csv``): one CSV format, written and read here only.

A history is a ``step`` column then one column per logged value (``loss/rgb``, ``train/psnr``,
...), what ``dvc plots show`` draws and what the ablation and notebooks read back. Columns
keep their order once written; a value first logged later gets a new column (earlier rows
empty) instead of being dropped, so no curve goes missing silently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd


def _cell(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value):.6g}"


def _header(path: Path) -> list[str]:
    with path.open() as f:
        return f.readline().rstrip("\n").split(",")


def append_history(path: str | Path, step: int, values: Mapping[str, float]) -> None:
    """Add the row ``step`` of ``values`` ({column: number}) to the history at ``path``.

    The header (``step``, then the keys sorted) is written with the first row; a key that is
    not a column yet widens the file (a rewrite, rare: new keys appear in the first logs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.stat().st_size == 0:
        path.write_text(",".join(["step", *sorted(values)]) + "\n")
    header = _header(path)
    new = sorted(set(values) - set(header))
    if new:
        rows = read_history(path)
        for key in new:
            rows[key] = float("nan")
        header = [*header, *new]
        write_history(path, rows[header].to_dict("records"))
    with path.open("a") as f:
        f.write(",".join([str(int(step)), *(_cell(values.get(k)) for k in header[1:])]) + "\n")


def write_history(path: str | Path, rows: Iterable[Mapping[str, float]]) -> Path:
    """A whole history at once (each row has ``step``); columns in order of first appearance."""
    path = Path(path)
    rows = list(rows)
    columns = list(dict.fromkeys(["step", *(k for row in rows for k in row)]))
    lines = [",".join(columns)]
    lines += [",".join([str(int(row["step"])), *(_cell(row.get(k)) for k in columns[1:])]) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def truncate_history(path: str | Path, first_step: int) -> None:
    """Drop the rows at or after ``first_step`` (a resumed run logs them again)."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [lines[0], *(line for line in lines[1:] if int(line.split(",", 1)[0]) < first_step)]
    path.write_text("\n".join(kept) + "\n")


def read_history(path: str | Path) -> pd.DataFrame:
    """The history at ``path`` as a table: ``step`` (int) and one float column per value, in file order."""
    table = pd.read_csv(path)
    if "step" not in table.columns:
        raise ValueError(f"{path}: not a training history (no 'step' column; header: {', '.join(table.columns)})")
    return table.astype({"step": int})
