"""`quartier ca`: the community CA that issues the broker's and the gateways' certificates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

ca_app = typer.Typer(help="The community CA: TLS certificates for the broker, gateways and "
                          "services (a gateway certificate's CN is its address).",
                     no_args_is_help=True)

DIR_HELP = "The CA directory (keep it offline or at least 0700 on the server)."


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _now() -> datetime:
    return datetime.now(UTC)


def _print(doc: dict[str, object]) -> None:
    typer.echo(json.dumps(doc, sort_keys=True))


@ca_app.command("init")
def init_cmd(
    dir: Path = typer.Option(..., "--dir", help=DIR_HELP),
    community: str = typer.Option(..., "--community", help="The community id (topic level)."),
    days: int = typer.Option(3650, "--days", min=1),
) -> None:
    """Create the community CA (ca.key, ca.crt, an empty crl.pem); never overwrites."""
    from community.ca import CADirectory, CAError

    try:
        ca = CADirectory.init(dir, community, _now(), days)
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print({"ca": str(ca.cert_path), "crl": str(ca.crl_path), "community": community})


@ca_app.command("issue-gateway")
def issue_gateway_cmd(
    dir: Path = typer.Option(..., "--dir", help=DIR_HELP),
    address: str = typer.Option(..., "--address", help="The gateway's EIP-55 address (0x…)."),
    out: Path = typer.Option(..., "--out", help="Where to write gateway.key, gateway.crt, ca.crt."),
    csr: Path | None = typer.Option(None, "--csr", help="Sign this request made on the Pi "
                                    "instead of generating the key here."),
    days: int = typer.Option(825, "--days", min=1),
) -> None:
    """Issue a gateway's client certificate (CN = its address) at enrolment."""
    from cryptography import x509

    from community.ca import CADirectory, CAError

    try:
        request = x509.load_pem_x509_csr(csr.read_bytes()) if csr is not None else None
        bundle = CADirectory(dir).issue_gateway(address, out, _now(), days, request)
    except (CAError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _print({"address": address, "cert": str(bundle.cert), "ca": str(bundle.ca),
            "key": str(bundle.key) if bundle.key else None})


@ca_app.command("issue-server")
def issue_server_cmd(
    dir: Path = typer.Option(..., "--dir", help=DIR_HELP),
    host: list[str] = typer.Option(..., "--host", help="Broker host name or IP (repeatable; "
                                   "the first is the CN)."),
    out: Path = typer.Option(..., "--out", help="Where to write server.key, server.crt, ca.crt."),
    days: int = typer.Option(825, "--days", min=1),
) -> None:
    """Issue the broker's server certificate."""
    from community.ca import CADirectory, CAError

    try:
        bundle = CADirectory(dir).issue_server(host, out, _now(), days)
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print({"hosts": host, "cert": str(bundle.cert), "key": str(bundle.key),
            "ca": str(bundle.ca)})


@ca_app.command("issue-client")
def issue_client_cmd(
    dir: Path = typer.Option(..., "--dir", help=DIR_HELP),
    name: str = typer.Option(..., "--name", help="Service account, e.g. quartier-ingest "
                             "(the ACL file names it)."),
    out: Path = typer.Option(..., "--out"),
    days: int = typer.Option(825, "--days", min=1),
) -> None:
    """Issue a client certificate for a server-side service (ingest, the web app)."""
    from community.ca import CADirectory, CAError

    try:
        bundle = CADirectory(dir).issue_client(name, out, _now(), days)
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print({"name": name, "cert": str(bundle.cert), "key": str(bundle.key),
            "ca": str(bundle.ca)})


@ca_app.command("revoke")
def revoke_cmd(
    dir: Path = typer.Option(..., "--dir", help=DIR_HELP),
    subject: str = typer.Argument(..., help="A gateway address, host or service name."),
    reason: str = typer.Option("unspecified", "--reason"),
) -> None:
    """Revoke every certificate of SUBJECT and rewrite crl.pem (then restart the broker)."""
    from community.ca import CADirectory, CAError

    ca = CADirectory(dir)
    try:
        revoked = ca.revoke(subject, _now(), reason)
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print({"revoked": [f"{e.serial:x}" for e in revoked], "crl": str(ca.crl_path)})


@ca_app.command("crl")
def crl_cmd(dir: Path = typer.Option(..., "--dir", help=DIR_HELP)) -> None:
    """Re-sign crl.pem for another 30 days (quartier-ca-crl.timer does it weekly)."""
    from community.ca import CADirectory, CAError

    try:
        path = CADirectory(dir).refresh_crl(_now())
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    _print({"crl": str(path)})


@ca_app.command("list")
def list_cmd(dir: Path = typer.Option(..., "--dir", help=DIR_HELP)) -> None:
    """Every certificate issued, as JSON lines."""
    from dataclasses import asdict

    from community.ca import CADirectory, CAError

    try:
        entries = CADirectory(dir).issued()
    except (CAError, OSError) as exc:
        raise _fail(str(exc)) from None
    for e in entries:
        doc = asdict(e)
        doc["serial"] = f"{e.serial:x}"
        _print(doc)


def register(app: typer.Typer) -> None:
    app.add_typer(ca_app, name="ca")
