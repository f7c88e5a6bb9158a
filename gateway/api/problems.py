"""Errors as RFC 9457 problem details (application/problem+json), never a bare 500 for bad input."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from canonical.errors import ConfigError, GatewayError, TransientError
from deadletter.filters import FilterError
from gateway.deadletters import NotFound

log = logging.getLogger("edigw.api")
MEDIA_TYPE = "application/problem+json"


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    """A problem-details response."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every error the API raises as a problem."""

    @app.exception_handler(HTTPException)
    def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: echoing the input back would repeat whatever was sent.
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()[:20]]
        return problem(422, "the request does not match the API", errors=errors)

    @app.exception_handler(GatewayError)
    def _gateway(request: Request, exc: GatewayError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return problem(404, str(exc))
        if isinstance(exc, FilterError):
            return problem(400, str(exc))
        if isinstance(exc, TransientError):
            return problem(503, str(exc), headers={"Retry-After": "5"})
        if isinstance(exc, ConfigError):
            log.error("configuration error answering %s: %s", request.url.path, exc)
            return problem(503, "the gateway's configuration is invalid; see its log")
        return problem(400, str(exc))

    @app.exception_handler(sa_exc.OperationalError)
    def _store_down(request: Request, exc: sa_exc.OperationalError) -> JSONResponse:
        # The database is down or unreachable: the caller may try again, it is not a bug.
        log.error("the store is unreachable answering %s: %s", request.url.path,
                  str(exc.orig or exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem(503, "the store is unreachable; try again later",
                       headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return problem(500, "an unexpected error; it is in the gateway's log")
