"""Passwords, session tokens, CSRF tokens, login throttling and safe redirects.

Pure: no request, no database, clocks passed in. The session store that uses these lives
in `community.app.sessions`.

- Passwords: argon2id with argon2-cffi's defaults (RFC 9106 second recommended profile).
- Sessions: a random 256-bit token in the cookie; the database keeps only its SHA-256, so
  a leaked database does not let anyone ride a session. Login always issues a new token
  and deletes the previous session (no fixation).
- CSRF: a per-session random secret; the token on every form is that secret, compared in
  constant time. Anonymous visitors (the login form) get a short-lived anonymous session
  for the same purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# Verifying against this when the user does not exist keeps the response time of "no such
# user" and "wrong password" alike, so user names cannot be enumerated by timing.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target only if it is a path on this site: never `//evil`, `https://evil`,
    `/\\evil` (browsers treat a backslash as a slash) or anything with a scheme or host."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 0x20 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


@dataclass
class LoginThrottle:
    """At most `max_failures` failed logins per account name (keys "user:...") and
    `address_factor` times as many per client address (a household or a café shares one)
    in a sliding window of `window_s` seconds. In memory: one app process per community."""

    max_failures: int
    window_s: float
    address_factor: int = 4
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _limit(self, key: str) -> int:
        return self.max_failures if key.startswith("user:") else self.max_failures * self.address_factor

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds until a login may be tried again for these keys; 0 when allowed."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self._limit(key):
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            self._recent(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
