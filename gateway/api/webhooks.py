"""POST /v1/partners/{partner}/messages: a partner's signed webhook, stored once per webhook-id.

The order of the checks is the order of their cost: the partner's channel, the content
type, the size while the body is read (413 as soon as it grows past the partner's limit),
the signature (401, an audit row, nothing stored), then the store: a webhook-id seen
before answers with its first message, a new one is stored with its validate item and
its id in one commit (channels/webhook.py makes the message, gateway/pipeline/intake.py
stores it). Requests that arrive together share that commit (gateway/api/group_commit.py,
a thread of its own): the event loop never waits for the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from canonical.errors import ConfigError, TransientError
from channels import registry, webhook
from channels.base import InboundMessage
from gateway import partners as partners_mod
from gateway import settings as settings_mod
from gateway.api.group_commit import GroupCommit
from gateway.api.problems import problem
from gateway.pipeline import crash, intake
from gateway.pipeline.context import Context
from gateway.store import audit_log, db, webhook_ids

log = logging.getLogger("edigw.api")
router = APIRouter()
PATH = "/v1/partners/{partner}/messages"
PREFIX = "/v1/partners/"  # these routes enforce their own body limit, the partner's
INLINE_BYTES = 256 * 1024  # bodies up to this are checked on the event loop, larger in a thread
# The route's parameters are read from the request by the route itself, not declared to
# FastAPI: its solving of a path parameter and three headers cost more CPU per request
# than the signature check and the store's share together (bench/webhooks.py). The
# OpenAPI document states them all the same, and the same checks give the same 422.
PARTNER_MAX, HEADER_MAX = 40, 1000  # the id pattern allows 40 characters at most
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_PARAMETERS = [
    {"name": "partner", "in": "path", "required": True,
     "description": "The partner's id, as in conf/partners/<id>.yaml",
     "schema": {"type": "string", "pattern": partners_mod.id_pattern(),
                "maxLength": PARTNER_MAX}},
    # Not required here so that a missing one is the spec's 401, not a 422.
    *({"name": name, "in": "header", "required": False,
       "description": f"Standard Webhooks: {name}",
       "schema": {"type": "string", "maxLength": HEADER_MAX}} for name in HEADERS),
]
_CHALLENGE = {"WWW-Authenticate": 'Standard-Webhooks realm="edigw"'}
_BODY = {"type": "string", "description": "The document, as its content type says"}


class Accepted(BaseModel):
    """The message a webhook became; follow status_url (with an API key) to see it move."""

    message_id: int = Field(examples=[42])
    status_url: str = Field(examples=["/v1/messages/42"])


class _Replayed(Exception):
    """A webhook-id is recorded for another message (a retry with other bytes, or a
    concurrent request): roll back, then answer with that message."""


class Webhooks:
    """The partners' webhook channels, each built from conf/partners on first use."""

    def __init__(self, partners_dir: Any, mappings_root: Any, engine: Any) -> None:
        self.partners_dir, self.mappings_root = partners_dir, mappings_root
        self.engine = engine
        self._lock = threading.Lock()
        self._partners: partners_mod.Partners | None = None
        self._channels: dict[str, webhook.WebhookInput] = {}
        self.commits: GroupCommit[InboundMessage, tuple[int, bool]] = GroupCommit(
            lambda batch, more: _store_batch(self, batch, more), name="edigw-webhook-commit",
            tops_up=True)

    def partners(self) -> partners_mod.Partners:
        with self._lock:
            if self._partners is None:
                self._partners = partners_mod.load_all(self.partners_dir,
                                                       mappings_root=self.mappings_root)
            return self._partners

    def cached(self, partner: str) -> webhook.WebhookInput | None:
        """The partner's webhook if it was built already (no I/O: fine on the event loop)."""
        return self._channels.get(partner)

    def channel(self, partner: str) -> webhook.WebhookInput | None:
        """The partner's webhook, or None if it has none; ConfigError if it is misconfigured."""
        found = self._channels.get(partner)
        if found is not None:
            return found
        p = self.partners().by_id.get(partner)
        if p is None or "webhook" not in p.channels:
            return None
        built = registry.build_input("webhook", p.channels["webhook"] or {}, partner=partner)
        assert isinstance(built, webhook.WebhookInput)
        built.connect()  # reads the secrets now: a missing one is said at the first request
        self._channels[partner] = built
        return built

    def problems(self) -> list[str]:
        """What keeps each partner's webhook from working (an unset secret), said once at
        start-up so that it is not first seen as the partner's 503s."""
        out = []
        for p in self.partners():
            try:
                self.channel(p.id)
            except ConfigError as exc:
                out.append(f"partner {p.id}: webhook: {exc}")
        return out

    def context(self) -> Context:
        # The intake needs the engine only; the rest of a Context is the pipeline's.
        return Context(settings_mod.Settings(file=None), self.partners(), self.engine)


