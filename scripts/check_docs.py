"""Docs that cannot rot silently: README.md and docs/*.md against the code they describe.

    python scripts/check_docs.py     # print every problem, exit 1 if there is one

Three checks (tests/test_docs.py runs them in the default suite):

- links: every relative link and image resolves to a file, and its ``#anchor`` to a heading;
- commands: every ``eavatar ...`` and ``ns-train eavatar ...`` in a code block or an inline code
  span parses: the ``--help`` of its subcommand succeeds and every ``--flag`` it names is one that
  help lists (``eavatar``'s own argparse parsers; ``ns-train eavatar --help`` run once);
- params keys: every dotted key of a params.yaml section the docs name in code
  (``train.optimizers.generator``, ``-S ablation.seed=1``) exists in params.yaml or, for the
  sections that override training (``train``, ``train_video``, ``ablation.variants.<v>``), in
  the method's config (a prefix of one of ``ns-train eavatar``'s flags).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FLAG = re.compile(r"--[A-Za-z][\w.-]*")
#: Sections whose keys are overrides of ``ns-train eavatar``'s config.
TRAINING_SECTIONS = ("train", "train_video")
#: A dotted name whose last part is one of these is a file, not a params key.
FILE_SUFFIXES = {"py", "json", "yaml", "yml", "csv", "md", "ply", "pt", "png", "jpg", "mp4", "lock", "txt", "npz", "ckpt", "db", "glb", "obj", "task", "tflite", "sh", "ipynb"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every page of docs/."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# ---------------------------------------------------------------------------------------- links


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, punctuation out, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (repeated headings get -1, -2, ... as on GitHub)."""
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    out = set()
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def check_links(path: Path, root: Path = ROOT) -> list[Problem]:
    text = path.read_text()
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # links inside code are code
    problems = []
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = (path.relative_to(root).as_posix(), line_of(prose, match.start()))
        if not dest.exists():
            problems.append(Problem(*where, f"broken link {target}: {file_part} does not exist"))
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(Problem(*where, f"broken link {target}: no heading #{anchor} in {dest.name}"))
    return problems


# ------------------------------------------------------------------------------------- commands


def code_snippets(text: str) -> list[tuple[int, str]]:
    """(line, code) of every fenced block's lines (continuations joined) and every inline span."""
    out = []
    for block in FENCE.finditer(text):
        first = line_of(text, block.start(1))
        joined, start = "", None
        for k, line in enumerate(block.group(1).splitlines()):
            start = first + k if start is None else start
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            out.append((start, joined + line))
            joined, start = "", None
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    out += [(line_of(prose, m.start()), m.group(1)) for m in INLINE.finditer(prose)]
    return out


def command_in(code: str) -> list[str] | None:
    """The words of an ``eavatar ...`` or ``ns-train eavatar ...`` command in ``code``, else None."""
    code = re.sub(r"\s#.*$", "", code).replace("\\|", "|").strip()
    code = re.sub(r"^(\$\s+|\.venv/bin/|[A-Z_]+=\S+\s+)+", "", code)
    if not re.match(r"(eavatar|ns-train eavatar)(\s|$)", code):
        return None
    try:
        return shlex.split(code)
    except ValueError:
        return code.split()


@functools.lru_cache(maxsize=1)
def ns_train_flags() -> frozenset[str]:
    """The flags ``ns-train eavatar --help`` lists (it must succeed)."""
    env = dict(os.environ, COLUMNS="400", NO_COLOR="1")
    run = subprocess.run([sys.executable, "-m", "nerfstudio.scripts.train", "eavatar", "--help"], capture_output=True, text=True, env=env, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"ns-train eavatar --help failed: {run.stderr[-2000:]}")
    return frozenset(FLAG.findall(run.stdout)) | {"--help", "-h"}


def eavatar_parser(words: list[str]):
    """The argparse parser of ``eavatar <subcommand> ...`` and the subcommand words that chose it."""
    import argparse

    from eavatar.cli.main import build_parser

    parser, chosen = build_parser(), ["eavatar"]
    for word in words[1:]:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if word.startswith("-") or not subparsers or word not in subparsers[0].choices:
            break
        parser, chosen = subparsers[0].choices[word], chosen + [word]
    return parser, chosen


