"""Credentials kept out of logs and the store: the user:password@ of any URL in a text, hidden.

An ERP or database URL may carry its credentials (`http://user:pass@erp/events`), and
such a URL ends up in endpoints, error messages, the run summary and other libraries'
logs (httpx logs every request's URL). Everything that logs or stores one passes it
through redact(); loggers we do not own get RedactFilter.
"""

from __future__ import annotations

import logging
import re

HIDDEN = "***"
# scheme://userinfo@ : the userinfo runs to the last @ before the host, so a password
# holding a raw @ is hidden whole; it never spans a slash, ?, #, space or quote, so an
# e-mail address later in the text is left alone.
# Only ASCII spaces end it: a password may hold any other character.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#'\"<>\[\]]*@",
                       re.ASCII)


def redact(text: str) -> str:
    """text with the userinfo of every URL in it replaced by ***."""
    if "@" not in text:
        return text  # the common case, without a regex search
    return _USERINFO.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)


class RedactFilter(logging.Filter):
    """A logging filter that redacts a record's message and its traceback (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is printed redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


FILTER = RedactFilter()


def install(*loggers: logging.Logger | logging.Handler) -> None:
    """Add the one shared filter to loggers or handlers (once each)."""
    for target in loggers:
        if FILTER not in target.filters:
            target.addFilter(FILTER)
