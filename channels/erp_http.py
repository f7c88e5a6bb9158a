"""ERP over HTTP: POST the CloudEvent as JSON with an Idempotency-Key and a webhook signature."""

from __future__ import annotations

import email.utils
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
from pydantic import AnyHttpUrl, field_validator

from canonical import errors, redact
from canonical.envelope import Event
from channels import base, signing
from channels.base import DeliveryReceipt
from channels.config import ChannelConfig, setting

log = logging.getLogger(__name__)
# httpx logs each request's URL at INFO, userinfo and all.
redact.install(logging.getLogger("httpx"))

CONTENT_TYPE = "application/cloudevents+json"
EXCERPT = 500  # characters of an error answer kept for the operator
REPLAYED = "idempotent-replayed"  # the ERP's way of saying it already had this key
# RFC 9110 delta-seconds: ASCII digits only (str.isdigit() also takes "²", which float() refuses).
_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)


class HttpOutputConfig(ChannelConfig):
    """Settings of the `http` ERP output."""

    url: AnyHttpUrl = setting(description="Where events are POSTed.",
                              example="https://erp.example.com/api/events")
    secret_env: str | None = setting(
        None, secret=True, example="EDIGW_ERP_SECRET",
        description="Environment variable holding the Standard Webhooks signing secret"
                    " (whsec_ + base64, or plain text); unset = requests are not signed.")
    connect_timeout: float = setting(5.0, gt=0, example=5.0,
                                     description="Seconds to open a connection.")
    read_timeout: float = setting(30.0, gt=0, example=30.0,
                                  description="Seconds to wait for each read of the answer.")
    write_timeout: float = setting(30.0, gt=0, example=30.0,
                                   description="Seconds to wait for each write of the request.")
    pool_timeout: float = setting(5.0, gt=0, example=5.0,
                                  description="Seconds to wait for a free pooled connection.")
    max_in_flight: int = setting(
        1, ge=1, le=64, example=4,
        description="Requests sent at once to this destination (per worker process) when a"
                    " batch of events goes out, over connections kept open between batches."
                    " 1 sends one after the other and keeps the promise of at most one"
                    " repeated request per crash; N hides a distant ERP's latency, and a"
                    " crash may then repeat up to N requests (the ERP drops the repeats by"
                    " Idempotency-Key).")

    @field_validator("url")
    @classmethod
    def _host_labels(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        """Host labels of 1 to 63 characters (RFC 1035): the URL parser lets `a..b` and longer
        labels through, and every send would then fail in the resolver's IDNA encoding."""
        host = (url.host or "").rstrip(".")
        if not host.startswith("[") and any(not 0 < len(x) <= 63 for x in host.split(".")):
            raise ValueError(f"host {host!r}: each label between dots must have 1 to 63 "
                             f"characters")
        return url


class HttpOutput:
    """Delivers events to an ERP's HTTP endpoint, which drops repeats by Idempotency-Key."""

    def __init__(self, config: HttpOutputConfig) -> None:
        self.config = config
        self.endpoint = f"erp:http {redact.redact(str(config.url))}"
        self._client: httpx.Client | None = None
        self._secret: signing.Secret | None = None
        self._senders: ThreadPoolExecutor | None = None  # max_in_flight threads, kept
        self._lock = threading.Lock()

    def connect(self) -> None:
        if self._client is not None:
            return
        c = self.config
        self._secret = signing.Secret.from_env(c.secret_env) if c.secret_env else None
        timeout = httpx.Timeout(connect=c.connect_timeout, read=c.read_timeout,
                                write=c.write_timeout, pool=c.pool_timeout)
        # As many kept connections as requests in flight: each sender reuses one.
        limits = httpx.Limits(max_connections=c.max_in_flight,
                              max_keepalive_connections=c.max_in_flight)
        self._client = httpx.Client(timeout=timeout, limits=limits, follow_redirects=False)

    def write(self, event: Event) -> DeliveryReceipt:
        if self._client is None:
            self.connect()
        assert self._client is not None
        body = base.encode(event)
        headers = {"Content-Type": CONTENT_TYPE, "Idempotency-Key": event.id}
        if self._secret is not None:
            headers |= signing.headers(self._secret, event.id, int(time.time()), body)
        where = f"sending {event.id} to {self.endpoint}"
        try:
            response = self._client.post(str(self.config.url), content=body, headers=headers)
        except httpx.TimeoutException as exc:
            # The ERP may have applied it; the retry carries the same key, so no second effect.
            raise errors.DeliveryTimeout(f"{where}: {type(exc).__name__}") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError) as exc:
            # UnicodeError: a host name the IDNA codec refuses; no retry makes it valid.
            raise errors.ConfigError(
                f"{where}: {type(exc).__name__}: {redact.redact(str(exc))}") from exc
        except httpx.TransportError as exc:
            raise errors.DeliveryUnavailable(
                f"{where}: {type(exc).__name__}: {redact.redact(str(exc))}") from exc
        log.debug("%s: HTTP %s", where, response.status_code)
        return self._receipt(event, response, where)

    def write_many(self, events: Sequence[Event],
                   on_outcome: base.OnOutcome | None = None) -> list[base.Outcome]:
        """POST the events at most max_in_flight at a time, over kept connections; each
        event's own outcome (2xx, 4xx permanent, 5xx/429/timeout with Retry-After) as write."""
        if self._client is None:
            self.connect()
        n_at_once = min(self.config.max_in_flight, len(events))
        if n_at_once <= 1:
            return base.write_each(self.write, events, on_outcome)
        with self._lock:
            if self._senders is None:
                self._senders = ThreadPoolExecutor(self.config.max_in_flight,
                                                   thread_name_prefix="erp-http")
            senders = self._senders
        outcomes: list[base.Outcome | None] = [None] * len(events)

        def send(n: int) -> None:
            try:
                outcome: base.Outcome = self.write(events[n])
            except Exception as exc:  # the event's outcome, as write would raise it
                outcome = exc
            outcomes[n] = outcome
            if on_outcome is not None:
                on_outcome(n, outcome)

        # The pool has max_in_flight threads: never more requests than that at once.
        for future in [senders.submit(send, n) for n in range(len(events))]:
            future.result()
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(events)
        return done

    def close(self) -> None:
        if self._senders is not None:
            self._senders.shutdown(wait=True)
            self._senders = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _receipt(self, event: Event, response: httpx.Response, where: str) -> DeliveryReceipt:
        status = response.status_code
        if 200 <= status < 300:
            replayed = response.headers.get(REPLAYED, "").lower() == "true"
            return DeliveryReceipt(event.id, self.endpoint, duplicate=replayed, status=status)
        excerpt = response.text[:EXCERPT]
        message = f"{where}: HTTP {status} {response.reason_phrase}"
        if status in (408, 409, 429) or status >= 500:
            # 409 is the idempotency draft's "this key is still being processed".
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise errors.DeliveryUnavailable(message, status=status, retry_after=retry_after)
        raise errors.DeliveryRejected(f"{message}: {excerpt}", status=status, body=excerpt)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable.

    Never raises: the header is the ERP's to get wrong, and a malformed one only means the
    policy's own backoff applies. A huge value is returned as it is, inf past a float's
    range: the retry policy caps every delay at its maximum.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)  # not int(): a 5,000-digit value must cost nothing
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
