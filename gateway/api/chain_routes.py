"""The routes of PO chains: a chain shown, goods receipts posted (operators only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request

from canonical.errors import ConfigError, GatewayError, SchemaError
from gateway import partners as partners_mod
from gateway.api.auth import Operator
from gateway.api.problems import problem
from gateway.chains import views
from gateway.store import db

router = APIRouter(tags=["chains"])
PartnerId = Annotated[str, Path(max_length=40, pattern=partners_mod.id_pattern(),
                                description="The partner's id, as in conf/partners/<id>.yaml")]
PoNumber = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00]*$",
                               description="The purchase order number")]

RECEIPT_EXAMPLE = {
    "receipt_number": "GR-2026-0412", "po_number": "4500012345", "receipt_date": "2026-11-24",
    "lines": [{"line_number": "2", "quantity": {"value": "6", "unit": "CA"}}],
}


@router.get("/v1/chains/{partner}/{po_number}")
def show_chain(request: Request, who: Operator, partner: PartnerId,
               po_number: PoNumber) -> Any:
    """A PO's chain: documents in order, each line's ordered, acknowledged, shipped,
    invoiced and received quantities, the exceptions emitted, the deadlines."""
    try:
        with db.transaction(request.app.state.engine, write=False) as s:
            return views.chain(s, po_number, partner)
    except views.NoSuchChain as exc:
        return problem(404, str(exc))


@router.get("/v1/chains")
def list_chains(request: Request, who: Operator,
                open: Annotated[bool, Query(description="Only chains not yet matched")] = False,
                partner: Annotated[str | None, Query(max_length=40,
                                                     pattern=partners_mod.id_pattern())] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Chains, newest first."""
    with db.transaction(request.app.state.engine, write=False) as s:
        return views.listing(s, open_only=open, partner=partner, limit=limit)


@router.post("/v1/receipts", status_code=201)
def post_receipt(request: Request, who: Operator,
                 receipt: Annotated[dict[str, Any], Body(
                     description="Canonical goods_receipt.v1 data",
                     examples=[RECEIPT_EXAMPLE])],
                 partner: Annotated[str | None, Query(
                     max_length=40, pattern=partners_mod.id_pattern(),
                     description="The partner (found by the PO number when only one "
                     "chain has it)")] = None) -> Any:
    """A goods receipt from the ERP joins its PO's chain for the three-way match; the
    exceptions it raises are routed like any event, in the same transaction."""
    state = request.app.state
    try:
        with db.transaction(state.engine) as s:
            return views.post_receipt(s, state.webhooks.partners(), state.settings.routes,
                                      receipt, partner)
    except SchemaError as exc:
        return problem(422, str(exc), errors=[str(v) for v in exc.violations[:20]])
    except views.NoSuchChain as exc:
        return problem(404, str(exc))
    except (views.WhichPartner, ConfigError) as exc:
        return problem(409 if isinstance(exc, views.WhichPartner) else 404, str(exc))
    except GatewayError as exc:
        return problem(400, str(exc))
