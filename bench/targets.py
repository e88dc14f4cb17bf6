"""Every speed target of the package, measured by one command.

Runs the benchmarks one after another (never at once: they would share the
CPUs and measure each other), keeps each one's full output in
``--out`` (default ``bench-results/``), and ends with every "target" line
they printed, so one run answers "which targets hold on this machine":

  throughput.py --variants all   protected/unprotected req/s on Flask, FastAPI and Quart,
                                 SQLite and Redis, HTTP Basic headers, the peer, A/A controls
  ldap_sign_in.py                LDAP sign-ins through the form against raw ldap3, on each backend
  saml_acs.py                    SAML ACS posts against python3-saml's own validation, on each backend
  session_memory.py              100,000 live sessions: worker memory, and req/s against 10 sessions

    python bench/targets.py [--only throughput,ldap] [--quick]

``--quick`` runs each with fewer and shorter rounds (a smoke test of the
harness, not figures to quote). About 40 minutes in full.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICK_LDAP, QUICK_SAML = ["--rounds", "2", "--seconds", "3"], ["--rounds", "2", "--posts", "300"]
# name: (arguments of a full run, of a --quick one); "<script>-<backend>" runs that script on that backend.
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "throughput": (["--variants", "all", "--rounds", "7"],
                   ["--variants", "all", "--rounds", "2", "--duration", "1", "--warmup", "1"]),
    "ldap": (["--rounds", "5"], QUICK_LDAP),
    "ldap-fastapi": (["--rounds", "5", "--backend", "fastapi"], [*QUICK_LDAP, "--backend", "fastapi"]),
    "ldap-quart": (["--rounds", "5", "--backend", "quart"], [*QUICK_LDAP, "--backend", "quart"]),
    "saml": ([], QUICK_SAML),
    "saml-fastapi": (["--backend", "fastapi"], [*QUICK_SAML, "--backend", "fastapi"]),
    "saml-quart": (["--backend", "quart"], [*QUICK_SAML, "--backend", "quart"]),
    "memory": ([], ["--sessions", "5000"]),
}
SCRIPTS = {"throughput": "throughput.py", "ldap": "ldap_sign_in.py", "saml": "saml_acs.py",
           "memory": "session_memory.py"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (not figures to quote)")
    parser.add_argument("--out", default="bench-results", help="folder for each benchmark's full output")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    summary: list[str] = []
    failed: list[str] = []
    for name in chosen:
        full, quick = BENCHES[name]
        command = [sys.executable, str(HERE / SCRIPTS[name.split("-")[0]]), *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (out / f"{name}.txt").write_text(done.stdout)
        print(f"   {time.monotonic() - started:.0f} s, exit status {done.returncode};"
              f" output in {out / (name + '.txt')}", file=sys.stderr, flush=True)
        lines = [line for line in done.stdout.splitlines()
                 if line.startswith(("target", "A/A control", "!!"))]
        if done.returncode != 0 or not any(line.startswith("target") for line in lines):
            failed.append(name)
            lines.append(f"!! {name} did not finish (exit status {done.returncode}); see its output")
        summary += [f"[{name}] {line}" for line in lines]

    print("\n".join(["", "targets:" + (" (--quick: not figures to quote)" if args.quick else ""), *summary]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
