"""Training on several devices or machines with ``tf.distribute``: which strategy, who writes, and the multi-worker loop.

* ``off``: TensorFlow's default strategy (one device; cuDNN on a GPU).
* ``mirrored``: ``MirroredStrategy`` over this machine's GPUs (or its logical CPUs), trained by
  ``model.fit`` as usual.
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``. Keras 3.15's
  ``model.fit`` fails under it at the first step (tensorflow/tensorflow#72388), so these runs
  use :func:`fit_multi_worker`, a custom loop over ``strategy.run`` with the same schedule,
  early stopping, history and resume as ``training.fit``.

``batch_size`` is per replica everywhere: the global batch is ``batch_size × replicas``.
Only the chief writes the run directory; every other worker writes to a scratch directory
and restores from the chief's backup on resume (the run directory must be on a filesystem
all workers see).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from sentiment.config import Config
from sentiment.errors import ConfigError
from sentiment.models import save_model
from sentiment.rundir import RunDir
from sentiment.training import resume
from sentiment.training.fitting import FitResult, read_history, trim_history, val_losses, write_history_row
from sentiment.training.loop import LoopRules

log = logging.getLogger(__name__)

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]  # a worker's shard, per-replica batches


def resolve(config: Config) -> str:
    """Return the strategy ``config.distribute`` stands for on this machine (auto: mirrored with several GPUs)."""
    if config.distribute != "auto":
        return config.distribute
    return "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "off"


def make_strategy(config: Config) -> tf.distribute.Strategy:
    """Create the run's strategy; call it before any TensorFlow op runs (collectives are set up at start-up)."""
    kind = resolve(config)
    if kind == "off":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
    else:
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("--distribute multi_worker needs the TF_CONFIG environment variable (cluster and this worker's task)")
        check_tf_config(os.environ["TF_CONFIG"])
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log.info("distribute %s: %d replica(s) in sync, global batch %d", kind, strategy.num_replicas_in_sync,
             config.batch_size * strategy.num_replicas_in_sync)
    return strategy


def check_tf_config(text: str) -> None:
    """Raise a ConfigError unless TF_CONFIG is JSON with a cluster and this process's task type and index."""
    try:
        value = json.loads(text)
        cluster, task = value["cluster"], value["task"]
        ok = isinstance(cluster, dict) and task["type"] in cluster and 0 <= int(task["index"]) < len(cluster[task["type"]])
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ConfigError('TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}')


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Return True for a MultiWorkerMirroredStrategy (trained by the custom loop)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Return True for the one process that writes the run directory (always, without several workers)."""
    return strategy.extended.should_checkpoint


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """Return this worker's task index (0 without several workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id) if resolver is not None and resolver.task_id is not None else 0


def pipeline_config(config: Config, strategy: tf.distribute.Strategy) -> Config:
    """Return ``config`` with the batch size of this process's tf.data batches.

    ``--batch-size`` is per replica. One machine's pipeline feeds all its replicas, so its
    batches hold ``batch_size × replicas``; each worker of a multi-worker run has its own
    pipeline of per-replica batches (``distribute_datasets_from_function``).
    """
    if is_multi_worker(strategy):
        return config
    return dataclasses.replace(config, batch_size=config.batch_size * strategy.num_replicas_in_sync)