def check_command(words: list[str]) -> list[str]:
    """What is wrong with one documented command: a subcommand whose --help fails, unknown flags."""
    flags = [f for f in FLAG.findall(" ".join(words))]
    if words[0] == "ns-train":
        known = ns_train_flags()
        name = "ns-train eavatar"
    else:
        parser, chosen = eavatar_parser(words)
        name = " ".join(chosen)
        if len(chosen) == 1 and len(words) > 1 and not re.match(r"[-<{[]|\.\.\.", words[1]):
            return [f"`{' '.join(words[:2])}`: no such eavatar subcommand"]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                parser.parse_args(["--help"])
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                return [f"`{name} --help` failed: {out.getvalue().strip()[-300:]}"]
        known = set(parser._option_string_actions) | set(build_flags_of_root())
    norm = {k.replace("_", "-") for k in known}
    return [f"`{name}` has no flag {f}" for f in flags if f.replace("_", "-") not in norm]


@functools.lru_cache(maxsize=1)
def build_flags_of_root() -> tuple[str, ...]:
    from eavatar.cli.main import build_parser

    return tuple(build_parser()._option_string_actions)


def check_commands(path: Path, root: Path = ROOT) -> list[Problem]:
    problems = []
    for line, code in code_snippets(path.read_text()):
        words = command_in(code)
        if words:
            problems += [Problem(path.relative_to(root).as_posix(), line, what) for what in check_command(words)]
    return problems


# ----------------------------------------------------------------------------------- params keys


def params_sections(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text()) or {}


def key_pattern(sections) -> re.Pattern:
    names = "|".join(sorted(map(re.escape, sections), key=len, reverse=True))
    return re.compile(rf"(?<![\w./@<-])(?:{names})(?:\.[A-Za-z_]\w*)+(?![\w(./-])")


def in_params(params: dict, parts: list[str]) -> bool:
    node = params
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def in_method_config(parts: list[str]) -> bool:
    """``parts`` (below a training section) name a field of ``ns-train eavatar``'s config."""
    flag = "--" + ".".join(parts).replace("_", "-")
    return any(f.replace("_", "-") == flag or f.replace("_", "-").startswith(flag + ".") for f in ns_train_flags())


def key_exists(params: dict, key: str) -> bool:
    parts = key.split(".")
    if in_params(params, parts):
        return True
    if parts[0] in TRAINING_SECTIONS:
        return in_method_config(parts[1:])
    if parts[:2] == ["ablation", "variants"] and len(parts) > 3 and in_params(params, parts[:3]):
        return in_method_config(parts[3:])
    return False


def params_keys_in(text: str, sections) -> list[tuple[int, str]]:
    pattern, found = key_pattern(sections), []
    for line, code in code_snippets(text):
        for match in pattern.finditer(code):
            key = match.group(0)
            if key.rsplit(".", 1)[-1] in FILE_SUFFIXES:
                continue
            found.append((line, key))
    for match in re.finditer(r"params\.yaml:\s*`?([A-Za-z_][\w.]*\w)", text):  # "params.yaml: train.x" in prose
        if match.group(1).split(".")[0] in sections:
            found.append((line_of(text, match.start()), match.group(1)))
    return found


def check_params_keys(path: Path, root: Path = ROOT) -> list[Problem]:
    params = params_sections(root)
    problems = []
    for line, key in sorted(set(params_keys_in(path.read_text(), params))):
        if not key_exists(params, key):
            problems.append(Problem(path.relative_to(root).as_posix(), line, f"params key {key} exists neither in params.yaml nor in ns-train eavatar's config"))
    return problems


def check(paths: list[Path] | None = None, root: Path = ROOT) -> list[Problem]:
    """Every problem of ``paths`` (README.md and docs/ by default)."""
    problems = []
    for path in paths or doc_files(root):
        problems += check_links(path, root) + check_commands(path, root) + check_params_keys(path, root)
    return problems


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    found = check()
    print("\n".join(map(str, found)) or "docs: links, commands and params keys all resolve")
    sys.exit(1 if found else 0)
