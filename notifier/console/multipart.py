"""A form with one file, read from the request stream straight into a private file, bounded in size.

Starlette's own form parser spools files into the system's temporary folder and bounds only
the other fields; a roster holds personal data, so here it goes from the socket to a 0600 file
the caller names (`target`), and the upload stops at `limit` bytes. The form's fields come before
its file (browsers send them in page order, and every console form starts with its CSRF token):
`may_store` sees them before a byte of the file is written, so a forged post stores nothing.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

FIELD_MAX = 4096  # bytes of one ordinary field (a token, a choice)
FIELDS_MAX = 16
NAME_MAX = 120  # characters of a stored file name
DRAIN_FACTOR = 4  # after a refusal, read (and drop) up to this many times the limit, so the browser
# gets the answer instead of a reset connection; a larger body is cut off


class Refusal(StrEnum):
    NO_FILE = "no_file"
    TOO_BIG = "too_big"
    FILE_TYPE = "file_type"
    MALFORMED = "malformed"
    NOT_ALLOWED = "not_allowed"  # may_store said no (the CSRF token was missing or wrong)


@dataclass
class Received(Mapping[str, str]):
    """The form's fields (a Mapping, like Starlette's FormData) and the stored file, if any."""

    fields: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # the stored file (also when refused part-way: the caller removes it)
    filename: str = ""  # the file's name as sent, made safe to store (no folders, no control characters)
    size: int = 0
    refused: Refusal | None = None

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


class _Stop(Exception):
    pass


def safe_name(sent: str) -> str:
    """The last path component of a sent file name, without control characters, at most NAME_MAX long."""
    name = unicodedata.normalize("NFC", sent.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > NAME_MAX:
        suffix = Path(name).suffix[:10]
        name = name[: NAME_MAX - len(suffix)] + suffix
    return name


async def receive(
    request: Request,
    *,
    file_field: str,
    limit: int,
    suffixes: tuple[str, ...],
    may_store: Callable[[Mapping[str, str]], bool],
    target: Callable[[str], Path],
) -> Received:
    """Read a multipart/form-data body. The file of `file_field` (one, with one of `suffixes`) is
    written to `target(safe name)`, created 0600; more than `limit` bytes of it refuse the upload."""
    out = Received()
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        out.refused = Refusal.MALFORMED
        return out
    declared = request.headers.get("content-length", "")
    too_big_already = declared.isdigit() and int(declared) > limit + FIELD_MAX * FIELDS_MAX
    part: dict[str, bytes] = {}
    data = bytearray()
    pending: list[bytes] = []
    state: dict[str, BinaryIO | None] = {"file": None}

    def refuse(why: Refusal) -> None:
        out.refused = why
        raise _Stop

    def on_part_begin() -> None:
        part.clear()
        data.clear()

    def on_header_field(buf: bytes, start: int, end: int) -> None:
        part["name"] = part.get("name", b"") + buf[start:end]

    def on_header_value(buf: bytes, start: int, end: int) -> None:
        part["value"] = part.get("value", b"") + buf[start:end]

    def on_header_end() -> None:
        if part.pop("name", b"").lower() == b"content-disposition":
            part["disposition"] = part.get("value", b"")
        part.pop("value", None)

    def on_headers_finished() -> None:
        _, options = parse_options_header(part.get("disposition", b""))
        name = _text(options.get(b"name", b""))
        part["field"] = name.encode()
        if b"filename" not in options:
            if len(out.fields) >= FIELDS_MAX:
                refuse(Refusal.MALFORMED)
            return
        sent = safe_name(_text(options[b"filename"]))
        if not sent and name == file_field:
            return  # the file input left empty: the browser sends an empty part
        if name != file_field or state["file"] is not None or out.file is not None:
            refuse(Refusal.MALFORMED)
        if Path(sent).suffix.lower() not in suffixes:
            out.filename = sent
            refuse(Refusal.FILE_TYPE)
        if not may_store(out.fields):
            refuse(Refusal.NOT_ALLOWED)
        out.filename = sent
        if too_big_already:
            refuse(Refusal.TOO_BIG)
        out.file = target(sent)
        fd = os.open(out.file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        state["file"] = os.fdopen(fd, "wb")
        part["is_file"] = b"1"

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        if part.get("is_file"):
            out.size += end - start
            if out.size > limit:
                refuse(Refusal.TOO_BIG)
            pending.append(bytes(buf[start:end]))
        elif part.get("field") is not None:
            if len(data) + end - start > FIELD_MAX:
                refuse(Refusal.MALFORMED)
            data.extend(buf[start:end])

    def on_part_end() -> None:
        if part.get("is_file"):
            return
        name = part.get("field", b"").decode()
        if name and name != file_field:
            out.fields[name] = _text(bytes(data))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    stream = request.stream()
    try:
        async for chunk in stream:
            parser.write(chunk)
            await _flush(state["file"], pending)
        parser.finalize()
        await _flush(state["file"], pending)
    except _Stop:
        await _drain(stream, limit * DRAIN_FACTOR)
    except FormParserError:
        out.refused = Refusal.MALFORMED
    except BaseException:  # the client went away, or worse: keep nothing of a half-received file
        if out.file is not None:
            out.file.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                out.file.parent.rmdir()
        raise
    finally:
        if state["file"] is not None:
            await run_in_threadpool(state["file"].close)
    if out.refused is None and out.file is None:
        out.refused = Refusal.NO_FILE
    return out


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def _flush(file: BinaryIO | None, pending: list[bytes]) -> None:
    """Write what the parser handed over, in the thread pool (the event loop keeps serving)."""
    chunks = b"".join(pending)
    pending.clear()
    if file is not None and chunks:
        await run_in_threadpool(file.write, chunks)


async def _drain(stream: AsyncIterator[bytes], budget: int) -> None:
    read = 0
    async for chunk in stream:
        read += len(chunk)
        if read > budget:
            return
