"""Parsing a large roster's rows in worker processes, merged back in file order.

Row parsing (phones, ID numbers, typed cells) is pure CPU work in Python and most of an
import's time; one process uses one core. Chunks of rows go to `spawn`ed workers (a forked
child could inherit a lock held by another thread) that hold the compiled column mapping, and
come back in the order they were sent, so everything done after parsing (row numbers, duplicate
detection across the whole file, the upsert) sees exactly the rows the in-process path yields.
At most two chunks per worker are in flight, so memory stays bounded. A small file is parsed in
process: starting workers (~0.5 s) would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..fields import FieldSpec
from .parse import Chunk, Plan, chunks, parse_chunk, plan

Rows = Iterable[tuple[int, list[Any]]]


@dataclass(frozen=True)
class Pooling:
    """When and how to parse in worker processes."""

    min_rows: int = 20_000  # data rows at which the pool starts paying for itself (bench/importer.py)
    chunk_rows: int = 5_000
    workers: int = 0  # 0: one per core but the importing process's own, at most 4
    min_workers: int = 2  # fewer: parse in process (bench/importer.py measures 1 worker with 1)

    def worker_count(self) -> int:
        """The importing process keeps a core busy itself (reading, duplicate checks, writing
        take about as long as parsing), so 2 cores get one worker, not two fighting it."""
        return self.workers or max(0, min((os.cpu_count() or 1) - 1, 4))

    def wanted(self, total: int | None) -> bool:
        """A big file, and at least two workers: with one or two on a 2-core machine the pool
        measured 1.5-2x slower than parsing in process (bench/importer.py): parsing by column
        is now under half of an import's CPU, and shipping the rows both ways costs about as
        much as it saves."""
        return total is not None and total >= self.min_rows and self.worker_count() >= self.min_workers


DEFAULT = Pooling()
IN_PROCESS = Pooling(min_rows=1 << 62)

_plan: Plan | None = None


def _init(header: list[str], mapping: list[tuple[int, FieldSpec]], birth: FieldSpec | None) -> None:
    global _plan
    _plan = plan(header, mapping, birth)  # its converters are closures: built here, not pickled


def _parse_chunk(chunk: list[tuple[int, list[Any]]]) -> Chunk:
    """A chunk parsed by column: a few lists pickle and unpickle far cheaper than a dict per row."""
    assert _plan is not None, "worker started without its column mapping"
    return parse_chunk(chunk, _plan)


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
        mp_context=multiprocessing.get_context("spawn"),
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
