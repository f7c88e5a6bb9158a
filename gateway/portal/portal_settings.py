"""What the portal needs to know: where its session key lives, how large an upload may be."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = Path("var/portal/session.key")
MAX_UPLOAD = 512 * 1024
# Room in a request for the form around the file (boundaries, the CSRF field).
FORM_SLACK = 64 * 1024


@dataclass(frozen=True)
class PortalSettings:
    """Settings of the portal in one server process."""

    key_file: Path = KEY_FILE
    max_upload_bytes: int = MAX_UPLOAD
    session_seconds: float = 8 * 3600.0
    attempts_per_user: int = 5  # failed sign-ins per username and client ...
    attempts_per_client: int = 30  # ... and per client, in a window of
    attempts_window: float = 900.0

    @classmethod
    def from_env(cls, api_max_body: int) -> PortalSettings:
        """From EDIGW_PORTAL_* variables; an upload can never exceed the API's body limit
        (EDIGW_API_MAX_BODY) less the form around it."""
        env = os.environ.get
        wanted = int(env("EDIGW_PORTAL_MAX_UPLOAD") or MAX_UPLOAD)
        return cls(key_file=Path(env("EDIGW_PORTAL_SESSION_KEY_FILE") or KEY_FILE),
                   max_upload_bytes=max(1, min(wanted, api_max_body - FORM_SLACK)),
                   session_seconds=float(env("EDIGW_PORTAL_SESSION_SECONDS") or 8 * 3600))
