"""The neighbours' web app: server-rendered pages and the JSON API under /api.

`create_app(settings)` builds the FastAPI application; the CLI (`quartier app serve`) and
the demo serve it with uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from community.app.settings import AppSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["AppSettings", "create_app"]


def create_app(settings: AppSettings) -> FastAPI:
    from community.app.factory import build

    return build(settings)
