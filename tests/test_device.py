"""How many CPU threads torch is given: every allowed core, or what OMP_NUM_THREADS says."""

from __future__ import annotations

import os

import pytest
import torch

from binarycat.model.device import configure_cpu, cpu_threads


def test_every_allowed_core_without_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-2", "two", ""])
def test_a_value_that_is_not_a_positive_count_is_ignored(monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert cpu_threads() == len(os.sched_getaffinity(0))


def test_omp_num_threads_caps_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        configure_cpu()
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        configure_cpu()
        assert cpu_threads() == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
