"""Cut an INDI byte stream into whole top-level XML elements.

An INDI stream is a sequence of elements with no root. Parsing it with a pull parser and
waiting for each element's end event is not enough: Debian 12's expat defers re-parsing an
incomplete token until more data arrives (a security fix backported to 2.5.0), so the last
message of a burst can sit unparsed until the next one comes. This framer finds element
boundaries itself, aware of quoted attribute values, and hands each complete element on.
Used by indical's simulated INDI drivers and by the INDI camera's frame connection."""

from __future__ import annotations

import re

_TAG_END_OR_QUOTE = re.compile(rb"[>\"']")


class ElementFramer:
    """Feed bytes in any chunking; get back each complete top-level element as bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0          # where scanning resumes
        self._depth = 0
        self._start = 0         # where the element being collected began

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        i = self._scan
        while True:
            k = buf.find(b"<", i)
            if k < 0:
                i = len(buf)
                break
            end = self._tag_end(buf, k + 1)
            if end < 0:            # the tag is not complete yet: wait for more bytes
                i = k
                break
            second = buf[k + 1:k + 2]
            if second in (b"?", b"!"):          # declaration or comment: not a message
                if self._depth == 0:
                    self._start = end + 1
            elif second == b"/":                # end tag
                self._depth -= 1
                if self._depth == 0:
                    out.append(bytes(buf[self._start:end + 1]))
                    self._start = end + 1
            elif buf[end - 1:end] == b"/":      # self-closing element
                if self._depth == 0:
                    out.append(bytes(buf[k:end + 1]))
                    self._start = end + 1
            else:                               # start tag
                if self._depth == 0:
                    self._start = k
                self._depth += 1
            i = end + 1
        # keep only what a later element still needs
        keep = self._start if self._depth > 0 else min(i, len(buf))
        del buf[:keep]
        self._start -= keep
        self._scan = i - keep
        if self._depth == 0:
            self._start = 0
        return out

    @staticmethod
    def _tag_end(buf: bytearray, j: int) -> int:
        """Index of the '>' closing the tag that starts before j, or -1 if not there yet."""
        while True:
            m = _TAG_END_OR_QUOTE.search(buf, j)
            if m is None:
                return -1
            if m.group() == b">":
                return m.start()
            close = buf.find(m.group(), m.end())
            if close < 0:
                return -1
            j = close + 1
