"""Real peers for the simulator tests: pymodbus servers and simulator processes on a pty."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import free_port, wait_port  # noqa: F401  (re-exported to the tests)

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "tests" / "fixtures" / "captures"
QUARTIER = str(Path(sys.executable).with_name("quartier"))




def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def sim_pty() -> Iterator[Callable[..., str]]:
    """Start `quartier sim tic|p1 --pty …` and return the pty path it prints first."""
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> str:
        proc = start([QUARTIER, "sim", *args])
        procs.append(proc)
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.stderr.read() if proc.stderr else "")
        return path

    yield run
    for p in procs:
        stop(p)


@pytest.fixture
def sunspec_sim() -> Iterator[Callable[..., int]]:
    """Start `quartier sim sunspec …` on a free port."""
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> int:
        port = free_port()
        proc = start([QUARTIER, "sim", "sunspec", "--host", "127.0.0.1", "--port", str(port), *args])
        procs.append(proc)
        assert proc.stdout is not None
        # wait for the "listening" line: a probe connection would take the single-client slot
        line = proc.stdout.readline()
        assert "listening" in line, (line, proc.stderr.read() if proc.stderr else "")
        return port

    yield run
    for p in procs:
        stop(p)
