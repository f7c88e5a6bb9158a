"""Every channel by name, outputs and inputs: its config model and its class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canonical import errors
from channels import config, erp_file, erp_http, erp_sql, folder, sftp, webhook
from channels.base import Input, Output


@dataclass(frozen=True)
class Registration:
    """One channel kind: how its settings are validated and how it is built from them."""

    name: str
    config: type[config.ChannelConfig]
    factory: Callable[[Any], Output]
    summary: str


OUTPUTS: Mapping[str, Registration] = {
    r.name: r for r in (
        Registration("http", erp_http.HttpOutputConfig, erp_http.HttpOutput,
                     "POST each CloudEvent to the ERP with an Idempotency-Key and a signature"),
        Registration("file", erp_file.FileOutputConfig, erp_file.FileOutput,
                     "append each event to a JSON Lines file, each id once"),
        Registration("sql", erp_sql.SqlOutputConfig, erp_sql.SqlOutput,
                     "insert each event into an ERP staging table keyed by event id"),
    )
}


def build_output(kind: str, options: Mapping[str, Any], *, name: str | None = None) -> Output:
    """An output of `kind` from its settings; ConfigError for an unknown kind or bad settings."""
    try:
        registration = OUTPUTS[kind]
    except KeyError:
        known = ", ".join(sorted(OUTPUTS))
        raise errors.ConfigError(f"unknown output kind {kind!r} (known: {known})") from None
    settings = config.load(registration.config, dict(options), where=f"output {name or kind}")
    return registration.factory(settings)


@dataclass(frozen=True)
class InputRegistration:
    """One inbound channel kind: its settings model and how a partner's channel is built."""

    name: str
    config: type[config.ChannelConfig]
    factory: Callable[..., Input]  # (settings, **context) -> Input; see build_input
    summary: str
    # Declared in a partner's file under channels:, one Input per partner; otherwise the
    # gateway's own (conf/gateway.yaml inbound.<name>), one Input for every partner.
    per_partner: bool = True
    # Polled by `edigw run` (read() hands over what is waiting); False for a channel the
    # partner calls (a webhook: the HTTP server hands its requests to the intake).
    polled: bool = True


INPUTS: Mapping[str, InputRegistration] = {
    r.name: r for r in (
        InputRegistration("folder", folder.FolderInputConfig, folder.FolderInput,
                          "take the files partners leave in var/inbox/<partner>/: regular,"
                          " settled, moved to .done/ after the store's commit",
                          per_partner=False),
        InputRegistration("sftp", sftp.SftpInputConfig, sftp.SftpInput,
                          "poll a partner's SFTP server: pinned host key, stable files only,"
                          " archived after the store's commit; acks put in its outbox"),
        InputRegistration("webhook", webhook.WebhookInputConfig, webhook.WebhookInput,
                          "the partner POSTs JSON, X12 or CSV to /v1/partners/<id>/messages,"
                          " signed as Standard Webhooks says; answered 202 once stored",
                          polled=False),
    )
}


def partner_kinds() -> list[str]:
    """The channel kinds a partner's file may declare under channels:."""
    return sorted(name for name, r in INPUTS.items() if r.per_partner)


def load_partner_channel(kind: str, options: Mapping[str, Any], *,
                         partner: str) -> config.ChannelConfig:
    """A partner channel's validated settings; ConfigError for an unknown kind or bad settings."""
    registration = INPUTS.get(kind)
    if registration is None or not registration.per_partner:
        known = ", ".join(partner_kinds())
        raise errors.ConfigError(f"unknown channel kind {kind!r} (known: {known})")
    return config.load(registration.config, dict(options),
                       where=f"partner {partner} channel {kind}")


def build_input(kind: str, options: Mapping[str, Any] | config.ChannelConfig,
                **context: Any) -> Input:
    """An input of `kind` from its settings; ConfigError for an unknown kind or bad settings.

    context goes to the channel's constructor: `partner=` for a partner's channel, what
    the gateway decides for its own (the folder's `max_bytes=`, `large_bytes=`).
    """
    registration = INPUTS.get(kind)
    if registration is None:
        known = ", ".join(sorted(INPUTS))
        raise errors.ConfigError(f"unknown input kind {kind!r} (known: {known})")
    if isinstance(options, config.ChannelConfig):
        settings = options
    else:
        where = f"partner {context['partner']} channel {kind}" if "partner" in context else \
            f"input {kind}"
        settings = config.load(registration.config, dict(options), where=where)
    return registration.factory(settings, **context)
