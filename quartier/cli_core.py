"""Commands of the core: gateway keys, signing readings by hand, verifying a log."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer

from quartier import keys as keyfiles
from quartier import reading as rd

keys_app = typer.Typer(help="Gateway keys (secp256k1; the address is the gateway's id).",
                       no_args_is_help=True)
readings_app = typer.Typer(help="Sign readings by hand (devices the gateway has no driver for).",
                           no_args_is_help=True)

PASSPHRASE_ENV = "QUARTIER_KEY_PASSPHRASE"


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def passphrase_from(passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text().rstrip("\n")
        except OSError as exc:
            raise fail(f"cannot read passphrase file {passphrase_file}: {exc.strerror}") from None
    return os.environ.get(PASSPHRASE_ENV) or None


def load_key(path: Path, passphrase_file: Path | None = None) -> keyfiles.GatewayKey:
    try:
        return keyfiles.read(path, passphrase_from(passphrase_file))
    except keyfiles.KeyFileError as exc:
        raise fail(str(exc)) from None


@keys_app.command("new")
def keys_new(
    out: Path = typer.Option(..., "--out", help="Directory for gateway.key (created if missing)."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Encrypt with a passphrase (prompted, "
                                 f"or --passphrase-file, or ${PASSPHRASE_ENV})."),
    passphrase_file: Path | None = typer.Option(None, "--passphrase-file"),
) -> None:
    """Create a new gateway key (mode 0600, never overwritten); print its address last."""
    passphrase = None
    if encrypt:
        passphrase = passphrase_from(passphrase_file) or typer.prompt(
            "Passphrase", hide_input=True, confirmation_prompt=True)
    try:
        path, key = keyfiles.write_new(out, passphrase)
    except keyfiles.KeyFileError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {out / keyfiles.KEY_FILENAME}: {exc.strerror}") from None
    typer.echo(f"wrote {path} ({'encrypted' if passphrase else 'unencrypted'}, mode 0600)")
    typer.echo(key.address)


@keys_app.command("show")
def keys_show(
    key: Path = typer.Option(..., "--key", help="A gateway.key file."),
    passphrase_file: Path | None = typer.Option(None, "--passphrase-file"),
) -> None:
    """Print the address of a key file."""
    typer.echo(load_key(key, passphrase_file).address)


def _parse_measurements(pairs: list[str]) -> dict[str, int]:
    m: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise fail(f"--m {pair!r}: expected NAME=INTEGER, e.g. --m e_imp_wh=12345")
        try:
            m[name] = int(value)
        except ValueError:
            raise fail(f"--m {pair!r}: {value!r} is not an integer (use fixed units: Wh, W, "
                       "0.1 V, mA, mHz)") from None
    if not m:
        raise fail("give at least one measurement with --m NAME=INTEGER")
    return m


@readings_app.command("sign")
def readings_sign(
    key: Path = typer.Option(..., "--key", help="The gateway.key file."),
    state: Path = typer.Option(..., "--state", help="Directory keeping seq/prev between calls."),
    dev: str = typer.Option(..., "--dev", help="Device id, e.g. inverter or linky."),
    ts: int | None = typer.Option(None, "--ts", help="Milliseconds since epoch (default: now)."),
    m: list[str] = typer.Option([], "--m", help="Measurement NAME=INTEGER, repeatable."),
    passphrase_file: Path | None = typer.Option(None, "--passphrase-file"),
) -> None:
    """Sign one reading, continue the chain kept in --state, print its envelope."""
    gk = load_key(key, passphrase_file)
    values = _parse_measurements(m)
    state.mkdir(parents=True, exist_ok=True)
    state_file = state / "chain.json"
    head = rd.ChainHead()
    if state_file.exists():
        try:
            s = json.loads(state_file.read_text())
            if s["gw"] != gk.address:
                raise fail(f"{state_file} belongs to gateway {s['gw']}, not {gk.address}")
            head = rd.ChainHead(int(s["seq"]), str(s["prev"]))
        except (ValueError, KeyError) as exc:
            raise fail(f"{state_file} is damaged ({exc}); refusing to restart the chain") from None
    reading = rd.next_reading(head, gk.address, dev, ts if ts is not None else int(time.time() * 1000),
                              values)
    try:
        signed = rd.sign(gk.private, reading)
    except rd.ReadingError as exc:
        raise fail(str(exc)) from None
    # Persist the new head before printing: a printed reading is never signed twice.
    tmp = state_file.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump({"gw": gk.address, "seq": reading.seq, "prev": signed.body_hash}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state_file)
    sys.stdout.write(signed.envelope().decode() + "\n")


def verify_cmd(
    file: Path = typer.Argument(..., help="Envelopes, one JSON object per line ('-' for stdin)."),
) -> None:
    """Verify signatures and each gateway's chain; print a JSON summary; exit 0 only if whole."""
    from quartier.audit import audit

    try:
        lines = sys.stdin.readlines() if str(file) == "-" else file.read_text().splitlines()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None
    report = audit(lines)
    typer.echo(json.dumps(report.as_dict()))
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(readings_app, name="readings")
    app.command("verify")(verify_cmd)
