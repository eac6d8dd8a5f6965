"""Shared fixtures: the repo's specs and a deterministic torch set-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
