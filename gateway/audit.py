"""Who did it, as the audit trail names a person at a shell (rows: gateway/store/audit_log.py)."""

from __future__ import annotations

import getpass


def cli_actor() -> str:
    """The actor of a command run from a shell: cli:<os user>."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry, e.g. in a bare container
        return "cli:unknown"
