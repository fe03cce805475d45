"""stages.common.device: peak memory figures."""
from pathlib import Path

import pytest
import torch

from stages.common import device


def test_peak_rss_is_the_processes_high_water_mark():
    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("needs Linux /proc")
    out = device.peak_memory_mib(torch.device("cpu"))
    hwm = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    assert set(out) == {"peak_rss_mib"} and out["peak_rss_mib"] == pytest.approx(hwm / 1024, rel=0.05)


def test_cuda_adds_torchs_peak_allocation(monkeypatch):
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda dev: 3 * 2**20)
    assert device.peak_memory_mib(torch.device("cuda"))["peak_cuda_mib"] == 3.0