def install(app: FastAPI, partners_dir: Any, mappings_root: Any,
            clock: Callable[[], float] = time.time) -> None:
    """Add the webhook route to app; app.state.clock is the time signatures are judged by."""
    app.state.webhooks = Webhooks(partners_dir, mappings_root, app.state.engine)
    app.state.clock = clock
    app.include_router(router)


class _TooLarge(Exception):
    pass


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    PATH, status_code=202, response_model=Accepted, tags=["webhooks"],
    responses={400: {"description": "A malformed webhook-id or body"},
               401: {"description": "A missing, malformed, stale or wrong signature"},
               404: {"description": "No webhook for this partner"},
               413: {"description": "The body is larger than the partner's max_bytes"},
               415: {"description": "Not application/json, application/edi-x12 or text/csv"}},
    openapi_extra={"parameters": _PARAMETERS, "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/edi-x12": {"schema": _BODY},
        "text/csv": {"schema": _BODY}}}})
async def post_message(request: Request) -> Any:
    """Take a partner's document, signed as Standard Webhooks says (webhook-id,
    webhook-timestamp, webhook-signature; 5 minutes' tolerance). The same webhook-id again
    answers with the first message and stores nothing new. No API key: the signature is
    the credential. See docs/channels/webhook.md."""
    partner = _parameters(request)
    hooks: Webhooks = request.app.state.webhooks
    channel = hooks.cached(partner) or await run_in_threadpool(hooks.channel, partner)
    if channel is None:
        return problem(404, f"no webhook for partner {partner!r}")
    try:
        webhook.media_type(request.headers.get("content-type"))
        body = await _read(request, channel.max_bytes)
    except _TooLarge:
        return problem(413, f"the body is larger than {channel.max_bytes} bytes",
                       headers={"Connection": "close"})
    except ClientDisconnect:
        return problem(400, "the request ended before its body")
    except webhook.WebhookRefused as exc:
        return problem(exc.status, str(exc))
    now = request.app.state.clock()
    try:
        if len(body) <= INLINE_BYTES:  # an HMAC and a JSON parse of a few KB: microseconds
            message = channel.take(request.headers, body, now=now)
        else:
            message = await run_in_threadpool(channel.take, request.headers, body, now=now)
    except webhook.Unsigned as exc:
        await run_in_threadpool(_refused, hooks, request, partner, str(exc))
        return problem(401, str(exc), headers=_CHALLENGE)
    except webhook.WebhookRefused as exc:
        return problem(exc.status, str(exc))
    message_id, replayed = await hooks.commits.submit(message)
    crash.point("after_commit_before_answer")  # stored, and the sender does not know it
    return JSONResponse({"message_id": message_id, "status_url": f"/v1/messages/{message_id}"},
                        status_code=202,
                        headers={"Idempotent-Replayed": "true"} if replayed else None)


