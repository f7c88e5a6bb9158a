"""A large message (kept in parts, staged page by page by gateway/pipeline/streaming) joins
its purchase orders to their chains page by page, in the pages' own transactions."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store.models import PoChain, PoChainDocument
from tests.unit.test_pipeline_large import SMALLER, _count, _receive, ctx, mid_file  # noqa: F401

pytestmark = pytest.mark.unit


def test_a_large_messages_orders_open_their_chains(ctx: Context, mid_file: Path) -> None:  # noqa: F811
    message_id = _receive(ctx, mid_file)
    Worker(ctx).run(until_idle=True)
    assert _count(ctx.engine, PoChain, PoChain.partner == "acme", PoChain.state == "open") == SMALLER
    assert _count(ctx.engine, PoChainDocument,
                  PoChainDocument.message_id == message_id) == SMALLER
