from dataclasses import dataclass, field

import pytest

from eavatar.cli.params import apply_overrides, load_params


@dataclass
class Inner:
    a: int = 1
    t: tuple = (1.0, 2.0)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    b: float = 0.5


def test_apply_overrides_nested():
    out = apply_overrides(Outer(), {"inner": {"a": 3, "t": [0.0, 1.0]}, "b": 2.0}, "params.yaml:x")
    assert out.inner.a == 3 and out.inner.t == (0.0, 1.0) and out.b == 2.0


def test_unknown_key_names_the_full_path():
    with pytest.raises(SystemExit, match=r"params.yaml:x.inner.nope: unknown parameter"):
        apply_overrides(Outer(), {"inner": {"nope": 1}}, "params.yaml:x")


def test_load_params_errors_name_file_and_section(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {a: 1}\n")
    assert load_params(p, "train") == {"a": 1}
    with pytest.raises(SystemExit, match="section 'render' is missing"):
        load_params(p, "render")
    p.write_text("train: [unclosed\n")
    with pytest.raises(SystemExit, match="not valid YAML"):
        load_params(p, "train")
