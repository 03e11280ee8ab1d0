"""Assembling the application: database, areas, CSRF guard, headers, errors."""

from __future__ import annotations

import importlib
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from community import db as cdb
from community.app import security, services
from community.app.routes import AREAS
from community.app.settings import AppSettings
from community.app.web import csrf_guard, error_text, get_ctx, render

# Pages render no third-party content and need no inline script: the strictest policy
# that still allows the inline SVG charts and the stylesheet.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json" or (
        "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""))


def build(settings: AppSettings) -> FastAPI:
    app = FastAPI(
        title=f"Quartier — {settings.community}",
        version="1",
        description="The neighbours' app: energy, wallet, market, donations, votes, certificates. "
                    "Log in with POST /api/login to get a bearer token, then send "
                    "`Authorization: Bearer <token>`. Browser sessions send `X-CSRF-Token` on "
                    "every POST, PUT and DELETE. Amounts are integers in base units: Wh for KWH, "
                    "0.01 h for HOUR, g for KG.",
        dependencies=[Depends(csrf_guard)],
        # The interactive docs load their scripts from a CDN: the app stays offline and
        # serves the OpenAPI document only.
        docs_url=None,
        redoc_url=None,
    )
    engine = cdb.open_db(settings.database_url)
    services.init_app_tables(engine)
    app.state.engine = engine
    app.state.settings = settings
    app.state.throttle = security.LoginThrottle(settings.login_max_failures, settings.login_window_s)

    for name in AREAS:
        module = importlib.import_module(f"community.app.routes.{name}")
        app.include_router(module.router)
        app.include_router(module.api)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).resolve().parent / "static")),
              name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if settings.https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        ctx = get_ctx(request)
        if exc.status_code == 401:
            from urllib.parse import quote

            from fastapi.responses import RedirectResponse

            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        message = {403: ctx.t("common.forbidden"), 404: ctx.t("common.not_found")}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 403 and exc.detail == ctx.t("common.csrf"):
            message = ctx.t("common.csrf")
        return render(ctx, "pages/error.html", "", status_code=exc.status_code, status=exc.status_code,
                      message=message)

    @app.exception_handler(services.ServiceError)
    async def service_error(request: Request, exc: services.ServiceError) -> Response:
        ctx = get_ctx(request)
        text = error_text(ctx, exc.code, exc.field, exc.params)
        status = 404 if exc.code == "common.not_found" else 400
        if _wants_json(request):
            return JSONResponse({"detail": text, "field": exc.field, "code": exc.code}, status_code=status)
        return render(ctx, "pages/error.html", "", status_code=status, status=status, message=text)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        detail = "; ".join(problems) or "invalid request"
        if _wants_json(request):
            return JSONResponse({"detail": detail, "errors": jsonable(exc.errors())}, status_code=422)
        ctx = get_ctx(request)
        return render(ctx, "pages/error.html", "", status_code=422, status=422, message=detail)

    _ = HTMLResponse
    return app


def jsonable(errors: object) -> object:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors, custom_encoder={Exception: str})
