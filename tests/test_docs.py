"""README.md and docs/ against the code: links resolve, commands parse, params keys exist (scripts/check_docs.py)."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_docs", ROOT / "scripts" / "check_docs.py")
check_docs = importlib.util.module_from_spec(_spec)
sys.modules["check_docs"] = check_docs
_spec.loader.exec_module(check_docs)

DOCS = check_docs.doc_files()
IDS = [p.relative_to(ROOT).as_posix() for p in DOCS]


def test_the_readme_and_every_docs_page_are_checked():
    assert {"README.md", "docs/method.md", "docs/video.md", "docs/experiment-log.md"} <= set(IDS)


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_relative_links_resolve(page):
    assert not check_docs.check_links(page), "\n".join(map(str, check_docs.check_links(page)))


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_commands_parse_with_flags_that_exist(page):
    problems = check_docs.check_commands(page)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_params_keys_exist(page):
    problems = check_docs.check_params_keys(page)
    assert not problems, "\n".join(map(str, problems))


def test_the_checker_fails_on_a_broken_link_a_stale_flag_and_a_missing_params_key(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Its section\n")
    good = (
        "# Readme\n\nSee [the page](docs/page.md) and [its section](docs/page.md#its-section).\n\n"
        "```bash\neavatar train --params params.yaml --data SUBJECT \\\n    --out artifacts/train\n"
        "ns-train eavatar --data SUBJECT --pipeline.model.avatar.control.enabled False\n```\n\n"
        "`eavatar ablation queue --jobs 2`; `dvc exp run -S train.max_num_iterations=3000`; "
        "`train_video.optimizers.generator.optimizer.lr` and `ablation.variants.full.pipeline.model.init_mesh`.\n"
    )
    (tmp_path / "README.md").write_text(good)
    assert check_docs.check(root=tmp_path) == []

    (tmp_path / "README.md").write_text(
        good
        + "\nA [broken link](docs/nowhere.md), a [missing anchor](docs/page.md#no-such-heading).\n\n"
        + "```bash\neavatar train --params params.yaml --max-steps 3000\n```\n\n"
        + "`ns-train eavatar --pipeline.model.no-such-field 1`, `eavatar nosuchstage`.\n\n"
        + "`dvc exp run -S train.max_steps=3000`\n"
    )
    found = "\n".join(map(str, check_docs.check(root=tmp_path)))
    assert "README.md:" in found
    assert "broken link docs/nowhere.md" in found
    assert "no heading #no-such-heading" in found
    assert "`eavatar train` has no flag --max-steps" in found
    assert "`ns-train eavatar` has no flag --pipeline.model.no-such-field" in found
    assert "no such eavatar subcommand" in found
    assert "params key train.max_steps exists neither" in found
    assert len(found.splitlines()) == 6, found
