from dataclasses import dataclass, field

import pytest

from eavatar.config import ConfigError, apply_overrides, load_params, to_cli_args


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
    with pytest.raises(ConfigError, match=r"params.yaml:x: unknown key --inner.nope"):
        apply_overrides(Outer(), {"inner": {"nope": 1}}, "params.yaml:x")


def test_a_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"params.yaml:x: error parsing --inner.a"):
        apply_overrides(Outer(), {"inner": {"a": "three"}}, "params.yaml:x")


def test_overrides_become_the_flags_ns_train_takes():
    assert to_cli_args({"pipeline": {"model": {"init_mesh": "", "background": [1, 1, 1]}}, "max_num_iterations": 5}) == [
        "--pipeline.model.init-mesh", "", "--pipeline.model.background", "1", "1", "1", "--max-num-iterations", "5"]


def test_load_params_errors_name_file_and_section(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {a: 1}\n")
    assert load_params(p, "train") == {"a": 1}
    with pytest.raises(ConfigError, match="section 'render' is missing"):
        load_params(p, "render")
    p.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(p, "train")
