"""Grouped totals of the settled past, kept between queries.

Why: on the 10M-hit benchmark database a year of referrers is ~330k rollup rows (blocks and
days, see ``pyramid``) of ~130k distinct URLs. SQLite's GROUP BY sorts every one of those rows,
~150 ms however the blocks are cut, and ~240 ms with the ordering and the group count the API
returns. Nearly all of a long range lies before the block watermark D, where rows change only
through late writes (imports, back-dated hits). So the grouped totals of that settled part are
computed once per (site, dimension, time-zone mode, settled segments) and kept here; a query
then groups only its live days (today, usually a few thousand rows) in SQL and merges the two
in Python, touching only the rows of the page it returns.

Filtered questions (grouped from raw hits, see ``queries.grouped_from_raw_with_settled``) keep
the grouped totals of their hits before the watermark's UTC midnight in the same way, per
filter: those hits change only through the same late writes.

Exactness: the writer bumps meta ``settled_version`` in the same transaction as any write to a
UTC day before D (``writer.py``; and so does a fold that counts such hits, ``fold.py``), and a
query reads that version, the kept totals' source rows (when it must build them) and the live
rows inside one read transaction. Kept totals are used only at the version they were built at,
so every answer equals a plain GROUP BY over the same snapshot; a late write costs the next
query a rebuild, never a wrong count.

Memory: about 170 bytes per kept group (value text, index entry, two counters; measured with
tracemalloc on the benchmark's 130k referrer URLs); the least recently used totals are dropped
beyond ``budget`` groups in all.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from tinytrack.engine import pyramid

DEFAULT_BUDGET: Final = 400_000  # groups kept in all (~70 MB at worst)
VERSION_KEY: Final = "settled_version"
READ_VERSION: Final = f"SELECT value FROM meta WHERE key = '{VERSION_KEY}'"
BUMP_VERSION: Final = (
    f"INSERT INTO meta (key, value) VALUES ('{VERSION_KEY}', '1') ON CONFLICT (key) "
    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)

# (site, dimension code, local, settled segments) for rollups; (site, "raw:<column>", first
# second, end second, filters) for filtered questions grouped from the raw hits.
Key = tuple[object, ...]
Row = tuple[str, int, int]  # value, hits, uniques


@dataclass(slots=True, frozen=True)
class Totals:
    """Grouped totals of settled segments, ordered as the API orders groups: hits descending,
    then value (SQLite's binary order of UTF-8, which is Python's code-point order)."""

    version: int
    values: list[str]
    hits: array[int]
    uniques: array[int]
    index: dict[str, int]

    @classmethod
    def build(cls, version: int, rows: Iterable[Row]) -> Totals:
        values: list[str] = []
        hits, uniques = array("q"), array("q")
        for value, h, u in rows:
            values.append(value)
            hits.append(h)
            uniques.append(u)
        return cls(version, values, hits, uniques, {v: i for i, v in enumerate(values)})

    def page(
        self, live: Mapping[str, tuple[int, int]], offset: int, limit: int
    ) -> tuple[list[Row], int]:
        """Rows ``offset`` .. ``offset + limit`` of these totals plus the live ones, and the
        number of groups. Values the live rows touch get their merged totals and are placed
        by them; every other value keeps its settled place, so the walk reads only up to
        ``offset + limit + len(live)`` settled rows."""
        index, values, hits, uniques = self.index, self.values, self.hits, self.uniques
        touched: list[tuple[int, str, int]] = []
        new = 0
        for value, (h, u) in live.items():
            i = index.get(value)
            if i is None:
                new += 1
            else:
                h += hits[i]
                u += uniques[i]
            touched.append((-h, value, u))
        touched.sort()
        out: list[Row] = []
        want = offset + limit
        i = j = seen = 0
        n = len(values)
        while seen < want:
            while i < n and values[i] in live:
                i += 1
            take_touched = j < len(touched) and (
                i >= n or (touched[j][0], touched[j][1]) < (-hits[i], values[i])
            )
            if take_touched:
                neg, value, u = touched[j]
                row: Row = (value, -neg, u)
                j += 1
            elif i < n:
                row = (values[i], hits[i], uniques[i])
                i += 1
            else:
                break
            if seen >= offset:
                out.append(row)
            seen += 1
        return out, n + new


class SettledTotals:
    """The kept totals, least recently used dropped first beyond ``budget`` groups."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._entries: OrderedDict[Key, Totals] = OrderedDict()
        self._size = 0
        self.builds = 0  # how many totals were computed (tests and benchmarks read it)

    @property
    def size(self) -> int:
        """Groups kept in all."""
        return self._size

    def get(self, key: Key, version: int) -> Totals | None:
        totals = self._entries.get(key)
        if totals is None or totals.version != version:
            return None
        self._entries.move_to_end(key)
        return totals

    def put(self, key: Key, totals: Totals) -> None:
        self.builds += 1
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old.values)
        if len(totals.values) > self.budget:
            return
        self._entries[key] = totals
        self._size += len(totals.values)
        while self._size > self.budget:
            _key, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped.values)

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0


def split(
    segments: list[pyramid.Segment], complete_until: int, *, local: bool
) -> tuple[list[pyramid.Segment], list[pyramid.Segment]]:
    """(settled, live) segments. Blocks are settled (they are only planned once built); a day
    is settled when every UTC day its rows can lie on is before the watermark: in local mode
    a local day also reads the UTC day after it (see ``queries._rollup_parts``)."""
    last_settled = complete_until - 1 - (1 if local else 0)
    settled: list[pyramid.Segment] = []
    live: list[pyramid.Segment] = []
    for level, first, last in segments:
        if level != 0 or last <= last_settled:
            settled.append((level, first, last))
        elif first > last_settled:
            live.append((level, first, last))
        else:
            settled.append((0, first, last_settled))
            live.append((0, last_settled + 1, last))
    return settled, live
