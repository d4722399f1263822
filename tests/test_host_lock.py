"""Host lock: shared holders coexist, an exclusive holder waits for them, and a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from sarvam_pipeline.host_lock import HostLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the shared mode needs fcntl.flock")


def acquire_in_thread(lock: HostLock, exclusive: bool, release: threading.Event) -> threading.Event:
    """Hold ``lock`` in a new thread until ``release`` is set; return the event set once it is held."""
    acquired = threading.Event()

    def hold() -> None:
        with lock.hold(exclusive=exclusive):
            acquired.set()
            release.wait(60)

    threading.Thread(target=hold, daemon=True).start()
    return acquired


def test_shared_holders_coexist(tmp_path):
    release = threading.Event()
    first = acquire_in_thread(HostLock(tmp_path / "host.lock"), False, release)
    second = acquire_in_thread(HostLock(tmp_path / "host.lock"), False, release)

    assert first.wait(10)
    assert second.wait(10)
    release.set()


@pytest.mark.parametrize("first_exclusive, second_exclusive", [(False, True), (True, False), (True, True)])
def test_holder_blocks_conflicting_mode(tmp_path, first_exclusive, second_exclusive):
    release_first, release_second = threading.Event(), threading.Event()
    first = acquire_in_thread(HostLock(tmp_path / "host.lock"), first_exclusive, release_first)
    assert first.wait(10)

    second = acquire_in_thread(HostLock(tmp_path / "host.lock"), second_exclusive, release_second)
    assert not second.wait(0.5)

    release_first.set()
    assert second.wait(10)
    release_second.set()


def test_killed_holder_frees_lock(tmp_path):
    path = tmp_path / "host.lock"
    script = (
        "import sys, time\n"
        "from sarvam_pipeline.host_lock import HostLock\n"
        f"with HostLock({str(path)!r}).hold(exclusive=True):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"

    release = threading.Event()
    waiting = acquire_in_thread(HostLock(path), True, release)
    assert not waiting.wait(0.5)

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert waiting.wait(10)
    release.set()


def test_lock_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SARVAM_HOST_LOCK", str(tmp_path / "custom.lock"))
    assert HostLock().path == tmp_path / "custom.lock"


def test_holding_creates_missing_folder(tmp_path):
    path = tmp_path / "missing" / "host.lock"
    with HostLock(path).hold(exclusive=True):
        assert path.exists()
