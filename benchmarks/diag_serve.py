"""``tinytrack serve`` with its write path cut down, for bench_single_breakdown.py ONLY.

Never use it for anything real: the cut-down variants acknowledge hits they do not store, or
never count them. They exist to show where a single hit's time goes, by taking parts of the
write away:

    nodb       the writer answers every queued hit at once; SQLite is never touched
    sleep:MS   the writer waits MS milliseconds per group commit (no CPU, no GIL) instead
    no-fold    the real commits, but hits are never folded into the rollups (tinytrack.engine
               .fold): what the fold costs the hits beside it

(Until the fold, rollups were kept in each hit's transaction; the variants that measured that
write path are in git history, commit 075429e, and their results in benchmarks/README.md.)

    python benchmarks/diag_serve.py VARIANT [tinytrack serve options...]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from tinytrack import cli
from tinytrack.engine import fold, writer


def _answered(jobs: list[Any]) -> list[list[writer.Stored]]:
    return [[writer.Stored(0, True) for _ in job.rows] for job in jobs]


def patch(variant: str) -> None:
    if variant == "nodb":

        async def nodb(self: writer.Writer, jobs: list[Any]) -> list[list[writer.Stored]]:
            return _answered(jobs)

        writer.Writer._write_hits = nodb  # type: ignore[method-assign]
    elif variant.startswith("sleep:"):
        seconds = float(variant.partition(":")[2]) / 1000

        async def sleep(self: writer.Writer, jobs: list[Any]) -> list[list[writer.Stored]]:
            await asyncio.sleep(seconds)
            return _answered(jobs)

        writer.Writer._write_hits = sleep  # type: ignore[method-assign]
    elif variant == "no-fold":
        for name in ("compute", "fold_all"):  # fail loudly if the fold changed
            if not hasattr(fold, name):
                raise SystemExit(f"diag_serve: tinytrack.engine.fold.{name} is gone")
        fold.compute = lambda raw, *args, **kwargs: fold.Fold(0, 0, [], [], False)
        fold.fold_all = lambda raw, *args, **kwargs: 0
    else:
        raise SystemExit(f"diag_serve: unknown variant {variant!r}")


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    patch(sys.argv[1])
    return cli.main(["serve", *sys.argv[2:]])


if __name__ == "__main__":
    raise SystemExit(main())
