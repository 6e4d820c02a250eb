"""Error paths: locked and corrupted databases, bad directories; messages name the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import state
from state import (
    RocksDBStore,
    StoreCorruptedError,
    StoreLockedError,
    StoreOpenError,
    read_offset,
    wipe,
)

ROOT = Path(state.__file__).resolve().parent.parent


def test_store_opened_twice_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "counts"
    first = RocksDBStore("counts", path)
    with pytest.raises(StoreLockedError, match=r"'counts' at .*counts is locked.*--state-dir"):
        RocksDBStore("counts", path)
    first.close()
    RocksDBStore("counts", path).close()  # free again once closed


def test_store_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "counts"
    code = (
        "import sys; from pathlib import Path; from state import RocksDBStore\n"
        "s = RocksDBStore('counts', Path(sys.argv[1]))\n"
        "print('ready', flush=True); sys.stdin.read(); s.close()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="stop the other worker"):
            RocksDBStore("counts", path)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    RocksDBStore("counts", path).close()


def test_corrupted_store_says_it_can_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "counts"
    store = RocksDBStore("counts", path)
    store.write_batch([(b"a", b"1")], changelog_offset=1)
    store.close()
    for manifest in path.glob("MANIFEST-*"):
        manifest.write_bytes(b"garbage" * 10)
    with pytest.raises(StoreCorruptedError, match=r"wiped.*rebuilt from the changelog"):
        RocksDBStore("counts", path)
    with pytest.raises(StoreCorruptedError):
        read_offset(path)
    wipe(path)
    assert not path.exists()
    with RocksDBStore("counts", path) as fresh:
        assert fresh.changelog_offset() is None
    wipe(tmp_path / "never-existed")


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "counts"
    path.write_text("not a database")
    with pytest.raises(StoreOpenError, match=r"'counts' at .*could not be opened"):
        RocksDBStore("counts", path)
