"""The neighbours' web app: server-rendered pages and the JSON API under /api.

`create_app(settings)` builds the FastAPI application; the CLI (`quartier app serve`) and
the demo serve it with uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from community.app.settings import AppSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["AppSettings", "create_app", "serve"]


def create_app(settings: AppSettings) -> FastAPI:
    from community.app.factory import build

    return build(settings)


def serve(settings: AppSettings, host: str = "127.0.0.1", port: int = 8080, *,
          accounts_password: str | None = None, board: tuple[str, ...] = (),
          operator: str | None = None, log_level: str = "warning") -> None:
    """Serve the app with uvicorn until interrupted. With `accounts_password`, every
    registry member without a login gets one first (user name = member id), members in
    `board` with the board role, plus a grid-operator account if named: for the demo."""
    import time

    import uvicorn

    from community.app.sessions import ensure_member_accounts

    application = create_app(settings)
    if accounts_password:
        with application.state.engine.begin() as conn:
            ensure_member_accounts(conn, accounts_password, now=int(time.time()), board=board,
                                   operator=operator)
    uvicorn.run(application, host=host, port=port, log_level=log_level, proxy_headers=settings.https)
