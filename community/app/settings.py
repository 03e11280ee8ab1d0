"""The web app's configuration, parsed once at the edge (CLI, demo) into one typed value."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

# Login throttling: 5 failures per 15 minutes per account and per client address is what
# OWASP's authentication cheat sheet suggests as a starting point; a neighbour who
# mistypes three times is not locked out, a guesser gets 20 tries an hour.
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 15 * 60
SESSION_TTL_S = 12 * 3600  # a working day on a shared family tablet, then log in again


@dataclass(frozen=True)
class AppSettings:
    database_url: str
    community: str = "quartier"
    # Signs nothing stored: sessions are random tokens looked up in the database. Kept
    # for deriving CSRF tokens of anonymous visitors (the login form).
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Behind TLS (directly or via a proxy) cookies carry `Secure`; plain http on
    # localhost (tests, demo) would not send them back otherwise.
    https: bool = False
    default_lang: str = "fr"
    login_max_failures: int = LOGIN_MAX_FAILURES
    login_window_s: int = LOGIN_WINDOW_S
    session_ttl_s: int = SESSION_TTL_S
    # Days of interval data the home chart covers (24 h ending at the latest interval).
    chart_hours: int = 24
    # The ledger, for certificate verification: an object with `intervals_root(period)`
    # and `gateway_at(gateway, ts)` (community.chain.client.ChainClient), or a node URL
    # and ledger address from which the app makes a read-only client.
    chain: Any = field(default=None, compare=False, repr=False)
    rpc_url: str | None = None
    ledger: str | None = None
    # Members' keys (community.custody.Custody): with `chain`, payments in hours and goods
    # are signed with the member's key and relayed to the ledger; without, SQL only.
    custody: Any = field(default=None, compare=False, repr=False)
    # The contracts beside the ledger (community.chain.suite.Suite, from `attach_suite` or
    # `deploy_suite`): with `chain` and `custody`, payment requests, helpers, account
    # replacement go on chain; requests and helpers stay in SQL without it.
    suite: Any = field(default=None, compare=False, repr=False)
