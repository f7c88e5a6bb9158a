"""POST /v1/purchase-orders: an ERP's purchase order to a partner (operators only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from gateway import orders
from gateway import partners as partners_mod
from gateway.api.auth import Operator
from gateway.api.problems import problem

router = APIRouter()
PartnerId = Annotated[str, Query(pattern=partners_mod.id_pattern(), max_length=40,
                                 description="The partner id, as in conf/partners/<id>.yaml")]
ORDER_BODY = Body(description="purchase_order.v1 data (canonical/schemas/purchase_order.v1"
                              ".json): the shape the gateway emits for inbound orders",
                  examples=[{"po_number": "4500012345", "po_date": "2026-11-18",
                             "lines": [{"line_number": "1",
                                        "quantity": {"value": "24", "unit": "EA"}}]}])


@router.post("/v1/purchase-orders", tags=["purchase orders"], status_code=202, responses={
    202: {"description": "Queued (or queued before: created is false): the document and its "
                         "control numbers"},
    404: {"description": "No such partner"},
    409: {"description": "The PO number went out with other content; send a revision"},
    422: {"description": "Not a purchase_order.v1, or an 850 our validator rejects "
                         "(problems name the segment and element); nothing was queued"}})
def send_order(request: Request, who: Operator, partner: PartnerId,
               order: Annotated[dict[str, Any], ORDER_BODY]) -> Any:
    """Write the order as the partner's X12 850 with its next control numbers, validate it
    and queue it for the partner's outbox; the same order again is the same document."""
    settings = request.app.state.settings
    known = partners_mod.load_all(settings.partners_dir, mappings_root=settings.mappings_root)
    if partner not in known.by_id:
        return problem(404, f"no partner {partner!r}")
    try:
        made = orders.submit(request.app.state.engine, known, partner, order, actor=who.actor)
    except orders.OrderConflict as exc:
        return problem(409, str(exc))
    except orders.OrderRefused as exc:
        return problem(422, str(exc), problems=exc.problems[:orders.MAX_PROBLEMS * 5])
    return JSONResponse(made.to_dict(), status_code=202)
