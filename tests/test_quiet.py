"""Our entry points show our output, not our dependencies' deprecation notices (eavatar/quiet.py)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from eavatar.quiet import KNOWN_WARNINGS, silence_known_warnings

ROOT = Path(__file__).resolve().parents[1]
#: Python's default warning filters in the child: no PYTHONWARNINGS of the caller's.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
JIT_NOTICE = "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."


def python(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with Python's default warning filters."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def recorded(message: str, category: type[Warning], module: str) -> list[str]:
    """The warnings shown when ``module`` warns ``message`` after :func:`silence_known_warnings`."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        silence_known_warnings()
        warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module)
    return [str(w.message) for w in shown]


def test_only_the_named_notices_from_the_named_modules_are_silenced():
    assert recorded(JIT_NOTICE, FutureWarning, "torch.jit._script") == []
    scaler = "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use `torch.amp.GradScaler('cuda', args...)` instead."
    assert recorded(scaler, FutureWarning, "nerfstudio.engine.trainer") == []
    # the same notice from another module, another notice from that module, another category: all shown
    assert recorded(JIT_NOTICE, FutureWarning, "eavatar.avatar.model") == [JIT_NOTICE]
    assert recorded(scaler, FutureWarning, "eavatar.ns.trainer") == [scaler]
    assert recorded("something else is deprecated", FutureWarning, "torch.jit._script") == ["something else is deprecated"]
    assert recorded(JIT_NOTICE, UserWarning, "torch.jit._script") == [JIT_NOTICE]
    assert all(category is not Warning for _, category, _ in KNOWN_WARNINGS), "never all warnings"


def test_eavatar_train_help_prints_no_warning():
    run = subprocess.run([sys.executable, "-m", "eavatar.cli.main", "train", "--help"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr, run.stderr


def test_the_cli_silences_nerfstudios_import_notice():
    """nerfstudio prints the notice when imported (the control); after ``eavatar``'s main it does not."""
    bare = python("import nerfstudio.cameras.camera_utils")
    assert "torch.jit.script" in bare.stderr, "nerfstudio no longer warns: remove its filter from eavatar/quiet.py"
    cli = python(
        "from eavatar.cli.main import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "import nerfstudio.cameras.camera_utils\n"
    )
    assert cli.returncode == 0, cli.stderr
    assert "Warning" not in cli.stderr, cli.stderr


@pytest.mark.slow
def test_notebook_02_first_cells_print_no_warning():
    """The cells above the editor widget: the subject, the avatar (a fresh clone's untrained one)."""
    cells = [c for c in json.loads((ROOT / "notebooks" / "02_expression_editing.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    code = "\n".join("".join(c["source"]) for c in cells[:2])
    run = python(code, cwd=ROOT / "notebooks")
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr, run.stderr
