"""What every benchmark script does with the servers it starts and the load tool it needs."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence


class BenchError(RuntimeError):
    """The run cannot be measured meaningfully; the message says why."""


@dataclass(frozen=True)
class Backend:
    """How one Dash backend is served: the server program and the module:variable it loads."""

    label: str
    program: str  # gunicorn, uvicorn or hypercorn
    target: str
    env: tuple[tuple[str, str], ...] = ()


BACKENDS: dict[str, Backend] = {
    "flask": Backend("Flask", "gunicorn", "examples.app:server"),
    "fastapi": Backend("FastAPI", "uvicorn", "bench.backend_app:server", (("DASH_BACKEND", "fastapi"),)),
    "quart": Backend("Quart", "hypercorn", "bench.backend_app:server", (("DASH_BACKEND", "quart"),)),
}


def server_options(program: str, port: int, workers: int) -> list[str]:
    """The same settings for every app a program serves: loopback, ``workers`` worker
    processes, warnings only and no access log (gunicorn and hypercorn keep none by default)."""
    return {
        "gunicorn": ["--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                     "--worker-class", "sync", "--timeout", "60", "--log-level", "warning"],
        "uvicorn": ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                    "--log-level", "warning", "--no-access-log"],
        "hypercorn": ["--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                      "--log-level", "warning"],
    }[program]


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


@dataclass
class AppServer:
    """A server master we started, in its own process group so we can stop all of it."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        stop_group(self.process)


def start_app_server(backend: Backend, env: dict[str, str], workers: int, log_dir: Path, port: int | None = None,
                     options: Sequence[str] = (), timeout: float = 120) -> AppServer:
    """The backend's app under its server on a loopback port, in its own process group,
    with ``options`` added to the usual ones; returns once the package's health route answers."""
    import requests

    port = port or free_port()
    log_path = log_dir / f"{backend.program}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", backend.program, *server_options(backend.program, port, workers), *options,
             backend.target],
            cwd=Path(__file__).resolve().parents[1], env={**env, **dict(backend.env)}, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    app = AppServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(f"{backend.program} exited with {process.returncode}:\n{app.log_tail()}")
            try:
                requests.get(app.url + "/_dash-auth/health", timeout=5)
                return app
            except (requests.ConnectionError, requests.Timeout):  # workers still importing Dash
                time.sleep(0.2)
        raise BenchError(f"{backend.program} did not answer within {timeout:.0f} s:\n{app.log_tail()}")
    except BaseException:
        app.stop()  # never leave a server behind
        raise
