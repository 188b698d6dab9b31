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
