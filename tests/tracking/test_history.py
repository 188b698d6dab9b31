"""history.csv: written and read in one place; columns stay put, a late key gets its own column."""

import math

from eavatar.tracking.history import append_history, read_history, truncate_history, write_history


def test_append_then_read(tmp_path):
    path = tmp_path / "run" / "history.csv"
    append_history(path, 0, {"loss/total": 1.0, "train/psnr": 20.0})
    append_history(path, 25, {"train/psnr": 22.5, "loss/total": 0.5})
    append_history(path, 50, {"loss/total": 0.25})  # a value not logged this step: an empty cell
    table = read_history(path)
    assert list(table.columns) == ["step", "loss/total", "train/psnr"]
    assert table["step"].tolist() == [0, 25, 50] and table["loss/total"].tolist() == [1.0, 0.5, 0.25]
    assert math.isnan(table["train/psnr"].iloc[2])


def test_a_late_key_widens_the_file_instead_of_being_dropped(tmp_path):
    path = tmp_path / "history.csv"
    append_history(path, 0, {"loss/total": 1.0})
    append_history(path, 25, {"loss/total": 0.5, "loss/lpips": 0.1})
    table = read_history(path)
    assert list(table.columns) == ["step", "loss/total", "loss/lpips"]
    assert math.isnan(table["loss/lpips"].iloc[0]) and table["loss/lpips"].iloc[1] == 0.1


def test_truncate_keeps_the_steps_before_a_resume(tmp_path):
    path = write_history(tmp_path / "history.csv", [{"step": s, "loss": 1.0 / (s + 1)} for s in (0, 25, 50, 75)])
    truncate_history(path, 50)
    assert read_history(path)["step"].tolist() == [0, 25]
