"""The weekly digest, received by a real SMTP server (aiosmtpd) that requires STARTTLS with
a self-signed certificate made here."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from community.bills.digest import SmtpConfig, collect, compose, send
from community.bills.ledger import set_member, settings, unsubscribe
from community.bills.statement import BillsError
from community.settlement.run import period_bounds
from quartier.cli import app
from tests.bills.billsim import Month, free_port

WEEK_END = period_bounds("2024-06-06")[0]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "smtp.crt", tmp / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage, bool]] = []
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, _class=EmailMessage, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg, session.ssl is not None))
        self.raw.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Controller, Inbox, Path]]:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=ctx,
                        require_starttls=True)
    server.start()
    try:
        yield server, inbox, cert
    finally:
        server.stop()


def _market(month: Month) -> None:
    """An open offer, an expired one, and a delivery bob has not confirmed yet."""
    from community.app import tables

    tables.metadata.create_all(month.engine)
    with month.engine.begin() as conn:
        ins = conn.execute(tables.offers.insert().values(
            member_id="alice", kind="goods", description="Courgettes du jardin", unit="KG",
            quantity=3000, status="open", created_at=WEEK_END - 86400, category="vegetables"))
        conn.execute(tables.offers.insert().values(
            member_id="erin", kind="hours", description="Old offer", unit="HOUR", quantity=100,
            status="open", created_at=WEEK_END - 86400, expires_at=WEEK_END - 3600))
        offer_id = ins.inserted_primary_key[0]  # type: ignore[index]
        conn.execute(tables.trades.insert().values(
            offer_id=offer_id, buyer="bob", seller="alice", unit="KG",
            quantity=1000, pay_unit="HOUR", pay_amount=25, description="Courgettes du jardin",
            status="awaiting", created_at=WEEK_END - 3600))
        set_member(conn, "bob", lang="en", email="bob@example.org")
        set_member(conn, "carol", lang="fr", email="carol@example.org")
        set_member(conn, "erin", lang="en")  # no e-mail: no digest


def test_digest_over_starttls_in_each_members_language(month: Month, smtp: tuple[Controller, Inbox, Path]) -> None:
    server, inbox, cert = smtp
    _market(month)
    with month.engine.connect() as conn:
        items = collect(conn, WEEK_END, "https://quartier.example")
    assert [d.member for d in items] == ["bob", "carol"]
    cfg = SmtpConfig("127.0.0.1", server.port, "digest@quartier.example", cafile=str(cert))
    assert send([compose(d, cfg.sender) for d in items], cfg) == 2

    got = {rcpt[0]: (msg, tls) for rcpt, msg, tls in inbox.messages}
    assert set(got) == {"bob@example.org", "carol@example.org"}
    bob, tls = got["bob@example.org"]
    assert tls, "the message was sent before STARTTLS"
    body = bob.get_content()
    assert bob["Subject"].startswith("Your week in the neighbourhood")
    assert bob["Content-Language"] == "en"
    week = items[0].week
    assert f"from neighbours' roofs: {week.community_wh} Wh" in body and week.community_wh > 0
    assert "Courgettes du jardin — 3.000 kg (Alice Martin)" in body
    assert "Old offer" not in body  # expired
    assert "Courgettes du jardin: 0.25 h to Alice Martin, awaiting your confirmation" in body
    token = settings_token(month, "bob")
    assert f"https://quartier.example/bills/unsubscribe?token={token}" in body
    assert bob["List-Unsubscribe"] == f"<https://quartier.example/bills/unsubscribe?token={token}>"
    # the link is in the header as is, not as an encoded word that clients would not follow
    assert all(b"\nList-Unsubscribe: <https://quartier.example/bills/unsubscribe?token=" in raw
               for raw in inbox.raw)

    carol, _ = got["carol@example.org"]
    text = carol.get_content()
    assert carol["Subject"].startswith("Votre semaine dans le quartier")
    assert "Bonjour Carol Petit," in text and "Ne plus recevoir ces e-mails" in text
    assert "Aucun paiement ne vous attend." in text

    # the unsubscribe link's token stops the digest
    with month.engine.begin() as conn:
        assert unsubscribe(conn, token) == "bob"
        assert unsubscribe(conn, "not-a-token") is None
        assert [d.member for d in collect(conn, WEEK_END, "https://q")] == ["carol"]


def settings_token(month: Month, member: str) -> str:
    with month.engine.connect() as conn:
        token = settings(conn)[member].unsubscribe_token
    assert token
    return token


def test_digest_refuses_unverified_tls_and_clear_text(month: Month, smtp: tuple[Controller, Inbox, Path]) -> None:
    server, inbox, _ = smtp
    _market(month)
    with month.engine.connect() as conn:
        msgs = [compose(d, "q@example.org") for d in collect(conn, WEEK_END, "https://q")]
    with pytest.raises(BillsError, match=r"TLS with 127\.0\.0\.1.*failed"):
        send(msgs, SmtpConfig("127.0.0.1", server.port))  # the self-signed cert is not trusted
    plain = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    plain.start()
    try:
        with pytest.raises(BillsError, match="does not offer STARTTLS"):
            send(msgs, SmtpConfig("127.0.0.1", plain.port))
    finally:
        plain.stop()
    assert inbox.messages == []


def test_digest_cli_sends(month: Month, smtp: tuple[Controller, Inbox, Path]) -> None:
    server, inbox, cert = smtp
    _market(month)
    r = CliRunner().invoke(app, [
        "bills", "digest", "--send", "--week-end", "2024-06-06", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(server.port), "--ca-file", str(cert), "--from", "q@example.org",
        "--database-url", month.url])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == '{"sent": 2}' and len(inbox.messages) == 2
    with month.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from bills_members where digest")).scalar() == 3
