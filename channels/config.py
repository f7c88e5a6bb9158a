"""The base of every channel's config model: fields with description, default, example, secret."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from canonical import errors


class ChannelConfig(BaseModel):
    """A channel's settings, validated at load; unknown keys are refused, not ignored."""

    # A misspelt option silently ignored is worse than a refusal that names it.
    model_config = ConfigDict(extra="forbid", frozen=True)


def setting(default: Any = ..., *, description: str, example: Any, secret: bool = False,
            **constraints: Any) -> Any:
    """A config field; `secret` marks one that names or holds a secret, never to be logged."""
    # A secret field is also kept out of the model's repr, so a logged config cannot show it.
    return pydantic.Field(default, description=description, examples=[example],
                          json_schema_extra={"secret": secret}, repr=not secret, **constraints)


class EnvSecret(ChannelConfig):
    """A secret given by the name of the environment variable that holds it."""

    env: str = setting(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", example="PARTNER_SFTP_PASSWORD",
                       description="The environment variable's name.")

    def value(self) -> str:
        """The secret itself; ConfigError naming the variable (never its value) if unset."""
        found = os.environ.get(self.env)
        if not found:
            raise errors.ConfigError(f"environment variable {self.env} is not set")
        return found


@dataclass(frozen=True)
class FieldDoc:
    """One row of a channel's generated config reference."""

    name: str
    type: str
    required: bool
    default: Any
    description: str
    example: Any
    secret: bool


def describe(model: type[ChannelConfig]) -> list[FieldDoc]:
    """The reference rows of a config model, in declaration order (for docs and checks)."""
    schema = model.model_json_schema()["properties"]
    rows = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        rows.append(FieldDoc(
            name=name,
            type=str(schema[name].get("type") or schema[name].get("anyOf") or "object"),
            required=info.is_required(),
            default=None if info.is_required() else info.default,
            description=info.description or "",
            example=(info.examples or [None])[0],
            secret=bool(extra.get("secret")),
        ))
    return rows


def problems(model: type[ChannelConfig], options: dict[str, Any],
             ) -> tuple[ChannelConfig | None, list[tuple[tuple[str | int, ...], str]]]:
    """The validated model, or None and each problem as (key path within options, message).

    The input value is left out of every message: it may be a secret.
    """
    try:
        return model.model_validate(options), []
    except pydantic.ValidationError as exc:
        return None, [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]


def load(model: type[ChannelConfig], options: dict[str, Any], *, where: str) -> ChannelConfig:
    """Validate options into the model, or raise ConfigError naming `where` and each bad key."""
    settings, found = problems(model, options)
    if settings is None:
        text = "; ".join(f"{'.'.join(str(p) for p in loc) or '(top)'}: {msg}"
                         for loc, msg in found)
        raise errors.ConfigError(f"{where}: invalid settings: {text}")
    return settings
