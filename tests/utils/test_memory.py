"""retain_freed_memory: big tensors freed and allocated again stop page-faulting."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from utils.memory import retain_freed_memory

# A step-like pattern of 33 MB tensors; prints the minor page faults per repeat.
CHILD = """
import resource, sys, torch
from utils.memory import retain_freed_memory
if sys.argv[1] == "1":
    assert retain_freed_memory()
x = torch.randn(8, 64, 128, 128)
def step():
    a = x * 2; b = a + 1; c = b.relu(); d = torch.cat([a, c]); return float(d.sum())
for _ in range(2):
    step()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 5)
"""


def _faults(retain: bool) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, "1" if retain else "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_blocks_are_reused_instead_of_faulting_in_again():
    plain, kept = _faults(False), _faults(True)
    # each repeat allocates ~200 MB: ~49,000 fresh 4 KiB pages when malloc maps and unmaps them
    assert plain > 20_000
    assert kept < 0.5 * plain, (plain, kept)


def test_reports_whether_it_applied():
    assert retain_freed_memory() is (sys.platform.startswith("linux")
                                      and platform.libc_ver()[0] == "glibc")
