"""One inference thread for every model, and batching: reviews of requests that arrive while a batch is scored go together."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

import numpy as np


class Batcher:
    """Scores reviews on one inference thread; reviews of requests arriving while a batch runs go together into the next.

    The thread is the only one that touches a LiteRT interpreter (they are not thread-safe); with
    ``batching`` off each request is scored on its own, in arrival order.
    """

    def __init__(self, executor: concurrent.futures.Executor, batching: bool, max_batch: int):
        self.executor, self.batching, self.max_batch = executor, batching, max_batch
        self._pending: list[tuple[Callable[[list[str]], np.ndarray], list[str], asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def score(self, score: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """Return ``score(texts)``, computed on the inference thread together with other requests' reviews."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((score, texts, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def run(self, work: Callable[[], Any]) -> Any:
        """Run other work (an explanation) on the inference thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    def _take(self) -> list[tuple[Callable, list[str], asyncio.Future]]:
        """Take the next batch: the first pending request and, when batching, those after it for the same model, up to ``max_batch`` reviews."""
        first, *rest = self._pending
        batch, size = [first], len(first[1])
        for item in rest:
            if not self.batching or item[0] != first[0] or size + len(item[1]) > self.max_batch:  # bound methods: ==, not is
                break
            batch.append(item)
            size += len(item[1])
        del self._pending[: len(batch)]
        return batch

    async def _drain(self) -> None:
        """Score pending requests batch by batch until none is left."""
        while self._pending:
            batch = self._take()
            texts = [text for _, texts, _ in batch for text in texts]
            try:
                scores = await self.run(lambda: batch[0][0](texts))
            except Exception as e:  # noqa: BLE001 - handed to every waiting request, which answers 500
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for _, texts, future in batch:
                if not future.done():
                    future.set_result(scores[start : start + len(texts)])
                start += len(texts)
