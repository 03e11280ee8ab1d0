"""Real peers for the driver tests: pymodbus servers and simulator processes on a pty."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "tests" / "fixtures" / "captures"
QUARTIER = str(Path(sys.executable).with_name("quartier"))
IMAGE_SERVER = Path(__file__).with_name("sunspec_image_server.py")




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
def image_server() -> Iterator[Callable[[str], int]]:
    """Serve a register map laid out by pysunspec2 (an independent implementation)."""
    procs: list[subprocess.Popen[str]] = []

    def run(layout: str) -> int:
        port = free_port()
        procs.append(start([sys.executable, str(IMAGE_SERVER), str(port), layout]))
        wait_port(port)
        return port

    yield run
    for p in procs:
        stop(p)


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


class ImageSim:
    """A fixed register image on the simulated RS485 line (firmware_sim.rtu_line), for maps
    the plant simulator does not lay out: the image can be swapped between reads."""

    def __init__(self, regs: list[int]) -> None:
        from firmware_sim.faults import FaultDice, Faults

        self.regs = regs
        self.faults = Faults()
        self.dice = FaultDice(self.faults, 0)
        self.requests = 0
        self.injected: dict[str, int] = {}

    def silent_now(self) -> bool:
        return False

    def image(self) -> list[int]:
        return list(self.regs)

    def inject(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1


def sunspec_image(models: list[tuple[int, Mapping[str, object]]]) -> list[int]:
    """A SunSpec map from 40000 laid out by pysunspec2: marker, models, end marker."""
    import struct

    import sunspec2.device as ssdevice

    mb = b"SunS"
    for mid, values in models:
        m = ssdevice.Model(mid)
        for k, v in values.items():
            getattr(m, k).value = v
        mb += m.get_mb()
    mb += b"\xff\xff\x00\x00"
    return list(struct.unpack(f">{len(mb) // 2}H", mb))
