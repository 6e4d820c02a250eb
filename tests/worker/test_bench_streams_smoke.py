"""The stream-processor benchmark runs end to end in its quick mode (flows and the ceiling)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_streams_vs_peers_quick() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "bench" / "streams_vs_peers.py"),
            "--quick",
            "--only",
            "raw,flows",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [
        line for line in result.stdout.splitlines() if line.startswith(("stateless", "stateful"))
    ]
    assert any(line.split()[1] == "flows" for line in lines)
