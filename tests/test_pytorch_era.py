"""The PyTorch 1.x dispatch scale moved from HELP's desktop GPUs (netcut.validation.pytorch_era)."""

from __future__ import annotations

import numpy as np
import pytest

from netcut import load_hardware
from netcut.validation.pytorch_era import HELP_BATCH1_GPUS, era_dispatch_scale, era_profile


@pytest.fixture(scope="module")
def era():
    return era_dispatch_scale()


def test_the_scale_is_the_median_of_one_fit_per_batch1_gpu_column(era):
    assert list(era["per_column"]) == list(HELP_BATCH1_GPUS)
    values = np.array(list(era["per_column"].values()))
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert era["median"] == pytest.approx(float(np.median(values)))
    assert era["min"] == values.min() and era["max"] == values.max()
    # PyTorch 1.x on those hosts cost more per op than the 2.x-based profiles assume
    assert era["median"] > 1.0


def test_each_column_is_fitted_on_its_reference_networks_only(monkeypatch):
    from netcut.validation import help_nb201

    data = help_nb201.load_help_nb201()
    seen = []
    real_rows = type(data).rows

    def spy(self, column, indices):
        seen.append((column, sorted(int(i) for i in indices)))
        return real_rows(self, column, indices)

    monkeypatch.setattr(type(data), "rows", spy)
    era_dispatch_scale(("titan_rtx_1",))
    assert seen == [("titan_rtx_1", sorted(int(i) for i in data.reference))]


def test_era_profile_moves_eager_dispatch_only():
    base = load_hardware("jetson-nano")
    moved = era_profile(base, 1.5)
    assert moved.name == base.name  # the report keys its rows by device name
    assert moved.overhead["eager"].dispatch_us["default"] == pytest.approx(
        1.5 * base.overhead["eager"].dispatch_us["default"])
    assert moved.overhead["fused"].dispatch_us["default"] == base.overhead["fused"].dispatch_us["default"]
    assert moved.overhead["eager"].kernel_us == base.overhead["eager"].kernel_us
    assert "PyTorch 1.x" in moved.sources["overhead.eager.dispatch_us.default"]


def test_the_docs_quote_the_scale_the_code_computes(era):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    quoted = f"{era['median']:.2f}"
    schema = " ".join((root / "docs" / "hardware-schema.md").read_text(encoding="utf-8").split())
    assert f"median ×{quoted}" in schema and f"--scale dispatch={quoted}" in schema
    assert f"×{era['min']:.2f}–{era['max']:.2f}" in schema
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert f"--scale dispatch={quoted}" in readme and f"about {quoted}x more" in readme
