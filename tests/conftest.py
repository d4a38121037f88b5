"""Shared fixtures: one smoke-preset cache per test session (dose + defocus scenes, in-process)."""

from __future__ import annotations

import os
import warnings

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """A cache with every dataset of the dose and defocus series at the smoke preset."""
    from hrtem_tl.datasets import simulate_series

    cache = tmp_path_factory.mktemp("cache")
    for series in ("dose", "defocus"):
        simulate_series(series, "smoke", cache, scheduler="synchronous", progress=False)
    return cache
