"""What every benchmark script does with the servers it starts and the load tool it needs."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
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


# -- what the benches measure about the processes they run ----------------------------------------

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (a server's workers), from /proc; [] once it is gone."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_starved() -> float | None:
    """Seconds since boot during which a runnable task waited for a CPU (Linux PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
        return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def package_rev() -> str:
    """The commit measured, marked when the package's code differs from it."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                            "dash_enterprise_auth"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")
