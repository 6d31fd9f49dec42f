"""Training and inference speed of every registered model on this machine (synthetic token ids).

    python benchmarks/throughput.py [--length 256] [--batch-size 64] [--batches 20]
    python benchmarks/throughput.py --recipe configs/lstm_v7.json   # one recipe, and without its --adversarial

Prints tokens/s for training steps (the model training fits: with --adversarial, its adversarial wrapper),
reviews/s for inference and peak RSS. Figures
depend on the machine and on what else runs on it; run it on an idle machine.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentiment import cli  # noqa: E402


def measure(config, name: str, length: int, batch_size: int, batches: int) -> dict:
    """Time ``batches`` training steps and inference batches of one model; return its figures."""
    import keras
    import numpy as np

    from sentiment import models
    from sentiment.training import experiment

    classifier = models.compile_model(models.build_model(config, np.ones(config.ngram_vocab_size, np.float32) if config.ngram_vocab_size else None),
                                      config)
    model = experiment.fitted_model(classifier, config)
    rng = np.random.default_rng(0)
    x = rng.integers(2, config.vocab_size, size=(batch_size * batches, length)).astype(np.int32)
    y = rng.integers(0, 2, size=len(x)).astype(np.float32)
    if config.ngram_vocab_size:  # a wide model also reads n-gram ids: about two per token (1- and 2-grams)
        x = {models.TOKEN_IDS: x, models.NGRAM_IDS: rng.integers(2, config.ngram_vocab_size, size=(len(y), 2 * length)).astype(np.int32)}
    head = keras.tree.map_structure(lambda a: a[:batch_size * 2], x)
    model.fit(head, y[:batch_size * 2], batch_size=batch_size, verbose=0)  # trace once
    model = classifier if model is not classifier else model
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    train_s = time.perf_counter() - started
    model = classifier
    infer_s = float("inf")
    for _ in range(3):  # best of three: the first call also traces the predict function
        started = time.perf_counter()
        model.predict(x, batch_size=batch_size, verbose=0)
        infer_s = min(infer_s, time.perf_counter() - started)
    return {
        "model": name,
        "params": model.count_params(),
        "train_tokens_per_s": len(y) * length / train_s,
        "infer_reviews_per_s": len(y) / infer_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=256, help="tokens per review")
    parser.add_argument("--batch-size", type=int, default=64, help="reviews per batch")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per model")
    parser.add_argument("--recipe", help="a configs/*.json recipe: that model alone (and without its adversarial training, if any)")
    args = parser.parse_args()
    cli.start_tensorflow_quietly()
    import dataclasses

    from sentiment import models
    from sentiment.config import make_config, read_recipe

    if args.recipe:
        recipe = read_recipe(args.recipe)
        config = make_config(recipe.pop("model", "lstm"), **{**recipe, "batch_size": args.batch_size})
        runs = [(config, Path(args.recipe).stem)]
        if config.adversarial:
            runs.append((dataclasses.replace(config, adversarial=0.0), f"{Path(args.recipe).stem}, no adversarial"))
    else:
        runs = [(make_config(name, batch_size=args.batch_size), name) for name in models.REGISTRY]

    print(f"length {args.length}, batch {args.batch_size}, {args.batches} batches, {os.cpu_count()} CPUs")
    print(f"{'model':<28} {'params':>10} {'train tokens/s':>15} {'infer reviews/s':>16}")
    for config, name in runs:
        r = measure(config, name, args.length, args.batch_size, args.batches)
        print(f"{r['model']:<28} {r['params']:>10,} {r['train_tokens_per_s']:>15,.0f} {r['infer_reviews_per_s']:>16,.0f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(lambda argv: main()))
