"""The weekly digest e-mail: new offers and wants, the member's week, open payment requests.

`compose` is pure (figures in, an `EmailMessage` out, in the member's language, with an
unsubscribe link in the body and in the List-Unsubscribe header, RFC 2369 / RFC 8058).
`collect` reads the week from SQL; `send` talks SMTP: STARTTLS on the submission port by
default (RFC 3207), or implicit TLS (RFC 8314) with `ssl=True`; the server's certificate is
always verified (a private CA file can be given).
"""

from __future__ import annotations

import email.policy
import smtplib
import ssl as ssl_mod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from community.bills import i18n
from community.bills.i18n import t
from community.bills.ledger import app_table, load_period, settings
from community.bills.statement import BillsError, Statement, member_statement

WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Offer:
    kind: str  # energy | hours | goods | want
    description: str
    unit: str
    quantity: int
    by: str  # display name


@dataclass(frozen=True)
class Request:
    description: str
    pay_unit: str
    pay_amount: int
    seller: str  # display name


@dataclass(frozen=True)
class DigestInput:
    member: str
    name: str
    email: str
    lang: str
    start: int
    end: int
    week: Statement
    offers: tuple[Offer, ...]
    requests: tuple[Request, ...]
    unsubscribe_url: str


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "quartier@localhost"
    username: str | None = None
    password: str | None = None
    ssl: bool = False  # implicit TLS (port 465); otherwise STARTTLS, required
    cafile: str | None = None
    timeout: float = 30.0


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/bills/unsubscribe?token={quote(token)}"


def compose(d: DigestInput, sender: str) -> EmailMessage:
    lang = d.lang
    w = d.week
    lines = [t(lang, "digest.hello", name=d.name), ""]
    lines.append(t(lang, "digest.week", start=_day(d.start), end=_day(d.end - 1)))
    for key in ("community_wh", "grid_wh", "shared_wh", "exported_wh"):
        lines.append(f"  {t(lang, key)}: {i18n.wh(getattr(w, key))}")
    lines.append(f"  {t(lang, 'self_sufficiency')}: {i18n.pct(w.self_sufficiency_bp, lang)}")
    lines += ["", t(lang, "digest.offers")]
    if d.offers:
        for o in d.offers:
            lines.append(f"  - [{t(lang, 'digest.kind.' + o.kind)}] {o.description} — "
                         f"{i18n.amount(o.quantity, o.unit, lang)} ({o.by})")
    else:
        lines.append("  " + t(lang, "digest.no_offers"))
    lines += ["", t(lang, "digest.requests")]
    if d.requests:
        for r in d.requests:
            lines.append("  - " + t(lang, "digest.request", description=r.description,
                                    amount=i18n.amount(r.pay_amount, r.pay_unit, lang), seller=r.seller))
    else:
        lines.append("  " + t(lang, "digest.no_requests"))
    lines += ["", "-- ", t(lang, "digest.unsubscribe", url=d.unsubscribe_url)]
    # Headers up to RFC 5322's 998 characters: folding a long List-Unsubscribe URL would
    # turn it into an encoded word that mail clients no longer recognise as a link.
    msg = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    msg["Subject"] = f"{t(lang, 'digest.subject')} ({_day(d.start)})"
    msg["From"] = sender
    msg["To"] = d.email
    msg["Date"] = formatdate(d.end, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg["List-Unsubscribe"] = f"<{d.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content("\n".join(lines) + "\n")
    msg["Content-Language"] = lang  # after set_content, which resets Content-* headers
    return msg


def collect(conn: Connection, end: int, base_url: str) -> list[DigestInput]:
    """The digests due for the week ending at `end` (Unix seconds): every member with an
    e-mail address who has not unsubscribed."""
    start = end - WEEK_S
    data = load_period(conn, start, end)
    cfg = settings(conn)
    names = data.names
    offers: list[tuple[str, Offer]] = []
    table = app_table(conn, "offers")
    if table is not None:
        c = table.c
        q = sa.select(table).where(c.created_at >= start, c.created_at < end, c.status == "open",
                                   c.quantity > 0)
        if "expires_at" in c:
            q = q.where(sa.or_(c.expires_at.is_(None), c.expires_at > end))
        for r in conn.execute(q.order_by(c.created_at, c.id)):
            offers.append((r.member_id, Offer(r.kind, r.description, r.unit, int(r.quantity),
                                              names.get(r.member_id, r.member_id))))
    trades = app_table(conn, "trades")
    requests: dict[str, list[Request]] = {}
    if trades is not None:
        for r in conn.execute(sa.select(trades).where(trades.c.status == "awaiting").order_by(trades.c.id)):
            requests.setdefault(r.buyer, []).append(
                Request(r.description, r.pay_unit, int(r.pay_amount), names.get(r.seller, r.seller)))
    out = []
    for member, s in sorted(cfg.items()):
        if not s.email or not s.digest or not s.unsubscribe_token:
            continue
        out.append(DigestInput(
            member=member, name=names.get(member, member), email=s.email, lang=s.lang,
            start=start, end=end, week=member_statement(data, member, s.tariff_ct_kwh),
            offers=tuple(o for by, o in offers if by != member),
            requests=tuple(requests.get(member, ())),
            unsubscribe_url=unsubscribe_url(base_url, s.unsubscribe_token),
        ))
    return out


def send(messages: Sequence[EmailMessage], cfg: SmtpConfig) -> int:
    """Send over one SMTP session with TLS; returns how many were accepted."""
    context = ssl_mod.create_default_context(cafile=cfg.cafile)
    try:
        if cfg.ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with smtp:
            smtp.ehlo()
            if not cfg.ssl:
                if not smtp.has_extn("starttls"):
                    raise BillsError(f"SMTP server {cfg.host}:{cfg.port} does not offer STARTTLS; "
                                     "refusing to send in clear (use --ssl for implicit TLS)")
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            sent = 0
            for msg in messages:
                smtp.send_message(msg)
                sent += 1
            return sent
    except ssl_mod.SSLError as exc:
        raise BillsError(f"TLS with {cfg.host}:{cfg.port} failed: {exc.reason or exc} "
                         "(for a private CA, give --ca-file)") from None
    except smtplib.SMTPAuthenticationError:
        raise BillsError(f"SMTP server {cfg.host}:{cfg.port} refused the login of {cfg.username!r}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise BillsError(f"cannot send through {cfg.host}:{cfg.port}: {exc}") from None
