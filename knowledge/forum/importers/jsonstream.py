"""A JSON document read piece by piece, so a file holding one big list (a Piazza class,
a list of Discourse topics) is walked one element at a time in bounded memory.

The standard library's decoder does the parsing (``raw_decode`` on a sliding buffer);
this only walks the outer list or object and refills the buffer."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import IO, Any

from knowledge.forum.importers.common import ExportError

_WHITESPACE = " \t\n\r"
_DELIMITER = re.compile(r'[ \t\n\r,:\]}"]')
_DECODER = json.JSONDecoder()


class JsonStream:
    def __init__(self, raw: IO[bytes], where: str, chunk: int = 1 << 16) -> None:
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig")
        self.where = where
        self._chunk = chunk
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in the part of the text already dropped

    # --- buffer ---

    def _more(self, size: int) -> bool:
        if self._eof:
            return False
        try:
            data = self._text.read(size)
        except UnicodeDecodeError as exc:
            raise ExportError(f"{self.where}: not UTF-8 text ({exc.reason})") from None
        if not data:
            self._eof = True
            return False
        if self._pos > self._chunk:  # drop what has been read
            self._lines_before += self._buf.count("\n", 0, self._pos)
            self._buf = self._buf[self._pos :]
            self._pos = 0
        self._buf += data
        return True

    def _error(self, what: str, pos: int | None = None) -> ExportError:
        pos = self._pos if pos is None else pos
        line = self._lines_before + self._buf.count("\n", 0, pos) + 1
        return ExportError(f"{self.where}: malformed JSON at line {line}: {what}")

    # --- tokens ---

    def peek(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more(self._chunk):
                return ""

    def _take(self, expected: str) -> None:
        found = self.peek()
        if found != expected:
            raise self._error(f"expected {expected!r}, found {repr(found) if found else 'the end'}")
        self._pos += 1

    def value(self) -> Any:
        """The next whole JSON value."""
        self.peek()
        size = self._chunk
        while True:
            try:
                obj, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                # The buffer may have cut a token short ("tru", "-", a long string);
                # an error with a delimiter after it is in the text itself.
                cut = exc.msg.startswith("Unterminated string") or self._open_ended(exc.pos)
                if not cut or not self._more(size):
                    raise self._error(exc.msg, exc.pos) from None
                size *= 2  # a big value: grow fast rather than re-parse it many times
                continue
            # A number or literal ends at a delimiter: "12" or "7.5e" at the end of the
            # buffer may go on in the next chunk.
            if isinstance(obj, str | list | dict) or not self._open_ended(end):
                break
            if not self._more(size):
                break
        self._pos = end
        return obj

    def _open_ended(self, start: int) -> bool:
        """Whether no delimiter follows ``start`` in the buffer (more text may belong)."""
        return _DELIMITER.search(self._buf, start) is None

    def items(self) -> Iterator[Any]:
        """The elements of the list that comes next."""
        self._take("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield self.value()
            if self.peek() == ",":
                self._pos += 1
                continue
            self._take("]")
            return

    def members(self) -> Iterator[str]:
        """The keys of the object that comes next; after each key the caller reads its
        value (``value()`` or ``items()``) before asking for the next key."""
        self._take("{")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self._error("expected a key")
            key = self.value()
            self._take(":")
            yield key
            if self.peek() == ",":
                self._pos += 1
                continue
            self._take("}")
            return

    def end(self) -> None:
        """Check that nothing but blanks follows."""
        if self.peek():
            raise self._error("unexpected text after the JSON value")
