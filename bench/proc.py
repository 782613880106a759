"""Run a command as a child process and measure its wall time and peak RSS (wait4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out_chunks = []
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
        out_chunks.append(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(
            f"bench: {' '.join(cmd[:3])} failed ({proc.returncode}): {err[-500:]}", file=sys.stderr
        )
    return Run(elapsed, usage.ru_maxrss / 1024, proc.returncode, b"".join(out_chunks).decode())


def ensure_debian_package(binary: str, package: str) -> str | None:
    """Path of `binary`, installing Debian's `package` when missing (root + apt-get)."""
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"bench: {binary} missing and cannot install {package} (need root and apt-get)",
              file=sys.stderr)  # fmt: skip
        return None
    print(f"bench: installing Debian package {package} ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False,
                   capture_output=True)  # fmt: skip
    return shutil.which(binary)
