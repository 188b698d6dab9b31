"""The ablation's tables: per-variant summary statistics, the markdown table, paired differences."""

import numpy as np
import pytest

from eavatar.reports.ablation import markdown_table, paired_deltas, summarise


def test_summary_is_mean_and_sample_std_and_never_averages_a_partial_column():
    rows = [
        {"variant": "a", "seed": 0, "psnr": 20.0, "lpips": 0.1},
        {"variant": "a", "seed": 1, "psnr": 22.0, "lpips": None},
        {"variant": "b", "seed": 0, "psnr": 25.0, "lpips": 0.2},
    ]
    a, b = summarise(rows, ["a", "b"])
    assert a["n"] == 2 and a["psnr_mean"] == 21.0 and a["psnr_std"] == pytest.approx(np.std([20, 22], ddof=1))
    assert a["lpips_mean"] is None  # one seed had no LPIPS: no number rather than a partial mean
    assert b["psnr_std"] == 0.0 and b["ssim_mean"] is None
    table = markdown_table([a, b])
    assert "| a | 2 | 21.00 ± 1.41 |" in table and "**25.00 ± 0.00**" in table and "n/a" in table


def test_paired_deltas_pair_by_seed():
    rows = [
        {"variant": "base", "seed": 0, "psnr": 20.0},
        {"variant": "base", "seed": 1, "psnr": 30.0},
        {"variant": "x", "seed": 1, "psnr": 31.0},
        {"variant": "x", "seed": 0, "psnr": 23.0},
    ]
    mean, std, n = paired_deltas(rows, "x", "base", "psnr")
    assert (mean, n) == (2.0, 2) and std == pytest.approx(np.std([3.0, 1.0], ddof=1))
    assert paired_deltas(rows, "x", "base", "ssim") is None


def rows_of(values: dict[tuple[str, int], float]) -> list[dict]:
    return [{"variant": v, "seed": s, "psnr": x, "ssim": 0.9, "lpips": 0.05, "experiment": f"{v}-s{s}-x", "rev": "0123456789abcdef"} for (v, s), x in values.items()]


def test_crops_written_by_the_run_are_read_back_by_the_report(tmp_path):
    from eavatar.pipeline.ablation import CROPS_KEY as written_key
    from eavatar.pipeline.ablation import write_crops
    from eavatar.reports.ablation import CROPS_KEY, load_crops

    assert CROPS_KEY == written_key
    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    renders = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    path = write_crops(tmp_path / "crops.png", ["a t=0", "a t=3", "b t=1"], truth, renders)
    for source in (path, path.read_bytes()):
        labels, t, r = load_crops(source)
        assert labels == ["a t=0", "a t=3", "b t=1"]
        assert all((x == y).all() for x, y in zip(t + r, truth + renders))
    with pytest.raises(ValueError, match="crops of different sizes"):
        write_crops(tmp_path / "bad.png", ["a"], [truth[0]], [truth[0][:4]])


def test_figures_and_page_from_rows_histories_and_crops(tmp_path):
    import pandas as pd

    from eavatar.reports.ablation import figures, write_report

    variants, seeds = ["base", "ctrl"], [0, 1]
    rows = rows_of({("base", 0): 20.0, ("base", 1): 21.0, ("ctrl", 0): 20.5, ("ctrl", 1): 21.7})
    steps = np.arange(0, 250, 25)
    histories = {(v, s): pd.DataFrame({"step": steps, "train/psnr": 20 + steps / 100 + s, "train/num_control": 5.0, "train/num_gaussians": 100.0}) for v in variants for s in seeds}
    cell = np.zeros((4, 6, 3), np.uint8)
    crops = {v: (["seq t=0", "seq t=1"], [cell, cell], [cell + k, cell + k]) for k, v in enumerate(variants)}
    images = figures(crops, histories, variants, seeds, tmp_path / "images")
    assert [p.name for p in images] == ["ablation_crops.png", "ablation_training.png"] and all(p.stat().st_size > 0 for p in images)
    protocol = {"subject": "data/synthetic", "split": "test", "max_steps": 250, "seeds": seeds, "variants": {v: {} for v in variants}}
    table = markdown_table(summarise(rows, variants))
    write_report(tmp_path / "ablation.md", table, protocol, rows, images)
    page = (tmp_path / "ablation.md").read_text()
    assert table in page and "seeds [0, 1]" in page and "![ablation_crops](images/ablation_crops.png)" in page
    assert "**ctrl** − base (paired by seed): PSNR (dB) +0.600 ± 0.141" in page
    assert "| ctrl | 1 | `ctrl-s1-x` | `0123456` |" in page  # the experiment each number comes from
    assert "dvc exp run --queue" in page
