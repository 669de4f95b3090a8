"""The in-process engine: storage, enrichment, privacy hashing, the writer, queries.

Imports nothing from the HTTP layer (a test checks that importing it does not load Litestar).
"""

from tinytrack.engine.core import (
    Engine,
    decode_event,
    decode_event_batch,
    decode_hit,
    decode_hit_batch,
    decode_kudo,
)

__all__ = [
    "Engine",
    "decode_event",
    "decode_event_batch",
    "decode_hit",
    "decode_hit_batch",
    "decode_kudo",
]
