"""Server-sent events from raw byte chunks, with a cap on what one line or event holds.

`EventReader` is the SSE format's own reading rules (UTF-8; lines end at
CRLF, CR or LF; `event`, `data`, `id`, `retry` fields; a blank line ends an
event; comments and unknown fields are ignored) over chunks cut anywhere,
even inside a character or between CR and LF. A line the backend never ends
is not held without bound: past `limit` characters in one line, or in one
event's data, reading stops with `StreamBrokenError`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import codecs

from httpx_sse import ServerSentEvent

from nemo_mcp.backend.body import ANSWER_LIMIT, size_words
from nemo_mcp.errors import StreamBrokenError


class EventReader:
    """Feed it byte chunks as they come; it returns the events they complete."""

    def __init__(self, limit: int = ANSWER_LIMIT) -> None:
        self.limit = limit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line: list[str] = []  # the line begun and not yet ended
        self._line_size = 0
        self._held_cr = False  # a chunk ended with CR: the next may start with its LF
        self._event = ""
        self._data: list[str] = []
        self._data_size = 0
        self._last_id = ""
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """Whether an event (or a line) has begun and not yet ended."""
        return bool(self._line_size or self._data or self._event or self._retry is not None)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events `chunk` completes, in order."""
        return self._text(self._decoder.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a last line without its end counts; an unfinished event is
        dropped, as the format says."""
        events = self._text(self._decoder.decode(b"", final=True))
        if self._held_cr or self._line_size:
            self._held_cr = False
            last = self._take_line("")
            if last is not None:
                events.append(last)
        return events

    def _text(self, text: str) -> list[ServerSentEvent]:
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):
            self._held_cr = True
            text = text[:-1]
        if not text:
            return []
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        pieces = text.split("\n")
        tail = pieces.pop()  # what follows the last line end: the start of the next line
        events = []
        for piece in pieces:
            event = self._take_line(piece)
            if event is not None:
                events.append(event)
        if tail:
            self._line_size += len(tail)
            self._check(self._line_size, "a line")
            self._line.append(tail)
        return events

    def _take_line(self, piece: str) -> ServerSentEvent | None:
        """End the current line with `piece`, and read it."""
        if self._line:
            self._line.append(piece)
            line = "".join(self._line)
            self._line, self._line_size = [], 0
        else:
            line = piece
        self._check(len(line), "a line")
        return self._read(line)

    def _read(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not (self._event or self._data or self._last_id or self._retry is not None):
                return None
            event = ServerSentEvent(
                event=self._event, data="\n".join(self._data), id=self._last_id, retry=self._retry
            )
            self._event, self._data, self._data_size, self._retry = "", [], 0, None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            self._check(self._data_size, "an event")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _check(self, size: int, unit: str) -> None:
        if size > self.limit:
            raise StreamBrokenError(
                f"the agent stream sent {unit} of more than {size_words(self.limit)}, far "
                "more than any event holds, so it was dropped unread"
            )


__all__ = ["EventReader"]
