"""Who is calling: an API key from `Authorization: Bearer` or `X-API-Key`, and its role."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.keys import Principal
from gateway.store import audit_log, db

# auto_error=False: the checks below decide, so that every refusal is audited the same way.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")
log = logging.getLogger("edigw.api")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="edigw"'}


def principal(request: Request,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
              header: Annotated[str | None, Depends(_header)]) -> Principal:
    """The caller, or 401 (and an audit row) without a valid key."""
    presented = bearer.credentials if bearer else header
    if not presented:
        why = ("an Authorization header that is not Bearer"
               if request.headers.get("authorization") else "no API key")
        _refuse(request, why)
    found = request.app.state.keys.find(presented)
    if found is None:
        _refuse(request, "an unknown API key")
    return found


def _refuse(request: Request, why: str) -> None:
    # S5: who tried what, from where; never the key, not even part of it.
    client = request.client.host if request.client else "?"
    try:
        with db.transaction(request.app.state.engine) as s:
            audit_log.record(s, actor=f"api:anonymous@{client}", action="api.auth_failed",
                             target=f"{request.method} {request.url.path}"[:200], reason=why,
                             details={"client": client})
    except Exception:  # the caller is refused all the same; the log keeps the trace
        log.exception("could not write the audit row of a refused request")
    raise HTTPException(401, f"{why}: send Authorization: Bearer <key> or X-API-Key",
                        headers=_CHALLENGE)


def operator(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, who must be an operator (403 for partners)."""
    if who.role != "operator":
        raise HTTPException(403, "operators only")
    return who


Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
