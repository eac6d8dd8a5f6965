"""Shared fixtures: the repo's specs and a deterministic torch set-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The test suite (and so CI) draws the same fuzz examples every run: a failure in CI is then one
# anyone can rerun, not a new random draw that blocks an unrelated change.  `make fuzz` draws new
# examples, many more of them, to look for bugs.
_FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("suite", max_examples=200, derandomize=True, **_FUZZ)
settings.register_profile("explore", max_examples=3000, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").rglob("*.yaml"))  # specs/examples/ too


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Specs and doctests use repo-relative paths ("specs/resnet18.yaml").
    monkeypatch.chdir(ROOT)


def spec_id(path: Path) -> str:
    return path.relative_to(ROOT / "specs").with_suffix("").as_posix()


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    # Two cores on CI; more threads than cores only adds contention.
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    yield
