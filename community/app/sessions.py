"""Server-side sessions and accounts in SQL (thin: the rules are in `security`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from community.app import security
from community.app.tables import ROLES, accounts, sessions


@dataclass(frozen=True)
class Account:
    username: str
    member_id: str | None
    role: str
    display_name: str
    lang: str | None

    @property
    def is_board(self) -> bool:
        return self.role == "board"

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class Session:
    token: str  # the cookie value; only its digest is stored
    csrf: str
    account: Account | None


class AccountError(ValueError):
    """An account that cannot be created or changed; the message says why."""


# The registry's member id syntax, so that a member id is always a valid user name.
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _account(row: sa.Row) -> Account:
    return Account(row.username, row.member_id, row.role, row.display_name, row.lang)


def create_account(conn: sa.Connection, username: str, password: str, *, role: str = "member",
                   member_id: str | None = None, display_name: str | None = None,
                   now: int, lang: str | None = None) -> Account:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}, expected one of {', '.join(ROLES)}")
    if not _USERNAME.match(username):
        raise AccountError(f"user name {username!r} must be 1-64 letters, digits, '_', '.', ':' or '-'")
    if role == "member" and not member_id:
        raise AccountError("a member account needs the member id it belongs to")
    try:
        digest = security.hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    if conn.execute(sa.select(accounts.c.username).where(accounts.c.username == username)).first():
        raise AccountError(f"user name {username!r} is taken")
    values = {"username": username, "member_id": member_id, "role": role,
              "display_name": display_name or username, "password_hash": digest,
              "lang": lang, "created_at": now}
    conn.execute(accounts.insert().values(**values))
    return Account(username, member_id, role, values["display_name"], lang)  # type: ignore[arg-type]


def set_password(conn: sa.Connection, username: str, password: str) -> None:
    try:
        digest = security.hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    done = conn.execute(accounts.update().where(accounts.c.username == username)
                        .values(password_hash=digest))
    if done.rowcount == 0:
        raise AccountError(f"no account {username!r}")


def authenticate(conn: sa.Connection, username: str, password: str) -> Account | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.username == username)).first()
    ok = security.verify_password(row.password_hash if row else None, password)
    return _account(row) if row is not None and ok else None


def get_account(conn: sa.Connection, username: str) -> Account | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.username == username)).first()
    return _account(row) if row else None


def list_accounts(conn: sa.Connection) -> list[Account]:
    rows = conn.execute(sa.select(accounts).order_by(accounts.c.username))
    return [_account(r) for r in rows]


def account_for_member(conn: sa.Connection, member_id: str) -> Account | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.member_id == member_id)
                       .order_by(accounts.c.username)).first()
    return _account(row) if row else None


def start_session(conn: sa.Connection, account: Account | None, *, now: int, ttl_s: int,
                  previous_token: str | None = None) -> Session:
    """A fresh token and CSRF secret; the previous session (if any) is deleted so a token
    planted before login is worthless after it."""
    if previous_token:
        end_session(conn, previous_token)
    token, csrf = security.new_token(), security.new_token()
    conn.execute(sessions.insert().values(
        token_hash=security.token_digest(token), username=account.username if account else None,
        csrf=csrf, created_at=now, expires_at=now + ttl_s))
    return Session(token, csrf, account)


def load_session(conn: sa.Connection, token: str | None, *, now: int) -> Session | None:
    if not token or len(token) > 128:
        return None
    row = conn.execute(sa.select(sessions).where(
        sessions.c.token_hash == security.token_digest(token))).first()
    if row is None or row.expires_at <= now:
        return None
    account = get_account(conn, row.username) if row.username else None
    if row.username and account is None:
        return None
    return Session(token, row.csrf, account)


def end_session(conn: sa.Connection, token: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.token_hash == security.token_digest(token)))


def purge_expired(conn: sa.Connection, *, now: int) -> int:
    return conn.execute(sessions.delete().where(sessions.c.expires_at <= now)).rowcount


def ensure_member_accounts(conn: sa.Connection, password: str, *, now: int,
                           board: tuple[str, ...] = (), operator: str | None = None) -> list[str]:
    """An account per registry member that has none (user name = member id), members
    listed in `board` with the board role, and optionally a grid-operator account; for the
    demo and first installs. Returns the user names created."""
    from community.db import members

    created = []
    for row in conn.execute(sa.select(members.c.id, members.c.name).order_by(members.c.id)).all():
        if account_for_member(conn, row.id) or get_account(conn, row.id):
            continue
        role = "board" if row.id in board else "member"
        create_account(conn, row.id, password, role=role, member_id=row.id, display_name=row.name, now=now)
        created.append(row.id)
    if operator and get_account(conn, operator) is None:
        create_account(conn, operator, password, role="operator", display_name=operator, now=now)
        created.append(operator)
    return created
