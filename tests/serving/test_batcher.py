"""The batcher: explanations never starve predictions, and their queue is bounded."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import numpy as np
import pytest

from sentiment.evaluation import explanation
from sentiment.serving import batcher

CHUNK_SECONDS = 0.05  # what one inference job costs in these tests


def slow_score(texts: list[str]) -> np.ndarray:
    """A model whose every call takes CHUNK_SECONDS, whatever its size."""
    time.sleep(CHUNK_SECONDS)
    return np.full(len(texts), 0.7, np.float32)


def long_explanation(score) -> list[dict]:
    """An explanation of a 300-word review scored 8 copies per job: 75 jobs, ~3.8 s alone, within a 60 s budget."""
    return explanation.explain_many(score, [[f"w{i}" for i in range(300)]], k=3, seconds=60, chunk_size=8)


def test_predictions_wait_one_chunk_at_most_while_explanations_run():
    async def main() -> tuple[list[float], int]:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            queue = batcher.Batcher(executor, True, max_batch=64, max_waiting=2)
            explaining = [asyncio.create_task(queue.explain(long_explanation, slow_score)) for _ in range(3)]
            await asyncio.sleep(0.3)  # the explanations are under way
            waits = []
            for _ in range(10):
                started = time.monotonic()
                await queue.score(slow_score, ["a plain review"])
                waits.append(time.monotonic() - started)
                await asyncio.sleep(0.05)
            for task in explaining:
                task.cancel()
            queue.close()
            return waits, len(explaining)

    waits, _ = asyncio.run(main())
    # One chunk of an explanation ahead, then its own call: never the explanations' seconds.
    assert max(waits) < 1.0, waits  # the explanations alone take ~11 s; behind them a prediction would wait seconds


def test_the_explanation_queue_is_bounded():
    async def main() -> list:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            queue = batcher.Batcher(executor, True, max_batch=64, max_waiting=1)
            tasks = [asyncio.create_task(queue.explain(long_explanation, slow_score)) for _ in range(3)]
            done = await asyncio.gather(*tasks[2:], return_exceptions=True)
            for task in tasks[:2]:
                task.cancel()
            queue.close()
            return done

    (third,) = asyncio.run(main())
    assert isinstance(third, batcher.Unavailable) and "retry later" in str(third)


def test_an_explanation_keeps_to_its_budget_inside_its_chunks():
    async def main() -> tuple[dict, float]:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            queue = batcher.Batcher(executor, True, max_batch=64)
            started = time.monotonic()
            (explained,) = await queue.explain(
                lambda score: explanation.explain_many(score, [[f"w{i}" for i in range(300)]], k=3, seconds=0.5, chunk_size=8), slow_score)
            queue.close()
            return explained, time.monotonic() - started

    explained, seconds = asyncio.run(main())
    assert seconds < 2.0 and "budget ran out" in explained["cut"]  # unbounded, it would take ~3.8 s


def test_stopping_refuses_new_work_and_abort_answers_what_waits():
    async def main() -> tuple[list, object]:
        with concurrent.futures.ThreadPoolExecutor(1) as executor:
            queue = batcher.Batcher(executor, False, max_batch=64)
            waiting = [asyncio.create_task(queue.score(slow_score, [f"review {i}"])) for i in range(5)]
            await asyncio.sleep(CHUNK_SECONDS / 2)  # the first is on the inference thread, the rest wait
            queue.stop_taking("stopping")
            with pytest.raises(batcher.Unavailable, match="stopping"):
                await queue.score(slow_score, ["a new one"])
            queue.abort("stopped before it was scored")
            results = await asyncio.gather(*waiting, return_exceptions=True)
            queue.close()
            return results, None

    results, _ = asyncio.run(main())
    assert all(isinstance(r, batcher.Unavailable) and "stopped before" in str(r) for r in results)  # the one in flight too


@pytest.fixture(autouse=True)
def seeded():
    """Nothing here is random: no seeding needed (and no TensorFlow imported)."""
    yield
