"""Run a server (the MLflow UI) as a child that never outlives ``kiln ui``.

``mlflow server`` starts uvicorn workers and job consumers that survive a SIGTERM to their parent,
so the server gets a session (process group) of its own, and when ``kiln ui`` ends for any reason
(the server exits, Ctrl-C, SIGTERM from a service manager or a test) the whole group is sent SIGTERM
and, after ``grace`` seconds, SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Sequence


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we cannot signal still exists
        return True
    return True


def _gone(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait up to ``seconds`` for every process of ``proc``'s group to exit (reaping ``proc``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(proc.pid):
            return True
        time.sleep(0.1)
    return False


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``, SIGKILL what is left after ``grace`` seconds, reap ``proc``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _gone(proc, wait):
            break
    proc.poll()


def serve(cmd: Sequence[str], env: dict[str, str] | None = None, grace: float = 10.0) -> int:
    """Run ``cmd`` in a new session until it exits or this process is interrupted or terminated;
    returns its exit code, or 130 after Ctrl-C; after SIGTERM raises ``SystemExit(143)``. The
    server's process group is stopped in every case."""
    proc = subprocess.Popen(list(cmd), env=env, start_new_session=True)

    def on_sigterm(signum, frame):
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop_group(proc, grace)
        signal.signal(signal.SIGTERM, previous)
