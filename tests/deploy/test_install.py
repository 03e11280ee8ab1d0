"""The install scripts, run for real into a scratch root, and the systemd units they
install checked by systemd's own `systemd-analyze verify` and `security`."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cryptography import x509

from community.ingest.config import load_config as load_ingest_config
from gateway import config as gwconfig

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_UNITS = sorted(p.name for p in (REPO / "systemd").iterdir()
                       if p.suffix in (".service", ".timer"))
LONG_RUNNING = ["quartier-gateway.service", "quartier-ingest.service", "quartier-app.service",
                "quartier-chain.service", "quartier-settle.service"]
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
             "ProtectHome": "yes", "User": "quartier"}


def base_python() -> str:
    """The interpreter this test's virtualenv was made from (the scripts make their own)."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def env_with_dependencies() -> dict[str, str]:
    # The scripts install the package with --no-deps (no network in tests); its
    # dependencies come from this test's own environment.
    return {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sources, so building the package leaves the checkout untouched."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns(".venv", ".git", "node_modules", "__pycache__", "*.egg-info",
                                    ".mypy_cache", ".hypothesis", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("quartier", "gateway", "community", "firmware-sim"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    return src


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(REPO / "deploy" / script), *args],
                            env=env_with_dependencies(), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    """One box installed as gateway and community server (the single-box case)."""
    r = tmp_path_factory.mktemp("root")
    common = ["--root", str(r), "--source", str(source), "--python", base_python(),
              "--pip-args", "--no-deps"]
    run_script("install-gateway.sh", *common, "--", "--community", "lesvignes",
               "--mqtt-url", "mqtts://mqtt.lesvignes.example:8883", "--no-serial-scan", "--yes")
    run_script("install-server.sh", *common, "--community", "lesvignes", "--broker-host",
               "mqtt.lesvignes.example", "--anvil", "/opt/quartier/anvil/bin/anvil")
    return r


def test_gateway_install_creates_user_venv_unit_config(root: Path) -> None:
    passwd = (root / "etc/passwd").read_text()
    assert re.search(r"^quartier:x:\d+:\d+:[^:]*:/var/lib/quartier:/usr/sbin/nologin$", passwd,
                     re.M)
    assert re.search(r"^dialout:x:\d+:(.*,)?quartier(,|$)", (root / "etc/group").read_text(), re.M)

    quartier = root / "opt/quartier/venv/bin/quartier"
    out = subprocess.run([str(quartier), "gateway", "--help"], env=env_with_dependencies(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "setup" in out.stdout

    unit = root / "etc/systemd/system/quartier-gateway.service"
    assert unit.read_text() == (REPO / "systemd/quartier-gateway.service").read_text()

    cfg = gwconfig.load(root / "etc/quartier/gateway.toml")
    assert cfg.community == "lesvignes" and cfg.mqtt.tls
    assert cfg.key == Path("/etc/quartier/gateway.key")
    assert cfg.outbox.parent == Path("/var/lib/quartier")  # the unit's StateDirectory
    for secret in ("etc/quartier/gateway.key", "etc/quartier/tls/gateway.key"):
        assert stat.S_IMODE((root / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((root / "etc/quartier").stat().st_mode) == 0o750
    address = json.loads((root / "etc/quartier/gateway.key").read_text())["address"]
    csr = x509.load_pem_x509_csr((root / "etc/quartier/tls/gateway.csr").read_bytes())
    assert csr.subject.rfc4514_string() == f"CN={address}"


def test_server_install_sets_up_broker_ca_and_config(root: Path) -> None:
    m = root / "etc/mosquitto"
    assert (m / "conf.d/quartier.conf").read_text() == (REPO / "deploy/mosquitto/quartier.conf").read_text()
    assert (m / "quartier/acl").read_text() == (REPO / "deploy/mosquitto/acl").read_text()
    for f in ("ca.crt", "crl.pem", "server.crt", "server.key"):
        assert (m / "quartier" / f).exists(), f
    assert stat.S_IMODE((m / "quartier/server.key").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "var/lib/quartier-ca").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "var/lib/quartier-ca/ca.key").stat().st_mode) == 0o600

    cfg = load_ingest_config(root / "etc/quartier/community.toml")
    assert cfg.community == "lesvignes" and cfg.mqtt.tls
    assert cfg.mqtt.cert == "/etc/quartier/tls/quartier-ingest.crt"
    for name in ("quartier-ingest", "quartier-server"):
        assert (root / "etc/quartier/tls" / f"{name}.crt").exists()
    assert (root / "etc/quartier/chain.env").read_text() == "ANVIL=/opt/quartier/anvil/bin/anvil\n"
    for u in SYSTEMD_UNITS:
        assert (root / "etc/systemd/system" / u).read_text() == (REPO / "systemd" / u).read_text()


def test_install_is_idempotent(root: Path, source: Path) -> None:
    before = (root / "var/lib/quartier-ca/ca.crt").read_bytes()
    config = (root / "etc/quartier/gateway.toml").read_bytes()
    run_script("install-server.sh", "--root", str(root), "--source", str(source), "--python",
               base_python(), "--pip-args", "--no-deps", "--community", "lesvignes",
               "--broker-host", "mqtt.lesvignes.example")
    run_script("install-gateway.sh", "--root", str(root), "--source", str(source), "--python",
               base_python(), "--pip-args", "--no-deps", "--",
               "--community", "other", "--mqtt-url", "mqtt://x:1883", "--yes")
    assert (root / "var/lib/quartier-ca/ca.crt").read_bytes() == before  # CA kept
    assert (root / "etc/quartier/gateway.toml").read_bytes() == config  # config kept


def _systemd_root(root: Path) -> None:
    """What `systemd-analyze --root` needs beyond our files: systemd's own units and the
    few programs our units run."""
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True,
                    dirs_exist_ok=True)
    for prog in ("/bin/sh", "/usr/bin/install", "/bin/systemctl"):
        dest = root / prog.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(prog), dest)


def test_units_pass_systemd_analyze_verify(root: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed (Debian package systemd)")
    _systemd_root(root)
    units = [str(root / "etc/systemd/system" / u) for u in SYSTEMD_UNITS]
    result = subprocess.run([analyze, "verify", f"--root={root}", *units],
                            capture_output=True, text=True, timeout=60)
    # Unknown keys and bad values are only warnings: any output is a failure.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    scores = {}
    for u in LONG_RUNNING:
        out = subprocess.run([analyze, "security", "--offline=true", f"--root={root}",
                              str(root / "etc/systemd/system" / u)],
                             capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out.stdout + out.stderr)
        assert m, out.stdout + out.stderr
        scores[u] = (float(m.group(1)), m.group(2))
    # systemd's scale: 0 (fully sandboxed) to 10 (unprotected); "OK" is below 2.
    assert all(level == "OK" for _, level in scores.values()), scores


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_unit_hardening_keys(unit: str) -> None:
    text = (REPO / "systemd" / unit).read_text()
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    for k, v in HARDENING.items():
        assert keys.get(k) == [v], (unit, k)
    assert keys.get("StateDirectory"), unit
    assert keys.get("Restart") in (["always"], ["on-failure"]), unit
    assert "ReadWritePaths" not in keys, unit  # state goes to StateDirectory only
    if unit == "quartier-gateway.service":
        assert keys["SupplementaryGroups"] == ["dialout"]
        assert "PrivateDevices" not in keys  # the meter's serial port must stay visible
        assert keys["DevicePolicy"] == ["closed"]
