"""The throughput benchmark keeps working: a quick run against the included broker.

Only completion and the record counts are checked; timings are for people to read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_broker_throughput_quick_run_completes() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/broker_throughput.py", "--quick", "--only", "flows"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "flows: small: produced 20000 records" in out, out
    assert "flows: small: consumed 20000 records" in out, out
    assert "flows: large: consumed 512 records" in out, out
    rows = [line.split() for line in out.splitlines() if line.startswith("flows ")]
    assert {(r[1], r[2]) for r in rows} == {
        ("small", "produce"),
        ("small", "consume"),
        ("large", "produce"),
        ("large", "consume"),
    }
    assert all(r[3] in ("20000", "512") for r in rows)
