"""A throwaway redis-server for the benchmarks: loopback only, no persistence, own temp dir.

The benchmarks start their own Redis rather than using one that may already
run on the machine, so the store starts empty, nothing is written to disk
(``--save "" --appendonly no``: disk writes would be noise, not sign-on cost)
and nothing survives the run. The caller must call :meth:`RedisServer.stop`
(in a ``finally``), as for the gunicorns.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from processes import stop_group


class RedisUnavailable(RuntimeError):
    """redis-server is missing or did not come up; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    """One raw RESP PING, so this helper needs no client library."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    process: subprocess.Popen
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def rss_kib(self) -> int | None:
        """redis-server's own resident memory, to put the app worker's figure in context."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; then remove the temp dir. Safe to call twice."""
        stop_group(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(timeout: float = 15) -> RedisServer:
    """Start redis-server on a free 127.0.0.1 port; return once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server not found: apt-get install redis-server")
    directory = Path(tempfile.mkdtemp(prefix="dash-auth-bench-redis-"))
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", str(directory / "redis.log"), "--daemonize", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches only the script, whose finally stops it
    )
    server = RedisServer(process, port, directory)
    try:  # also on SIGTERM or Ctrl-C while waiting: the caller has no handle to stop yet
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with {process.returncode}:\n{server.log_tail()}")
            if _ping(port):
                return server
            time.sleep(0.1)
        raise RedisUnavailable(
            f"redis-server did not answer PING within {timeout:.0f} s:\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise
