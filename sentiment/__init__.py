"""Classify movie reviews as positive or negative with Keras LSTM / SimpleRNN models, from Python.

    >>> import sentiment
    >>> clf = sentiment.load()                      # the default model of saved_models/ (or a name, name/version, a path)
    >>> clf.predict(["This movie was wonderful", "Worst film I have ever seen"])
    [{'label': 'positive', 'probability': 0.98...}, {'label': 'negative', 'probability': 0.00...}]
    >>> clf.explain(["Not good at all, though the cast tries"], k=2)[0]["reasons"]["negative"]

``probability`` is the model's calibrated P(positive); ``label`` is ``positive`` at or above the
model's threshold (chosen at training, usually 0.5). The values are exactly those of ``predict.py``
and of the server's V1 API: the same LiteRT engine, without TensorFlow (importing this package
loads neither TensorFlow nor the model until ``load`` is called).

The rest of the package makes and measures models: ``data`` → ``models`` → ``training`` →
``evaluation`` → ``export`` → ``serving`` (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["Classifier", "load"]

DEFAULT_EXPLAIN = 3  # reasons each way, as predict.py --explain gives


class Classifier:
    """An exported model, loaded: ``predict`` and ``explain`` raw review strings."""

    def __init__(self, path: Path, threshold: float | None = None, trust_model: bool = False):
        from sentiment.serving import litert_engine

        self._engine = litert_engine.LiteRTPredictor(path, workers=1, trust_model=trust_model)
        self.path = self._engine.path
        self.threshold = self._engine.threshold if threshold is None else float(threshold)

    def __repr__(self) -> str:
        return f"sentiment.Classifier({str(self.path)!r}, threshold={self.threshold})"

    def predict(self, reviews: Iterable[str]) -> list[dict]:
        """Return ``{"label", "probability"}`` per review, in order; a review the model cannot read raises ``ValueError``."""
        return [self._row(result) for result in self._classify(reviews, 0)]

    def explain(self, reviews: Iterable[str], k: int = DEFAULT_EXPLAIN) -> list[dict]:
        """Return ``predict``'s rows with ``reasons``: the ``k`` words or phrases whose deletion moves each prediction most, each way."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        from sentiment.serving.reviews import reasons_fields

        return [{**self._row(result), "reasons": reasons_fields(result.reasons)} for result in self._classify(reviews, k)]

    def close(self) -> None:
        """Release the engine (worker processes, if a large call started any)."""
        self._engine.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _classify(self, reviews: Iterable[str], explain: int) -> list:
        """Classify as predict.py does (the same checks of each review); the first review it cannot classify is a ValueError."""
        from sentiment.serving import reviews as reading

        if isinstance(reviews, str):
            raise TypeError("give a list of reviews: predict([\"a review\"]), not a single string")
        items = [reading.argument_review(i, text) for i, text in enumerate(reviews, 1)]
        results = reading.classify(self._engine, items, self.threshold, explain=explain)
        for i, result in enumerate(results, 1):
            if result.error:
                raise ValueError(f"review {i}: {result.error}")
        return results

    @staticmethod
    def _row(result) -> dict:
        return {"label": result.label, "probability": result.probability}


def load(model: str | Path | None = None, models_dir: str | Path | None = None, threshold: float | None = None,
         trust_model: bool = False) -> Classifier:
    """Load an exported model: a name (``wide_lstm``: its newest version), ``name/version``, or a path; None: the default model.

    ``models_dir`` is where names are looked up (default: this checkout's ``saved_models/``, else
    ``./saved_models``). ``threshold`` overrides the model's own. Raises ``sentiment.errors.ModelError``
    (a ``SentimentError``) with a one-line reason if the model is missing or fails its checks.
    """
    from sentiment.config import DEFAULT_MODEL
    from sentiment.serving import exports

    return Classifier(exports.resolve_model(str(model or DEFAULT_MODEL), models_dir or default_models_dir()), threshold, trust_model)


def default_models_dir() -> Path:
    """This checkout's ``saved_models/`` when the package runs from one; else ``saved_models/`` under the working directory."""
    checkout = Path(__file__).resolve().parents[1] / "saved_models"
    return checkout if checkout.is_dir() else Path("saved_models")
