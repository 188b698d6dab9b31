"""Importers: published head-avatar dataset layouts -> our subject format (docs/importers.md).

Each module turns one layout into a `Plan`; `import_subject` writes it atomically and
validates it with `load_subject`. None of them needs the FLAME or BFM model files. The
splits follow an evaluation protocol (protocol.py), recorded in transforms.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from eavatar.data.importers import gha, imavatar, insta, vhap
from eavatar.data.importers.common import ImportOptions, SourceError, write_plan

FORMATS = {"vhap": vhap.build, "gha": gha.build, "insta": insta.build, "imavatar": imavatar.build}
MULTI_SOURCE = {"vhap"}  # a VHAP subject spans exports: the union, and FREE exported apart


def import_subject(fmt: str, src: str | Path | Sequence[str | Path], out: str | Path, opts: ImportOptions | None = None) -> Path:
    """Read `src` (vhap: one or more exports of one subject) in layout `fmt` and write the subject folder `out`.

    Nothing is left behind on error.
    """
    if fmt not in FORMATS:
        raise SourceError(f"format: unknown {fmt!r} (have {', '.join(FORMATS)})")
    sources = [Path(s) for s in ([src] if isinstance(src, (str, Path)) else src)]
    if not sources or (len(sources) > 1 and fmt not in MULTI_SOURCE):
        raise SourceError(f"src: format {fmt} reads one source folder, got {len(sources)} (only vhap merges several exports of a subject)")
    for s in sources:
        if not s.is_dir():
            raise SourceError(f"{s}: (folder): not found")
    opts = opts or ImportOptions()
    plan = FORMATS[fmt](sources, opts) if fmt in MULTI_SOURCE else FORMATS[fmt](sources[0], opts)
    return write_plan(plan, out, opts)


__all__ = ["FORMATS", "ImportOptions", "SourceError", "import_subject"]
