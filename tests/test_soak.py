"""The soak benchmark's short form: mixed load for 3 minutes, no line
lost, no client failing, descriptors, threads and tasks back to their
level (the hour-long form, which judges memory growth, is bench/soak.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_short_form():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--short"],
                            capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "none lost or repeated" in result.stdout
