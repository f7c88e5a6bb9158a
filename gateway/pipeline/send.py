"""The send effect: an outbound document (a purchase order) into its partner's outbox.

Like the ack effect: read the document, write its file with no transaction open, then
record it sent and finish the item in one commit. The file name is fixed by the control
numbers, so a crash between the write and the record writes the same file again under
the same name, never a second document. Its first sending opens the PO's chain (its 997
and 855 deadlines count from then) in the same commit. The outbox is the partner's remote one (its SFTP
channel's `outbox`) if it has one, else the local folder <outbox root>/<partner>/.
"""

from __future__ import annotations

from canonical.errors import PermanentError
from gateway.chains import correlate
from gateway.pipeline import crash, outbound
from gateway.pipeline.context import Context
from gateway.store import claims, db, outbound_documents
from gateway.store.models import WorkItem


class MissingDocument(PermanentError):
    """The work item names an outbound document that is not in the store."""


def send(ctx: Context, item: WorkItem) -> None:
    """Put the item's document in its partner's outbox, then record it sent."""
    worker = item.lease_owner or ""
    found = None
    if item.document_id is not None:
        with db.transaction(ctx.engine, write=False) as s:
            found = outbound_documents.file_of(s, item.document_id)
    if found is None:
        raise MissingDocument(f"work item {item.id}: no outbound document {item.document_id}")
    doc, data = found
    remote = ctx.remote_outbox(doc.partner)
    if remote is not None:
        # Uploaded as name.part, then renamed; a network failure is retried later.
        remote.put(doc.filename, data)
    else:
        outbound.write_atomically(ctx.settings.outbox_root / doc.partner / doc.filename, data)
    crash.point("after_send_before_record")
    with db.transaction(ctx.engine) as s:
        now = db.utcnow()
        if outbound_documents.mark_sent(s, doc.id, now):
            correlate.po_sent(s, doc.partner, doc.data, now,
                              correlate.policy_of(ctx.partners, doc.partner),
                              routes=ctx.settings.routes)
        claims.complete(s, worker, [item.id])
