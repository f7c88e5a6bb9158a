"""Dead letters from the pipeline: the stage, the reason, the endpoint and the cause chain.

The original bytes stay reachable through the message's payload, so a replay (a new work
item of the same kind for the same message or delivery) starts from what was received.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from canonical.redact import redact
from gateway.store import claims
from gateway.store.models import DeadLetter


def describe(error: BaseException) -> str:
    """An error as one line for logs and the store, with any URL credentials hidden."""
    return redact(f"{type(error).__name__}: {error}")


def error_chain(error: BaseException | None) -> list[dict[str, Any]]:
    """The error and its causes, outermost first, as the operator reads them."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen and len(out) < 10:
        seen.add(id(error))
        entry: dict[str, Any] = {"type": type(error).__name__, "message": redact(str(error))}
        status = getattr(error, "status", None)
        if isinstance(status, int):
            entry["status"] = status
        out.append(entry)
        error = error.__cause__ or error.__context__
    return out


def park(session: Session, *, stage: str, reason: str, message_id: int | None = None,
         delivery_id: int | None = None, work_item_id: int | None = None,
         endpoint: str | None = None, error: BaseException | None = None,
         attempts: int = 1, chain: list[dict[str, Any]] | None = None) -> DeadLetter:
    """Park work for an operator, in the caller's transaction."""
    return claims.park(session, stage=stage, reason=redact(reason)[:10_000],
                       error_chain=chain if chain is not None else error_chain(error),
                       message_id=message_id, delivery_id=delivery_id,
                       work_item_id=work_item_id,
                       endpoint=redact(endpoint) if endpoint else endpoint, attempts=attempts)


def park_many(session: Session, letters: list[dict[str, Any]]) -> None:
    """park for several, each given as park's keyword arguments (error= or chain=): one
    statement, in the caller's transaction."""
    rows = []
    for kw in letters:
        error, chain = kw.pop("error", None), kw.pop("chain", None)
        endpoint = kw.get("endpoint")
        rows.append({**kw, "reason": redact(kw["reason"])[:10_000],
                     "error_chain": chain if chain is not None else error_chain(error),
                     "endpoint": redact(endpoint) if endpoint else endpoint})
    claims.park_many(session, rows)
