"""Log lines as JSON (`NEMO_LOG_FORMAT=json`), one object a line, for log collectors.

    {"time": "2026-12-07T01:02:03.456Z", "level": "WARNING", "logger": "nemo_mcp...",
     "message": "...", "exception": "..."}

The message (and any exception text) is what the redacting filter left: no token.
"""

from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, str] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def formatter(kind: str | None) -> logging.Formatter:
    """The formatter for `NEMO_LOG_FORMAT` (`json`, else the plain text lines)."""
    if (kind or "").strip().lower() == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


__all__ = ["JsonFormatter", "formatter"]
