"""Read a CSV file record by record, so one bad byte, broken quote or huge field costs only its own row.

The csv module reads a text stream: one undecodable byte ends the whole read, and one
unterminated quote swallows every line after it into a single field. Here each physical line is
decoded on its own and a record may span only so many lines and bytes; a record that breaks a
rule is reported with its first line and the reading goes on at the next line.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: A record (one lead) longer than this is not a row of a lead list but a quote that never closed.
MAX_RECORD_BYTES = 64 * 1024
#: Physical lines one quoted record may span (a message with line breaks).
MAX_RECORD_LINES = 100
#: Undefined in cp1252: a file that has them is not cp1252 either.
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


class UnreadableFile(Exception):
    """The file cannot be opened or read at all."""


@dataclass(frozen=True)
class Record:
    """One CSV record: the line it starts on and its fields, or why it was rejected."""

    line: int
    fields: list[str] | None
    problem: str | None = None


def detect_encoding(path: Path) -> str:
    """Name the encoding Excel most likely wrote: UTF-8 (with or without BOM), else cp1252.

    A file whose non-ASCII bytes all decode as UTF-8 is UTF-8 (a bad byte in it rejects its own
    line). A file with no valid UTF-8 sequence at all but high bytes is cp1252 (Excel's "CSV" on
    Windows). A file with both is UTF-8 with some damaged lines.
    """
    with _open(path) as handle:
        start = handle.read(3)
        if start == codecs.BOM_UTF8:
            return "utf-8-sig"
        handle.seek(0)
        utf8_seen = invalid_seen = False
        for raw in handle:
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
                utf8_seen = True
            except UnicodeDecodeError:
                invalid_seen = True
            if utf8_seen:
                return "utf-8"
        return "cp1252" if invalid_seen else "utf-8"


class RecordReader:
    """The file's records in order (the header first), each with the line it starts on.

    Set `columns` once the header is read: a record spanning several lines that then has more
    fields than that is a stray quote pairing with another line's, and only its first line is
    rejected; the lines after it are read again.
    """

    def __init__(self, path: Path, encoding: str | None = None):
        self.path = path
        self.encoding = encoding or detect_encoding(path)
        self.columns = 0

    def __iter__(self) -> Iterator[Record]:
        with _open(self.path) as handle:
            yield from _records(handle, self.encoding, self)


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as error:
        raise UnreadableFile(f"{path}: cannot read: {error.strerror}") from error


def _decode(raw: bytes, encoding: str, first: bool) -> str:
    if first and encoding == "utf-8-sig":
        raw = raw.removeprefix(codecs.BOM_UTF8)
        encoding = "utf-8"
    if encoding == "utf-8-sig":
        encoding = "utf-8"
    if b"\x00" in raw:
        raise ValueError("a NUL byte (the file may be UTF-16 or binary; save it as CSV UTF-8)")
    if encoding == "cp1252" and _CP1252_UNDEFINED & set(raw):
        byte = next(b for b in raw if b in _CP1252_UNDEFINED)
        raise ValueError(f"byte 0x{byte:02x} is not text in cp1252")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not valid {encoding}") from None


def _records(handle: BinaryIO, encoding: str, shape: RecordReader) -> Iterator[Record]:
    """Assemble physical lines into records by quote parity, within the bounds above."""
    lines = enumerate(handle, start=1)
    pending: list[tuple[int, bytes]] = []  # lines to read again after a record that never closed
    first = True
    while True:
        if pending:
            number, raw = pending.pop(0)
        else:
            try:
                number, raw = next(lines)
            except StopIteration:
                return
        start, parts, size, problem = number, [raw], len(raw), None
        quotes = raw.count(b'"')
        taken: list[tuple[int, bytes]] = []
        following: tuple[int, bytes] | None
        while quotes % 2 == 1:  # a quoted field goes on to the next line
            if len(parts) >= MAX_RECORD_LINES or size > MAX_RECORD_BYTES:
                problem = (
                    f"a quoted field opened here does not close within {MAX_RECORD_LINES} lines or "
                    f'{MAX_RECORD_BYTES // 1024} KiB (a stray "?)'
                )
                break
            if pending:
                following = pending.pop(0)
            else:
                following = next(lines, None)
            if following is None:
                problem = 'a quoted field opened here never closes (a stray "?)'
                break
            taken.append(following)
            parts.append(following[1])
            size += len(following[1])
            quotes += following[1].count(b'"')
        if problem is not None:
            # Only this line is lost: the lines it swallowed are read again as records of their own.
            pending = taken + pending
            yield Record(start, None, problem)
            first = False
            continue
        raw_record = b"".join(parts)
        if size > MAX_RECORD_BYTES:
            yield Record(start, None, f"the row is longer than {MAX_RECORD_BYTES // 1024} KiB")
            first = False
            continue
        try:
            text = _decode(raw_record, encoding, first)
        except ValueError as error:
            yield Record(start, None, str(error))
            first = False
            continue
        first = False
        if not text.strip():
            continue
        try:
            rows = list(csv.reader([text], strict=True))
            fields = rows[0] if rows else []
        except csv.Error as error:
            problem, fields = f"not valid CSV: {error}", []
        if taken and (problem or (shape.columns and len(fields) > shape.columns)):
            # A stray quote paired with one further down: only its own line is lost.
            pending = taken + pending
            yield Record(start, None, problem or 'a stray " here runs into the following lines')
            continue
        yield Record(start, fields if problem is None else None, problem)