def weights_fingerprint(model: keras.Model) -> str:
    """Return a short SHA-256 of all weights: equal on every worker after a synchronous step."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def replica_steps(model: keras.Model, global_batch: int) -> tuple[Callable, Callable]:
    """Return the per-replica training and evaluation steps ``strategy.run`` calls on one batch ``(x, y)``.

    Both return this replica's (loss × reviews, correct, reviews, empty batches). A worker whose
    shard ran out gets an empty batch from the distributed iterator: 0 reviews and 0 tokens wide,
    which the recurrent layers cannot run on. Such a step skips the model (``tf.cond`` on the
    batch size) and adds zeros; a training step still applies zero gradients, because
    ``apply_gradients`` all-reduces them, a collective every replica must join. The loss is
    divided by the global batch (not the local one), so every review weighs the same.
    """
    variables = model.trainable_variables

    def batch_sums(x: tf.Tensor, y: tf.Tensor, training: bool) -> tuple[tf.Tensor, ...]:
        probs = tf.reshape(tf.cast(model(x, training=training), tf.float32), [-1])
        per_review = keras.losses.binary_crossentropy(y[:, None], probs[:, None])
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.cast(probs >= 0.5, tf.float32), y), tf.float32))
        return per_review, correct

    def gradients_and_sums(x: tf.Tensor, y: tf.Tensor) -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            per_review, correct = batch_sums(x, y, training=True)
            loss = tf.nn.compute_average_loss(per_review, global_batch_size=global_batch)
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Dense: the embedding's sparse gradients have a different row count on every worker, which
        # the all-gather of IndexedSlices inside a tf.function loop rejects (shape mismatch).
        return [tf.convert_to_tensor(g) for g in grads], tf.reduce_sum(per_review), correct

    def no_gradients() -> tuple[list[tf.Tensor], tf.Tensor, tf.Tensor]:
        return [tf.zeros(v.shape, v.dtype) for v in variables], tf.zeros([]), tf.zeros([])

    def train_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        reviews = tf.shape(y)[0]
        grads, loss_sum, correct = tf.cond(reviews > 0, lambda: gradients_and_sums(x, y), no_gradients)
        model.optimizer.apply_gradients(zip(grads, variables))  # all-reduces the gradients: on every replica
        return loss_sum, correct, tf.cast(reviews, tf.float32), tf.cast(reviews == 0, tf.float32)

    def eval_step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        def sums() -> tuple[tf.Tensor, tf.Tensor]:
            per_review, correct = batch_sums(x, y, training=False)
            return tf.reduce_sum(per_review), correct

        reviews = tf.shape(y)[0]
        loss_sum, correct = tf.cond(reviews > 0, sums, lambda: (tf.zeros([]), tf.zeros([])))
        return loss_sum, correct, tf.cast(reviews, tf.float32), tf.cast(reviews == 0, tf.float32)

    return train_step, eval_step


def make_steps(model: keras.Model, strategy: tf.distribute.Strategy, global_batch: int) -> tuple[Callable, Callable]:
    """Return tf.functions running one epoch of training / evaluation over a distributed dataset.

    Both return (loss × reviews, correct, reviews, empty replica batches) summed over all
    replicas and steps; see :func:`replica_steps` for the empty batches of a worker whose
    shard ran out before the others'.
    """
    train_step, eval_step = replica_steps(model, global_batch)

    def run_over(step: Callable) -> Callable:
        @tf.function
        def epoch(dataset: tf.distribute.DistributedDataset) -> tf.Tensor:
            totals = tf.zeros([4], tf.float32)
            for x, y in dataset:
                sums = strategy.run(step, args=(x, y))
                totals += tf.stack([strategy.reduce("SUM", s, axis=None) for s in sums])
            return totals

        return epoch

    return run_over(train_step), run_over(eval_step)


def fit_multi_worker(
    model: keras.Model,
    train_fn: DatasetFn,
    val_fn: DatasetFn,
    config: Config,
    run: RunDir,
    restore_from: RunDir,
    strategy: tf.distribute.Strategy,
    shuffle_epoch: tf.Variable,
) -> FitResult:
    """Train ``model`` (built under ``strategy``) until early stopping or ``config.epochs``, resumably; every worker calls it.

    ``run`` is where this worker writes (the run dir on the chief, a scratch dir elsewhere);
    ``restore_from`` is the chief's run, whose backup every worker resumes from.
    """
    rules = LoopRules.from_config(config)
    done = resume.restore(model, restore_from.backup)  # every worker takes up the chief's state
    losses = val_losses(read_history(restore_from))[:done]
    chief = is_chief(strategy)
    if chief:
        trim_history(run, done)
    if done:
        log.info("resuming %s after %d finished epoch(s)", restore_from, done)
    train_epoch, eval_epoch = make_steps(model, strategy, config.batch_size * strategy.num_replicas_in_sync)
    train_data = strategy.distribute_datasets_from_function(train_fn)
    val_data = strategy.distribute_datasets_from_function(val_fn)
    while not rules.should_stop(losses):
        epoch = len(losses)
        model.optimizer.learning_rate.assign(rules.learning_rate_at(epoch))
        shuffle_epoch.assign(epoch)  # seeds this epoch's shuffle (data.batching.make_train_dataset)
        started = time.perf_counter()
        train = train_epoch(train_data).numpy()
        train_end = time.perf_counter()
        val = eval_epoch(val_data).numpy()
        row = {"epoch": epoch, "accuracy": train[1] / train[2], "loss": train[0] / train[2],
               "learning_rate": rules.learning_rate_at(epoch), "val_accuracy": val[1] / val[2], "val_loss": val[0] / val[2],
               "train_seconds": train_end - started, "epoch_seconds": time.perf_counter() - started}
        losses.append(row["val_loss"])
        if chief:  # only the chief writes: best checkpoint, then history, then the backup (training.history_and_backup's order)
            if rules.best_epoch(losses) == epoch:
                save_model(model, run.checkpoint)  # a plain .keras file, loadable without a strategy
            write_history_row(run.history, row)
            resume.save(model, run.backup, epoch + 1)
        log.info("epoch %d: loss %.4f, accuracy %.4f, val_loss %.4f, val_accuracy %.4f (%.1f s)", epoch + 1, row["loss"],
                 row["accuracy"], row["val_loss"], row["val_accuracy"], row["epoch_seconds"])
        if train[3] or val[3]:
            log.info("epoch %d: %d training and %d validation batch(es) were empty (a worker's shard ran out first)",
                     epoch + 1, train[3], val[3])
    log.info("worker %d: final weights fingerprint %s", worker_index(strategy), weights_fingerprint(model))
    history = read_history(run) if chief else []
    return FitResult(history=history, best_epoch=rules.best_epoch(val_losses(history)) or 0)
