"""Overlap reading with scoring: a bounded read-ahead in a background thread.

Tree traversal and Parquet encoding release the GIL, so reading, scoring and writing proceed
on separate cores while memory stays bounded by a few chunks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Done:
    pass


class _Item(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield `items` while a thread produces up to `depth` of them ahead; errors re-raise here."""
    slots: queue.Queue[_Item[T] | _Failed | _Done] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: _Item[T] | _Failed | _Done) -> bool:
        while not stop.is_set():
            try:
                slots.put(message, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(_Item(item)):
                    return
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(_Failed(err))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's files close now, not at garbage collection
        put(_Done())

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            message = slots.get()
            if isinstance(message, _Done):
                return
            if isinstance(message, _Failed):
                raise message.error
            yield message.value
    finally:
        stop.set()  # the consumer stopped early (error, SIGTERM): let the producer go
        producer.join()
