"""What a partner agreed to: deadlines and tolerances of its chains (the `chains:` block of
its conf/partners/<id>.yaml), with defaults when the block or a key is absent."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Literal

from channels.config import ChannelConfig, setting

Expected = Literal["855", "856", "810"]


class Tolerance(ChannelConfig):
    """How far a value may stray from what was expected: the larger of the two allowances."""

    percent: Decimal = setting(Decimal(0), ge=0, example="5",
                               description="Allowed difference in percent of the expected value.")
    absolute: Decimal = setting(Decimal(0), ge=0, example="1",
                                description="Allowed difference in the value's own unit "
                                "(units of measure for a quantity, currency for a price).")

    def allowed(self, expected: Decimal) -> Decimal:
        """The difference allowed around this expected value."""
        return max(self.absolute, abs(expected) * self.percent / 100)

    def within(self, expected: Decimal, actual: Decimal) -> bool:
        """Whether actual is within tolerance of expected (a difference equal to the
        allowance is within)."""
        return abs(actual - expected) <= self.allowed(expected)


class ChainPolicy(ChannelConfig):
    """A partner's chain checks: what it must send by when, and how exact it must be."""

    ack_within_hours: float | None = setting(
        24.0, gt=0, example=24,
        description="Hours after our 850 is sent by which the partner's 997/999 must be in; "
        "null for no deadline.")
    po_ack_within_hours: float | None = setting(
        48.0, gt=0, example=48,
        description="Hours after our 850 is sent by which the partner's 855 must be in; "
        "null for no deadline.")
    expects: list[Expected] = setting(
        ["855", "856", "810"], example=["855", "810"],
        description="The documents the partner sends for an order. A check against an "
        "expected document waits for it (shipped quantities against the 855's, invoiced "
        "against the 856's) whatever the order they arrive in; without the 855 or 856 in "
        "this list, the PO's quantities are the reference.")
    quantity: Tolerance = setting(
        Tolerance(), example={"percent": "5", "absolute": "1"},
        description="Acknowledged, shipped and invoiced quantities against the quantity "
        "agreed before them.")
    price: Tolerance = setting(
        Tolerance(), example={"percent": "1", "absolute": "0.01"},
        description="Unit prices on the 855 and the 810 against the PO's.")
    receipt_quantity: Tolerance = setting(
        Tolerance(), example={"percent": "2"},
        description="The three-way match: invoiced quantities against received ones.")
    late_days: int = setting(
        0, ge=0, example=2,
        description="Days a promised (855) or actual (856) ship or delivery date may be "
        "later than the PO's requested date.")


DEFAULT = ChainPolicy()


def reference_table() -> str:
    """The `chains:` block's reference, as docs/chains.md holds it (a test keeps it current)."""
    from channels import config

    def value(v: object) -> str:
        if isinstance(v, ChannelConfig):
            v = v.model_dump(mode="json")
        return "" if v is None else "`" + json.dumps(v, default=str) + "`"

    lines = ["| key | default | example | description |", "|---|---|---|---|"]
    for model, prefix in ((ChainPolicy, ""), (Tolerance, "<tolerance>.")):
        for row in config.describe(model):
            lines.append(f"| `{prefix}{row.name}` | {value(row.default)} | {value(row.example)} "
                         f"| {row.description} |")
    return "\n".join(lines) + "\n"
