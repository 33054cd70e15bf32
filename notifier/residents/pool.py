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
from itertools import islice
from typing import Any

from ..errors import Problem
from ..fields import FieldSpec
from .parse import ParsedRow, parse_rows

Rows = Iterable[tuple[int, list[Any]]]


@dataclass(frozen=True)
class Pooling:
    """When and how to parse in worker processes."""

    min_rows: int = 20_000  # data rows at which the pool starts paying for itself (bench/importer.py)
    chunk_rows: int = 5_000
    workers: int = 0  # 0: one per core but the importing process's own, at most 4

    def worker_count(self) -> int:
        """The importing process keeps a core busy itself (reading, duplicate checks, writing
        take about as long as parsing), so 2 cores get one worker, not two fighting it."""
        return self.workers or max(0, min((os.cpu_count() or 1) - 1, 4))

    def wanted(self, total: int | None) -> bool:
        """A big file, and at least two workers: with one (a 2-core machine) the pool measured
        slower than parsing in process (bench/importer.py), the importing process being the bound."""
        return total is not None and total >= self.min_rows and self.worker_count() >= 2


DEFAULT = Pooling()
IN_PROCESS = Pooling(min_rows=1 << 62)

_plan: tuple[list[str], list[tuple[int, FieldSpec]], FieldSpec | None] | None = None


def _init(header: list[str], mapping: list[tuple[int, FieldSpec]], birth: FieldSpec | None) -> None:
    global _plan
    _plan = (header, mapping, birth)


Packed = tuple[int, tuple[str, ...], list[Any], list[Problem] | None, list[Problem] | None]


def _parse_chunk(chunk: list[tuple[int, list[Any]]]) -> list[Packed]:
    """Parsed rows as plain tuples: unpickling a dataclass with a dict per row costs the importing
    process ~20 µs a row, as much as it saves; tuples whose key tuples are shared (pickled once
    per chunk) cost ~5 µs."""
    assert _plan is not None, "worker started without its column mapping"
    keysets: dict[tuple[str, ...], tuple[str, ...]] = {}
    out: list[Packed] = []
    for r in parse_rows(chunk, *_plan):
        keys = tuple(r.values)
        out.append(
            (
                r.row,
                keysets.setdefault(keys, keys),
                list(r.values.values()),
                r.errors or None,
                r.warnings or None,
            )
        )
    return out


def _unpacked(packed: list[Packed]) -> Iterator[ParsedRow]:
    for row, keys, values, errors, warnings in packed:
        yield ParsedRow(row, dict(zip(keys, values, strict=True)), errors or [], warnings or [])


def parsed(
    rows: Rows,
    header: list[str],
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None,
    *,
    total: int | None,
    pooling: Pooling = DEFAULT,
) -> Iterator[ParsedRow]:
    """parse_rows(rows, ...), in worker processes when `total` (data rows) makes that worth it."""
    if not pooling.wanted(total):
        yield from parse_rows(rows, header, mapping, birth)
        return
    workers = pooling.worker_count()
    source = iter(rows)
    pending: deque[Future[list[Packed]]] = deque()
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(header, mapping, birth),
    ) as pool:
        try:
            while True:
                while len(pending) < 2 * workers:
                    chunk = list(islice(source, pooling.chunk_rows))
                    if not chunk:
                        break
                    pending.append(pool.submit(_parse_chunk, chunk))
                if not pending:
                    return
                yield from _unpacked(pending.popleft().result())
        finally:
            for f in pending:
                f.cancel()
