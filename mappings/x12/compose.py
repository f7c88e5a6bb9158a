"""One outbound transaction set in its own interchange: an outbound mapping's segments
inside ISA/GS/ST with the control numbers given, every value checked by the writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from canonical.errors import OutboundDataError
from mappings.x12 import writer
from mappings.x12.reader import Delimiters

if TYPE_CHECKING:
    from mappings.language.emitter import OutboundMapping

# ">" for components, not ":": times and notes carry colons far more often than ">".
DELIMITERS = Delimiters(element="*", component=">", repetition="^", segment="~")
# GS01 for the sets we write.
FUNCTIONAL_IDS = {"850": "PO", "855": "PR", "856": "SH", "810": "IN"}


@dataclass(frozen=True)
class Parties:
    """Who the interchange is from (us) and to (the partner): ISA05-08 and GS02/GS03."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    gs_sender: str
    gs_receiver: str
    usage: str = "P"  # ISA15


@dataclass(frozen=True)
class ControlNumbers:
    """ISA13, GS06 and ST02 of one outbound document."""

    interchange: int
    group: int
    set: int


def compose(mapping: OutboundMapping, data: dict[str, Any], parties: Parties,
            numbers: ControlNumbers, now: datetime, *,
            segment_writer: writer.SegmentWriter | None = None) -> str:
    """The whole interchange as text; OutboundDataError names the segment and element of a
    value X12 cannot carry."""
    w = segment_writer or writer.SegmentWriter(DELIMITERS, newline="\n")
    version = mapping.version
    if len(version) < 6 or not version[:6].isdigit():
        raise OutboundDataError(f"{mapping.file}: version {version!r} is not an X12 version")
    functional_id = FUNCTIONAL_IDS.get(mapping.document)
    if functional_id is None:
        raise OutboundDataError(f"{mapping.file}: no functional group for set {mapping.document}")
    header = writer.IsaHeader(
        sender_qualifier=parties.sender_qualifier, sender_id=parties.sender_id,
        receiver_qualifier=parties.receiver_qualifier, receiver_id=parties.receiver_id,
        date=now.strftime("%y%m%d"), time=now.strftime("%H%M"),
        control_number=numbers.interchange, version=version[:5], usage=parties.usage)
    out = writer.InterchangeWriter(header, w)
    group = out.group(functional_id, parties.gs_sender, parties.gs_receiver,
                      now.strftime("%Y%m%d"), now.strftime("%H%M"), numbers.group, version)
    ts = group.transaction_set(mapping.document, numbers.set,
                               version if version >= "005010" else None)
    for seg_id, values in mapping.segments(data):
        for n, v in enumerate(values, 1):
            bad = next((c for c in v or "" if not c.isascii()), None)
            if bad is not None:
                raise OutboundDataError(f"segment {seg_id}, element {seg_id}{n:02d}: {bad!r} "
                                        "is outside the X12 character set")
        group.add(ts, seg_id, *values)
    return out.render()
