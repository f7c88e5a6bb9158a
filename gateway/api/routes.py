"""The routes: dead letters (operators only), message timelines (partners see their own)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from deadletter import filters
from gateway import deadletters
from gateway.api.auth import Caller, Operator
from gateway.api.problems import problem
from gateway.store import db, health

router = APIRouter()
# Ids are 64-bit in the store; a larger number is answered 422, not a database error.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Values = Annotated[list[str], Query(max_length=filters.MAX_VALUES)]
# PostgreSQL text cannot hold NUL: refused as bad input, not met as a database error.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str | None, Query(max_length=filters.MAX_VALUE_LENGTH)]


class ReplayOne(BaseModel):
    """Replay one dead letter."""

    reason: str | None = Field(None, max_length=2000, pattern=NO_NUL,
                               description="Why; required unless dry_run")
    dry_run: bool = Field(False, description="Show what would happen; change nothing")


class ReplayMany(ReplayOne):
    """Replay the parked dead letters a filter selects, or the ones listed."""

    filter: str | None = Field(None, max_length=filters.MAX_EXPRESSION,
                               examples=["stage=deliver partner=acme since=2h reason~timeout"])
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        None, max_length=deadletters.MAX_REPLAY)


class Discard(BaseModel):
    """Discard one dead letter."""

    reason: str = Field(..., min_length=1, max_length=2000, pattern=NO_NUL)


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",")]


@router.get("/healthz", tags=["health"])
def healthz(request: Request) -> JSONResponse:
    """Whether the API answers and its store is reachable (no key needed)."""
    try:
        health.check(_engine(request))
    except Exception as exc:  # any failure here means "not healthy", never a 500
        return problem(503, f"the store is unreachable: {type(exc).__name__}")
    return JSONResponse({"status": "ok"})


@router.get("/v1/dead-letters", tags=["dead letters"])
def list_dead_letters(
    request: Request, who: Operator, stage: Values = [], partner: Values = [],  # noqa: B006
    endpoint: Values = [], status: Values = [], since: Text = None, until: Text = None,  # noqa: B006
    reason: Text = None, message: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=deadletters.MAX_PAGE)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    """Dead letters, newest first (parked only unless status is given; status=all for all)."""
    flt = filters.build(stages=_split(stage), partners=_split(partner),
                        endpoints=_split(endpoint), statuses=_split(status), since=since,
                        until=until, reason=reason, message=message)
    with db.transaction(_engine(request), write=False) as s:
        page = deadletters.list_page(s, flt, limit=limit, before=before)
    return {"items": page.items, "next_before": page.next_before, "filter": flt.describe()}


@router.get("/v1/dead-letters/{dead_letter_id}", tags=["dead letters"])
def show_dead_letter(request: Request, who: Operator, dead_letter_id: Id) -> dict[str, Any]:
    """One dead letter: error chain, raw input (text, or a hex excerpt), events, timeline."""
    with db.transaction(_engine(request), write=False) as s:
        return deadletters.show(s, dead_letter_id)


@router.post("/v1/dead-letters/replay", tags=["dead letters"])
def replay_many(request: Request, who: Operator,
                body: Annotated[ReplayMany, Body()]) -> dict[str, Any]:
    """Replay the parked dead letters a filter selects (or the ids listed), each once."""
    if (body.filter is None) == (body.ids is None):
        raise HTTPException(422, "give either filter or ids")
    if body.ids is not None:
        ids = body.ids
    else:
        flt = filters.parse(body.filter or "")
        with db.transaction(_engine(request), write=False) as s:
            ids = deadletters.matching_ids(s, flt)
    outcomes = deadletters.replay(_engine(request), ids, actor=who.actor, reason=body.reason,
                                  dry_run=body.dry_run, remapper=request.app.state.remapper)
    done = sum(o.done for o in outcomes)
    return {"matched": len(ids), "done": done, "outcomes": [o.to_dict() for o in outcomes]}


@router.post("/v1/dead-letters/{dead_letter_id}/replay", tags=["dead letters"])
def replay_one(request: Request, who: Operator, dead_letter_id: Id,
               body: Annotated[ReplayOne, Body()]) -> Any:
    """Replay one dead letter: re-enter its stage with today's mappings and configuration."""
    (out,) = deadletters.replay(_engine(request), [dead_letter_id], actor=who.actor,
                                reason=body.reason, dry_run=body.dry_run,
                                remapper=request.app.state.remapper)
    return _answer(out)


@router.post("/v1/dead-letters/{dead_letter_id}/discard", tags=["dead letters"])
def discard_one(request: Request, who: Operator, dead_letter_id: Id,
                body: Annotated[Discard, Body()]) -> Any:
    """Discard one parked dead letter, with the reason in the audit trail."""
    return _answer(deadletters.discard(_engine(request), dead_letter_id, actor=who.actor,
                                       reason=body.reason))


def _answer(out: deadletters.Outcome) -> Any:
    if out.result == "not-found":
        return problem(404, out.detail)
    if out.result == "skipped":
        return problem(409, out.detail, outcome=out.to_dict())
    return out.to_dict()


@router.get("/v1/messages/{message_id}", tags=["messages"])
def show_message(request: Request, who: Caller, message_id: Id) -> dict[str, Any]:
    """A message and its timeline; a partner sees only its own (others' are 404)."""
    partner = who.partner if who.role == "partner" else None
    with db.transaction(_engine(request), write=False) as s:
        return deadletters.message_view(s, message_id, partner=partner,
                                        show_actors=who.role == "operator")
