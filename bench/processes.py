"""What every benchmark script does with the servers it starts and the load tool it needs."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL; safe to call twice."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so every finally stops its servers


def prepare() -> bool:
    """Turn SIGTERM into SystemExit; False (with a message) when wrk is missing."""
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True
