"""Streaming recognition: features, a streaming encoder (left-to-right LSTMs or chunked
self-attention) and greedy decoding that run while audio arrives (`Stream`), for models
trained with `listener.streaming: true` and monotonic, MoChA or local-m attention."""

from asrkit.streaming.stream import (
    KINDS_TEXT,
    STREAMING_KINDS,
    Partial,
    Stream,
    StreamResult,
    streaming_problem,
)

__all__ = [
    "KINDS_TEXT",
    "STREAMING_KINDS",
    "Partial",
    "Stream",
    "StreamResult",
    "streaming_problem",
]
