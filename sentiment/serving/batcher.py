"""An inference thread per model, and batching: reviews of requests that arrive while a batch is scored go together.

Each model has its own ``Batcher`` (``Batchers``), so one model's heavy work never queues another's requests.

Explanations are background work with bounds of their own: they run one at a time on an explanation
thread (at most ``max_waiting`` more queue; beyond that a request is refused, ``Unavailable``), and each
scores its shortened copies through the inference thread in small chunks that yield to waiting
predictions, so a plain request waits for at most one chunk, however many explanations run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

import numpy as np

WAIT_POLL_SECONDS = 0.2  # how often the explanation thread checks, while it waits for a chunk, that the server still runs
Job = tuple[Callable[[list[str]], np.ndarray], list[str], asyncio.Future]


class Unavailable(Exception):
    """No room for this work now (the explanation queue is full, or the server is stopping): answered 503, to retry later."""



class Batcher:
    """Scores reviews on one inference thread; reviews of requests arriving while a batch runs go together into the next.

    The thread is the only one that touches a LiteRT interpreter (they are not thread-safe); with
    ``batching`` off each request is scored on its own, in arrival order. Background jobs (explanation
    chunks) are taken only when no prediction waits.
    """

    def __init__(self, executor: concurrent.futures.Executor, batching: bool, max_batch: int, max_waiting: int = 2):
        self.executor, self.batching, self.max_batch = executor, batching, max_batch
        self._pending: list[Job] = []
        self._background: list[Job] = []
        self._drainer: asyncio.Task | None = None
        self._explainer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="explanation")
        self._explanations, self.max_waiting = 0, max_waiting  # running or queued; at most 1 + max_waiting
        self._inflight: list[Job] = []  # the batch on the inference thread now
        self.stopping: str | None = None  # why no new work is taken (the server is stopping)
        self._closed = False

    async def score(self, score: Callable[[list[str]], np.ndarray], texts: list[str], background: bool = False) -> np.ndarray:
        """Return ``score(texts)``, computed on the inference thread together with other requests' reviews."""
        if self.stopping:
            raise Unavailable(self.stopping)
        future = asyncio.get_running_loop().create_future()
        (self._background if background else self._pending).append((score, texts, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def run(self, work: Callable[[], Any]) -> Any:
        """Run other work on the inference thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)

    async def explain(self, work: Callable[[Callable[[list[str]], np.ndarray]], Any], score: Callable[[list[str]], np.ndarray]) -> Any:
        """Run ``work(scorer)`` on the explanation thread, its scorer's calls as background jobs; ``Unavailable`` when the queue is full."""
        if self._explanations > self.max_waiting:
            raise Unavailable(f"{self._explanations} explanations are running or waiting: retry later, or ask without \"explain\"")
        loop = asyncio.get_running_loop()

        def background_score(texts: list[str]) -> np.ndarray:  # on the explanation thread
            if self._closed or loop.is_closed():
                raise Unavailable("the server is stopping")
            future = asyncio.run_coroutine_threadsafe(self.score(score, texts, background=True), loop)
            while True:  # never wait on a loop that has stopped: a thread left waiting would hold the process at exit
                try:
                    return future.result(timeout=WAIT_POLL_SECONDS)
                except concurrent.futures.TimeoutError:
                    if self._closed or loop.is_closed() or not loop.is_running():
                        future.cancel()
                        raise Unavailable("the server is stopping") from None

        self._explanations += 1
        try:
            return await loop.run_in_executor(self._explainer, work, background_score)
        finally:
            self._explanations -= 1

    def stop_taking(self, reason: str) -> None:
        """Take no new work (it gets ``Unavailable``); what is queued still runs."""
        self.stopping = reason

    def abort(self, reason: str) -> None:
        """Answer everything still waiting, and the batch on the inference thread, with ``Unavailable`` now."""
        for *_, future in self._pending + self._background + self._inflight:
            if not future.done():
                future.set_exception(Unavailable(reason))
        self._pending.clear()
        self._background.clear()

    def close(self) -> None:
        """Stop the explanation and inference threads (an explanation running stops at its next chunk)."""
        self._closed = True
        self._explainer.shutdown(wait=False, cancel_futures=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _take(self) -> list[Job]:
        """Take the next batch: the first waiting prediction (else background job) and, when batching, those after it for the
        same model, up to ``max_batch`` reviews."""
        queue = self._pending if self._pending else self._background
        first, *rest = queue
        batch, size = [first], len(first[1])
        for item in rest:
            if not self.batching or item[0] != first[0] or size + len(item[1]) > self.max_batch:  # bound methods: ==, not is
                break
            batch.append(item)
            size += len(item[1])
        del queue[: len(batch)]
        return batch

    async def _drain(self) -> None:
        """Score pending requests batch by batch until none is left."""
        while self._pending or self._background:
            batch = self._inflight = self._take()
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


class Batchers:
    """One ``Batcher`` per model, each with its own inference thread: a slow model's work never waits on another's."""

    def __init__(self, batching: bool, max_batch: int, max_waiting: int):
        self.batching, self.max_batch, self.max_waiting = batching, max_batch, max_waiting
        self._made: dict[str, Batcher] = {}

    def for_model(self, name: str) -> Batcher:
        """The model's batcher (made on first use)."""
        if name not in self._made:
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"inference-{name[:20]}")
            self._made[name] = Batcher(executor, self.batching, self.max_batch, self.max_waiting)
        return self._made[name]

    def stop_taking(self, reason: str) -> None:
        """Every batcher takes no new work."""
        for batcher in self._made.values():
            batcher.stop_taking(reason)

    def abort(self, reason: str) -> None:
        """Every batcher answers what still waits with ``Unavailable``."""
        for batcher in self._made.values():
            batcher.abort(reason)

    def close(self) -> None:
        """Stop every batcher's threads."""
        for batcher in self._made.values():
            batcher.close()
