"""Size of the browser scripts as served: readable, minified (what /embed/{uid}/min.js sends) and
gzipped at level 9 (roughly what a compressing proxy sends). Budget: the core page-view tracker
(embed, minified) <= 2 KB gzipped; widget code is a separate file loaded only when asked for.

    .venv/bin/python benchmarks/bench_embed_size.py
"""

from __future__ import annotations

import gzip

import common

from tinytrack.server.embed import script

BUDGET = 2048


def main() -> int:
    print(f"embed script sizes | tinytrack {common.code_version()}")
    print(f"  {'file':<22}{'bytes':>8}{'gzip -9':>10}")
    core_gz = 0
    for name, url in (("embed", "/embed/{uid}"), ("widgets", "/widgets/v1")):
        for minified in (False, True):
            body = script(name, minified=minified).body
            gz = len(gzip.compress(body, 9))
            label = url + ("/min.js" if minified and name == "embed" else
                           ".min.js" if minified else ".js")
            print(f"  {label:<22}{len(body):>8,}{gz:>10,}")
            if name == "embed" and minified:
                core_gz = gz
    ok = core_gz <= BUDGET
    print(f"\ncore tracker, minified + gzip: {core_gz:,} bytes; budget {BUDGET:,} -> "
          f"{common.verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
