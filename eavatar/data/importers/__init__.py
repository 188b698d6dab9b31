"""Importers: published head-avatar dataset layouts -> our subject format (docs/importers.md).

Each module turns one layout into a `Plan`; `import_subject` writes it atomically and
validates it with `load_subject`. None of them needs the FLAME or BFM model files.
"""

from __future__ import annotations

from pathlib import Path

from eavatar.data.importers import gha, imavatar, insta, vhap
from eavatar.data.importers.common import ImportOptions, SourceError, write_plan

FORMATS = {"vhap": vhap.build, "gha": gha.build, "insta": insta.build, "imavatar": imavatar.build}


def import_subject(fmt: str, src: str | Path, out: str | Path, opts: ImportOptions | None = None) -> Path:
    """Read `src` in layout `fmt` and write the subject folder `out` (nothing is left behind on error)."""
    if fmt not in FORMATS:
        raise SourceError(f"format: unknown {fmt!r} (have {', '.join(FORMATS)})")
    src = Path(src)
    if not src.is_dir():
        raise SourceError(f"{src}: (folder): not found")
    opts = opts or ImportOptions()
    return write_plan(FORMATS[fmt](src, opts), out, opts)


__all__ = ["FORMATS", "ImportOptions", "SourceError", "import_subject"]
