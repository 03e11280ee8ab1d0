"""`quartier gateway run|status`: the gateway's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

gateway_app = typer.Typer(help="Run the gateway: poll devices, sign, store, publish.",
                          no_args_is_help=True)

CONFIG_HELP = "The gateway's TOML config (docs/gateway.md)."


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _config(path: Path):  # -> GatewayConfig
    from gateway.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None


@gateway_app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP),
    once: bool = typer.Option(False, "--once", help="Poll every device once, flush the outbox, "
                              "exit 0 (non-zero with the reason if it could not)."),
    timeout: float = typer.Option(30.0, "--timeout", help="With --once: how long to wait for the "
                                  "broker to acknowledge everything, in seconds."),
) -> None:
    """Run the gateway (forever, or one cycle with --once)."""
    import ssl

    from gateway import logs
    from gateway.outbox import OutboxError
    from gateway.runtime import Gateway
    from quartier import clock as clock_mod
    from quartier import keys as keyfiles
    from quartier.cli_core import passphrase_from

    cfg = _config(config)
    logs.setup(cfg.log_level)
    try:
        key = keyfiles.read(cfg.key, passphrase_from(cfg.passphrase_file))
    except keyfiles.KeyFileError as exc:
        raise _fail(f"{cfg.path}: [gateway] key: {exc}") from None
    try:
        clock = clock_mod.from_environment()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        gw = Gateway(cfg, key, clock=clock)
    except OutboxError as exc:
        raise _fail(str(exc)) from None
    except (OSError, ssl.SSLError) as exc:  # TLS files of [mqtt]: unreadable or not PEM
        raise _fail(f"{cfg.path}: [mqtt] TLS files (ca, cert, key): {exc}") from None
    if once:
        problems = gw.run_once(timeout)
        for p in problems:
            typer.echo(f"error: {p}", err=True)
        typer.echo(json.dumps({"last_seq": gw.outbox.head.seq, "outbox_depth": gw.outbox.depth,
                               "problems": problems}))
        if problems:
            raise typer.Exit(1)
        return
    gw.run_forever()


@gateway_app.command("status")
def status(config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP)) -> None:
    """Print the gateway's status as JSON: outbox, devices, broker connection."""
    from gateway.status import read_status

    cfg = _config(config)
    typer.echo(json.dumps(read_status(cfg), indent=2, sort_keys=True))


@gateway_app.command("check-config")
def check_config(config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP)) -> None:
    """Parse the config and say what it configures (errors name the key and line)."""
    cfg = _config(config)
    typer.echo(json.dumps({
        "community": cfg.community, "key": str(cfg.key), "outbox": str(cfg.outbox),
        "broker": f"{cfg.mqtt.host}:{cfg.mqtt.port}", "tls": cfg.mqtt.tls,
        "devices": [{"name": d.name, "driver": d.spec.driver, "role": d.spec.role,
                     "interval_s": d.interval_s} for d in cfg.devices],
        "proxies": [{"listen": f"{p.host}:{p.port}", "device": p.device, "writes": p.writes}
                    for p in cfg.proxies],
    }, indent=2))


def register(app: typer.Typer) -> None:
    from gateway.setup_wizard import setup_command  # config wizard (deploy/)

    gateway_app.command("setup")(setup_command)
    app.add_typer(gateway_app, name="gateway")
