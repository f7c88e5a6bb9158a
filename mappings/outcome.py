"""What became of one X12 transaction set or one CSV/JSON document (mappings.translate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from canonical import envelope
from canonical.errors import GatewayError, InputError, PermanentError
from mappings.verdicts import Verdict

Status = Literal["translated", "rejected", "failed", "skipped"]


class SetRejected(PermanentError):
    """The validator rejected the transaction set or document; it is not translated."""


class UnreadableDocument(InputError):
    """The input cannot be read as CSV or JSON text."""


@dataclass
class Translated:
    """What became of one X12 transaction set or one CSV/JSON document."""

    format: str  # x12, csv or json
    document: str  # X12: ST01; CSV/JSON: the mapping's document (ship_notice, invoice)
    where: str  # the position in words, for messages
    status: Status
    position: int = 0  # X12: the ST's ordinal among the file's segments; else document number
    line: int = 0  # X12: the ST's line; CSV: the document's first row; JSON: 0
    x12control: str = ""  # ISA13.GS06.ST02
    version: str = ""  # GS08 (ISA12 when there is no GS)
    key: str = ""  # CSV/JSON: the document's business key
    event: envelope.Event | None = None
    error: GatewayError | None = None  # SetRejected, MappingError, SchemaError, MappingFileError
    mapping: str | None = None  # the mapping file used
    reason: str = ""  # why it was rejected, failed or skipped, in words

    @property
    def ok(self) -> bool:
        return self.status == "translated"

    @property
    def set_id(self) -> str:
        return self.document

    def verdict(self) -> Verdict:
        """This result as a validation verdict (CSV and JSON: mapped and schema-checked)."""
        return Verdict(self.position, self.ok, "", "" if self.ok else self.reason)


def rejected(result: Translated, words: str) -> Translated:
    """The result marked rejected by validation, with why."""
    result.status = "rejected"
    result.reason = words or "rejected"
    what = (f"set {result.document} {result.x12control}" if result.format == "x12"
            else result.where)
    result.error = SetRejected(f"{what}: rejected: {result.reason}")
    return result
