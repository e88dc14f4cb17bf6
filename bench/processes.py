"""What every benchmark script does with the servers it starts and the load tool it needs."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from typing import Callable


class BenchError(RuntimeError):
    """The run cannot be measured meaningfully; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(main: Callable[[], int]) -> None:
    """Exit with main()'s status, or 2 with the reason when the run cannot be measured."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        sys.exit(2)


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
