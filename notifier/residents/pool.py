"""Reading and parsing a large roster's rows in worker processes, merged back in file order.

Reading a CSV and parsing its rows (phones, ID numbers, typed cells) is pure CPU work in Python
and most of an import's CPU; one process uses one core. A CSV that can be cut at record ends
(readers.CsvText) goes to the workers as pieces of its text: each reads its piece with
csv.reader, drops empty and footer rows and parses the rest by column, so only text goes out
and parsed columns come back (`parsed_table`); the chunks are put together again as the
in-process path cuts them. An XLSX sheet read by calamine is held in memory once the header is
found (Table.sheet_rows): one child forked then inherits it where this process stopped reading
(after the rows searched for the header), reads, converts and parses the rest in the chunks the
in-process path cuts, and streams them back, so nothing is sent out and only parsed columns come
back (`_forked_sheet`); this process loads the sheet and writes. Should that child fail (an
exception, killed), this process reads on from the row after the last chunk received, from its
own untouched copy, so the import is the in-process one. Other tables (an XLSX read by openpyxl,
which reads the file as it goes) send chunks of rows (`parsed`). Pool workers are forked when this
process runs one thread (they start at once), `spawn`ed otherwise (a forked child could inherit a
lock held by another thread); the sheet's child is only ever forked. Results come back in the
order they were sent, so everything done after parsing (row numbers, duplicate detection across
the whole file, the upsert) sees exactly the rows the in-process path yields. At most two pieces
or chunks per worker are in flight (the sheet's child: the chunk in the pipe, blocked until this
process reads it), so memory stays bounded. A small file, or one on a machine without an idle
core, is parsed in process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from ..errors import Problem
from ..fields import FieldSpec
from ..forked import Child, Send, can_fork
from .parse import Chunk, Plan, chunks, parse_chunk, plan, split
from .readers import Table, csv_piece_rows, resident_rows

Rows = Iterable[tuple[int, list[Any]]]


@dataclass(frozen=True)
class Pooling:
    """When and how to parse in worker processes."""

    min_rows: int = 20_000  # data rows at which the pool starts paying for itself (bench/importer.py)
    chunk_rows: int = 5_000
    workers: int = 0  # 0: one per core but the importing process's own, at most 4
    min_workers: int = 2  # fewer: parse rows in process (bench/importer.py measures 1 worker with 1)
    min_text_workers: int = 1  # a CSV's text read by forked workers: one halves this process's CPU
    max_load: float | None = None  # 1-minute load average over which the pool stays off; None: cores - 0.5

    def worker_count(self) -> int:
        """The importing process keeps a core busy itself (reading, duplicate checks, writing
        take about as long as parsing), so 2 cores get one worker, not two fighting it."""
        return self.workers or max(0, min((os.cpu_count() or 1) - 1, 4))

    def wanted(self, total: int | None) -> bool:
        """A big file, and at least two workers: with one or two on a 2-core machine the pool
        measured 1.5-2x slower than parsing in process (bench/importer.py): parsing by column
        is now under half of an import's CPU, and shipping the rows both ways costs about as
        much as it saves."""
        return (
            total is not None
            and total >= self.min_rows
            and self.worker_count() >= self.min_workers
            and self.idle_core()
        )

    def wanted_text(self, total: int | None) -> bool:
        """A big CSV whose text the workers read in pieces (readers.CsvText): the importing
        process sends a piece of text and gets parsed columns back, so a worker saves it the
        reading, the footer checks and the parsing (its CPU 3.0 -> 1.6 s for 100,000 rows): one
        forked worker is worth it on 2 cores when one is idle; spawned ones (this process runs
        other threads) need `min_workers`."""
        least = self.min_text_workers if _forks() else self.min_workers  # spawned: ~1 s each to start
        return (
            total is not None and total >= self.min_rows and self.worker_count() >= least and self.idle_core()
        )

    def wanted_sheet(self, total: int | None) -> bool:
        """A big XLSX sheet read by calamine (Table.sheet_rows): one worker forked once the sheet
        is in memory reads its rows, converts and parses them and sends parsed columns back, so
        this process only loads the sheet and writes (its CPU 3.5-4.0 -> 2.2-2.6 s for 100,000
        rows, the child's 1.8-2.1 s: bench/importer.py).
        Only forked (then the gate is wanted_text's): a spawned worker would have to load the
        workbook again (~1.3 s)."""
        return _forks() and self.wanted_text(total)

    def idle_core(self) -> bool:
        """Whether a core is idle for a worker: the pool only adds CPU (text and columns sent both
        ways), which pays when the workers run beside this process, not in turn with it. On the
        shared 2-core machine at a load average of 2-4 a pooled import mostly took 1.2-2x the wall
        time of an in-process one (bench/importer.py): with autogroup scheduling (on there) the cores are
        shared between sessions, not processes, so a busy machine gives the workers no core of
        their own."""
        limit = self.max_load if self.max_load is not None else (os.cpu_count() or 1) - 0.5
        try:
            return os.getloadavg()[0] <= limit
        except OSError:  # no load average on this platform
            return True


DEFAULT = Pooling()
IN_PROCESS = Pooling(min_rows=1 << 62)

_plan: Plan | None = None


def _init(header: list[str], mapping: list[tuple[int, FieldSpec]], birth: FieldSpec | None) -> None:
    global _plan
    _plan = plan(header, mapping, birth)  # its converters are closures: built here, not pickled


def _parse_piece(piece: str, first_row: int) -> tuple[Chunk, list[Problem]]:
    """A piece of CSV text read and parsed: its residents' rows, and the footer rows skipped."""
    assert _plan is not None, "worker started without its column mapping"
    skipped: list[Problem] = []
    return parse_chunk(csv_piece_rows(piece, first_row, skipped), _plan), skipped


def _context() -> BaseContext:
    """`fork` when this process runs one thread (the CLI): the worker starts at once, without
    importing notifier again (~1 s of CPU with `spawn`), and no other thread can hold a lock the
    child would inherit; `spawn` otherwise (an import run from a thread of `serve`)."""
    return multiprocessing.get_context("fork" if _forks() else "spawn")


def _forks() -> bool:
    return "fork" in multiprocessing.get_all_start_methods() and can_fork()


def _parse_chunk(chunk: list[tuple[int, list[Any]]]) -> Chunk:
    """A chunk parsed by column: a few lists pickle and unpickle far cheaper than a dict per row."""
    assert _plan is not None, "worker started without its column mapping"
    return parse_chunk(chunk, _plan)


def parsed_table(
    table: Table,
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None,
    *,
    pooling: Pooling = DEFAULT,
) -> Iterator[Chunk]:
    """Chunks of a table's parsed rows in file order (those of `parsed`): a CSV that can be read
    in pieces is read by the workers themselves when `pooling.wanted_text`, a sheet in memory by
    one forked worker when `pooling.wanted_sheet`; their footer rows are added to `table.skipped`
    as they come."""
    if table.sheet_rows is not None and pooling.wanted_sheet(table.total):
        yield from _forked_sheet(table, mapping, birth, pooling.chunk_rows)
        return
    if table.text is None or not pooling.wanted_text(table.total):
        yield from parsed(table.rows, table.header, mapping, birth, total=table.total, pooling=pooling)
        return
    size = max(1, len(table.text.text) // max(table.total or 1, 1) * pooling.chunk_rows)
    pieces = table.text.pieces(size)
    workers = pooling.worker_count()
    pending: deque[Future[tuple[Chunk, list[Problem]]]] = deque()
    buffered: list[Chunk] = []
    held = 0  # rows in `buffered`
    with ProcessPoolExecutor(
        workers, mp_context=_context(), initializer=_init, initargs=(table.header, mapping, birth)
    ) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    piece = next(pieces, None)
                    if piece is None:
                        break
                    pending.append(pool.submit(_parse_piece, *piece))
                if not pending:
                    break
                chunk, skipped = pending.popleft().result()
                table.skipped.extend(skipped)
                buffered.append(chunk)
                held += len(chunk)
                while held >= pooling.chunk_rows:
                    out, buffered = split(buffered, pooling.chunk_rows)
                    held -= len(out)
                    yield out
        finally:
            for f in pending:
                f.cancel()
    if held:
        yield split(buffered, held)[0]


def parsed(
    rows: Rows,
    header: list[str],
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None,
    *,
    total: int | None,
    pooling: Pooling = DEFAULT,
) -> Iterator[Chunk]:
    """Chunks of parse_chunk(rows, ...) in file order, parsed in worker processes when `total`
    (data rows) makes that worth it."""
    if not pooling.wanted(total):
        p = plan(header, mapping, birth)
        for chunk in chunks(rows, pooling.chunk_rows):
            yield parse_chunk(chunk, p)
        return
    workers = pooling.worker_count()
    source = chunks(rows, pooling.chunk_rows)
    pending: deque[Future[Chunk]] = deque()
    with ProcessPoolExecutor(
        workers,
        mp_context=_context(),
        initializer=_init,
        initargs=(header, mapping, birth),
    ) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    chunk = next(source, [])
                    if not chunk:
                        break
                    pending.append(pool.submit(_parse_chunk, chunk))
                if not pending:
                    return
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def _forked_sheet(
    table: Table, mapping: list[tuple[int, FieldSpec]], birth: FieldSpec | None, chunk_rows: int
) -> Iterator[Chunk]:
    """The chunks `parsed` gives of a sheet held in memory, read and parsed by a forked child:
    it inherits the sheet and `table.sheet_rows` where this process left them (after the rows
    the header was searched in), reads on from there exactly as `table.rows` would, and sends
    each parsed chunk with the footer rows skipped before it; the pipe holds back a child more
    than one chunk ahead. When the child fails (an exception, killed, no fork), this process reads
    on from the row after the last chunk received, as the in-process path would have: its own
    copy of the sheet is untouched, so the chunks are the same and an error is raised as it would be."""
    assert table.sheet_rows is not None
    numbered = table.sheet_rows
    done = 0  # the last row the child read of those whose chunks and skipped rows were received
    child = Child.start(lambda send: _send_sheet(send, numbered, table.header, mapping, birth, chunk_rows))
    if child is not None:
        ended = False
        try:
            for message in child.messages():
                if message[0] == "chunk":
                    _, chunk, skipped = message
                    table.skipped.extend(skipped)
                    # the rows read so far: a last, short chunk was cut at the sheet's end, after
                    # any footer rows below its last row (empty rows between are not reported)
                    done = max([chunk.rows[-1], *(p.row or 0 for p in skipped)])
                    yield chunk
                else:  # "end"
                    table.skipped.extend(message[1])
                    ended = True
                    break
        finally:
            child.stop(kill=not ended)
        if ended:
            table.sheet_rows = table.rows = iter(())  # this process's copy of the sheet is not read
            return
    p = plan(table.header, mapping, birth)
    rest = resident_rows(((n, cells) for n, cells in numbered if n > done), table.skipped)
    for chunk in chunks(rest, chunk_rows):
        yield parse_chunk(chunk, p)


def _send_sheet(
    send: Send,
    numbered: Iterator[tuple[int, list[Any]]],
    header: list[str],
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None,
    chunk_rows: int,
) -> None:
    """In the child: the sheet's chunks parsed, each sent with the footer rows skipped before it."""
    gc.disable()  # a short-lived process allocating rows without cycles (see parse.gc_paused)
    p = plan(header, mapping, birth)
    skipped: list[Problem] = []
    for chunk in chunks(resident_rows(numbered, skipped), chunk_rows):
        parsed = parse_chunk(chunk, p)
        send(("chunk", parsed, skipped))
        skipped.clear()
    send(("end", skipped))