def _parameters(request: Request) -> str:
    """The partner, once it and the webhook-* headers are as _PARAMETERS states
    (RequestValidationError, answered 422 as FastAPI's own checks are, if not)."""
    partner = request.path_params["partner"]
    errors = []
    if not partners_mod.is_id(partner):
        errors.append({"loc": ("path", "partner"), "type": "string_pattern_mismatch",
                       "msg": f"not a partner id: at most {PARTNER_MAX} characters of the "
                              f"pattern {partners_mod.id_pattern()}"})
    for name in HEADERS:
        if len(request.headers.get(name, "")) > HEADER_MAX:
            errors.append({"loc": ("header", name), "type": "string_too_long",
                           "msg": f"at most {HEADER_MAX} characters"})
    if errors:
        raise RequestValidationError(errors)
    return partner


class _Recorder:
    """The intake's `within`: record the webhook-ids of what it stored, in its commit."""

    def __init__(self, keys: list[webhook_ids.Key]) -> None:
        self.keys = keys
        self.known: set[webhook_ids.Key] = set()  # recorded before, for the same message

    def __call__(self, session: Session, accepted: list[intake.Accepted]) -> None:
        became = {k: a.message_id for k, a in zip(self.keys, accepted, strict=True)}
        recorded, inserted = webhook_ids.record(session, became)  # type: ignore[arg-type]
        if recorded != became:
            raise _Replayed  # known for another message: roll back, answer with that one
        self.known = set(became) - inserted


def _store_batch(hooks: Webhooks, messages: list[InboundMessage],
                 more: Callable[[], list[InboundMessage]] | None = None
                 ) -> list[tuple[int, bool]]:
    """Each message's id and whether its webhook-id had come before, in one commit.

    The transaction (SQLite's write lock) is taken first; then the requests queued while
    waiting for it join the batch (more(): GroupCommit's top-up), so that a busy lock
    makes the next commit larger rather than the queue longer.

    Optimistic: most webhook-ids are new, so the messages are stored and their ids recorded
    in one transaction without looking first. A known id with the same bytes is the same
    message anyway; with other bytes the transaction is rolled back and the batch stored
    again after a look-up, the known ids answered with their first message.
    """
    messages = list(messages)
    earlier: dict[webhook_ids.Key, int] = {}
    for attempt in range(3):
        try:
            with db.transaction(hooks.engine) as s:
                if more is not None:
                    messages += more()
                    more = None
                keys = [(m.partner, m.metadata["webhook_id"]) for m in messages]
                if attempt:
                    earlier = webhook_ids.find(s, keys)
                first: dict[webhook_ids.Key, int] = {}  # index of each key's first new one
                for i, key in enumerate(keys):
                    if key not in earlier:
                        first.setdefault(key, i)
                todo = sorted(first.values())
                recorder = _Recorder([keys[i] for i in todo])
                done = intake.accept(hooks.context(), [messages[i] for i in todo],
                                     within=recorder, session=s)
        except _Replayed:
            continue
        intake.log_accepted(done)
        stored = {keys[i]: a.message_id for i, a in zip(todo, done, strict=True)}
        return [(earlier[k], True) if k in earlier else
                (stored[k], first[k] != i or k in recorder.known)  # type: ignore[misc]
                for i, k in enumerate(keys)]
    raise TransientError("the same webhook-ids kept arriving at once; try again")


def _refused(hooks: Webhooks, request: Request, partner: str, why: str) -> None:
    # S5: who tried what, from where; never the signature or the secret.
    client = request.client.host if request.client else "?"
    log.warning("webhook for %s from %s refused: %s", partner, client, why)
    try:
        with db.transaction(hooks.engine) as s:
            audit_log.record(s, actor=f"webhook:anonymous@{client}", action="webhook.auth_failed",
                             target=f"partner:{partner}", reason=why, details={"client": client})
    except Exception:  # the caller is refused all the same; the log keeps the trace
        log.exception("could not write the audit row of a refused webhook")

