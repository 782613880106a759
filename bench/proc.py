"""Run a command as a child process and measure its wall time and peak RSS (wait4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    cpu_s: float = 0.0  # user + system CPU of the child and the children it waited for


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `cmd` to completion; stdout is captured, stderr goes to a file (never a full pipe)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace")[-500:]
            print(f"bench: {' '.join(cmd[:3])} failed ({proc.returncode}): {tail}", file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(elapsed, usage.ru_maxrss / 1024, proc.returncode, stdout, cpu)


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
