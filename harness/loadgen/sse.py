"""Incremental parser of a server-sent event stream (WHATWG HTML, section "Server-sent events").

Bytes go in as they are read from the socket, and the data of every complete event
comes out as bytes, which a JSON decoder takes without a separate UTF-8 decode. Rules kept from the standard:
- a line ends at LF, CRLF or CR, and a CR at the end of one read followed by an LF at
  the start of the next is one line ending;
- a leading UTF-8 byte order mark is skipped;
- a line that starts with ":" is a comment;
- a line "field: value" or "field:value" loses at most one space after the colon, and
  a line without a colon is a field name with an empty value;
- every "data" line appends its value to the event, and values are joined with "\n";
- other fields (event, id, retry and unknown ones) do not change the data;
- a blank line dispatches the event, and an event without data lines is not dispatched;
- bytes after the last blank line form an incomplete event, which is never dispatched.
Lines have no length limit. OpenAI-compatible servers end the stream with the data
"[DONE]", after which the parser ignores all input and `done` is True.
"""

_BOM = b"\xef\xbb\xbf"
_DONE = b"[DONE]"


class SSEParser:
    """Parser state of one event stream. feed() returns the data of each completed event."""

    __slots__ = ("_partial", "_data", "_skip_lf", "_bom_checked", "done")

    def __init__(self) -> None:
        # Bytes of the current unfinished line, kept as parts so that a long line read
        # in many pieces is joined once, not copied at every read.
        self._partial: list[bytes] = []
        self._data: list[bytes] = []
        self._skip_lf = False
        self._bom_checked = False
        self.done = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """Consume one read of the stream and return the data of the events it completed."""
        if self.done or not chunk:
            return []

        if self._skip_lf:
            # The previous read ended with CR, so an LF here belongs to that line ending.
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []

        if not self._bom_checked:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []

        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        last_lf = chunk.rfind(b"\n")
        if last_lf < 0:
            self._partial.append(chunk)
            return []

        complete, rest = chunk[: last_lf + 1], chunk[last_lf + 1 :]
        if self._partial:
            self._partial.append(complete)
            complete = b"".join(self._partial)
            self._partial = []
        if rest:
            self._partial.append(rest)

        # The split leaves an empty string after the final LF, which is not a line.
        return self._process_lines(complete.split(b"\n")[:-1])

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Remove a byte order mark from the start of the stream, which may span reads."""
        head = b"".join(self._partial) + chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            # Too short to decide; wait for more bytes.
            self._partial = [head]
            return b""
        self._bom_checked = True
        self._partial = []
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _process_lines(self, lines: list[bytes]) -> list[bytes]:
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value)
                continue

            if not line:
                if not data:
                    continue
                # Nearly every event has one data line, which needs no join.
                event = data[0] if len(data) == 1 else b"\n".join(data)
                data = self._data = []
                if event == _DONE:
                    self.done = True
                    self._partial = []
                    break
                events.append(event)
                continue

            # A bare "data" is the data field with an empty value. Comments (":") and
            # every other field leave the data unchanged.
            if line == b"data":
                data.append(b"")
        return events
