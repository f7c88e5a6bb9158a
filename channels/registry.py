"""Every channel by name, outputs and inputs: its config model and its class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from canonical import errors
from channels import config, erp_file, erp_http, erp_sql, sftp, webhook
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
    factory: Callable[..., Input]  # (settings, *, partner=...) -> Input
    summary: str


INPUTS: Mapping[str, InputRegistration] = {
    r.name: r for r in (
        InputRegistration("sftp", sftp.SftpInputConfig, sftp.SftpInput,
                          "poll a partner's SFTP server: pinned host key, stable files only,"
                          " archived after the store's commit; acks put in its outbox"),
        InputRegistration("webhook", webhook.WebhookInputConfig, webhook.WebhookInput,
                          "the partner POSTs JSON, X12 or CSV to /v1/partners/<id>/messages,"
                          " signed as Standard Webhooks says; answered 202 once stored"),
    )
}


def build_input(kind: str, options: Mapping[str, Any], *, partner: str) -> Input:
    """A partner's input of `kind` from its settings; ConfigError for an unknown kind or bad settings."""
    try:
        registration = INPUTS[kind]
    except KeyError:
        known = ", ".join(sorted(INPUTS))
        raise errors.ConfigError(f"unknown input kind {kind!r} (known: {known})") from None
    settings = config.load(registration.config, dict(options),
                           where=f"partner {partner} channel {kind}")
    return registration.factory(settings, partner=partner)
