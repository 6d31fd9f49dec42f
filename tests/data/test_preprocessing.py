"""Text → token ids: standardization, vocabulary, truncation, and train/serve parity of the one preprocessing layer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_reviews, write_csv

from sentiment import models
from sentiment.data import batching, preprocessing


def clean(text: str) -> str:
    return preprocessing.standardize_texts([text])[0]


def test_standardize_strips_markup_and_punctuation():
    assert clean('A <br /><br />GREAT film, "really"!') == "a great film really !"
    assert clean("Don't   miss it?<br/>") == "don't miss it ?"
    assert clean("<br /> ... <br />") == ""


def test_standardize_keeps_non_ascii_letters():
    assert clean("Amélie, CAFÉ — don’t miss «it»") == "amélie café don't miss it"


def test_reviews_empty_after_standardization_are_skipped(tmp_path, tiny_config, caplog):
    rows = make_reviews(50) + [("<br /><br />", 1), ("  ...  ", 0)]
    path = write_csv(tmp_path / "r.csv", rows)
    with caplog.at_level("WARNING"):
        splits = preprocessing.load_clean_splits(tiny_config(data=str(path)))
    assert sum(splits.sizes().values()) == 50
    assert "skipped" in caplog.text


def test_vocabulary_comes_from_training_text_only(csv_path, tiny_config):
    config = tiny_config(vocab_size=1000)
    splits = preprocessing.load_clean_splits(config)
    splits.validation.texts[0] = "zzzvalidationonlyword " + splits.validation.texts[0]
    vocabulary = preprocessing.learn_vocabulary(splits.train.texts, config)
    assert "zzzvalidationonlyword" not in vocabulary
    assert vocabulary[:2] == ["", "[UNK]"]


def test_saved_vocabulary_reproduces_the_ids_even_when_full(tmp_path, csv_path, tiny_config):
    """Resume and the study rebuild the preprocessor from vocabulary.txt: ids must not shift."""
    config = tiny_config(vocab_size=12)  # far fewer slots than words: the vocabulary is full
    splits = preprocessing.load_clean_splits(config)
    vocabulary = preprocessing.learn_vocabulary(splits.train.texts, config)
    assert len(vocabulary) == 12
    preprocessing.save_vocabulary(vocabulary, tmp_path / "vocabulary.txt")
    again = preprocessing.load_vocabulary(tmp_path / "vocabulary.txt")
    assert again == vocabulary
    texts = tf.constant(splits.test.texts)
    np.testing.assert_array_equal(preprocessing.make_preprocessor(config, vocabulary)(texts).numpy(),
                                  preprocessing.make_preprocessor(config, again)(texts).numpy())


def test_tail_truncation_keeps_the_last_tokens_and_right_padding():
    layer = preprocessing.TruncateTokens(3, "tail")
    ids = np.array([[5, 6, 7, 8, 9], [5, 6, 0, 0, 0], [1, 2, 3, 4, 0]], dtype=np.int32)
    np.testing.assert_array_equal(layer(ids).numpy(), [[7, 8, 9], [5, 6, 0], [2, 3, 4]])
    np.testing.assert_array_equal(preprocessing.TruncateTokens(3, "head")(ids).numpy(), ids[:, :3])


def splits_and_preprocessor(tiny_config, **overrides):
    config = tiny_config(vocab_size=1000, **overrides)
    splits = preprocessing.load_clean_splits(config)
    return config, splits, preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(splits.train.texts, config))


@pytest.mark.parametrize("truncate", ["head", "tail"])
def test_training_and_serving_see_the_same_token_ids(csv_path, tiny_config, truncate):
    """The tf.data pipeline and the end-to-end model call the same layer: identical ids, identical outputs."""
    config, splits, preprocessor = splits_and_preprocessor(tiny_config, max_len=10, truncate=truncate)
    from_pipeline = [ids.numpy() for ids, _ in batching.encode(splits.test.records(), preprocessor)]
    assert max(len(ids) for ids in from_pipeline) == 10  # some reviews were truncated
    served = preprocessor(tf.constant(splits.test.texts)).numpy()
    for row, ids in zip(served, from_pipeline):
        np.testing.assert_array_equal(row[: len(ids)], ids)
        assert (row[len(ids):] == 0).all()
    classifier = models.build_model(config)
    end_to_end = models.build_end_to_end(classifier, preprocessor)
    np.testing.assert_allclose(end_to_end(tf.constant(splits.test.texts[:4])).numpy(),
                               classifier(tf.constant(served[:4])).numpy(), rtol=1e-5)


def test_train_batches_are_bucketed_and_right_padded(csv_path, tiny_config):
    config, splits, preprocessor = splits_and_preprocessor(tiny_config, max_len=60, batch_size=8)
    widths, seen = [], 0
    for ids, labels in batching.make_train_dataset(splits.train, preprocessor, config, batching.epoch_variable()):
        ids = ids.numpy()
        assert ids.dtype == np.int32 and labels.dtype == tf.float32
        assert ids.shape[1] <= 60
        lengths = (ids != 0).sum(axis=1)
        assert lengths.min() > 0  # no fully masked row
        for row, n in zip(ids, lengths):
            assert (row[:n] != 0).all() and (row[n:] == 0).all()
        widths.append(ids.shape[1])
        seen += len(ids)
    assert seen == len(splits.train)
    assert min(widths) < 32 < max(widths)  # short reviews are not padded to the longest


def test_train_order_is_seeded(csv_path, tiny_config):
    config, splits, preprocessor = splits_and_preprocessor(tiny_config)

    def first_batch():
        return next(iter(batching.make_train_dataset(splits.train, preprocessor, config, batching.epoch_variable())))[0].numpy()

    np.testing.assert_array_equal(first_batch(), first_batch())


def test_eval_dataset_keeps_order_and_knows_its_length(csv_path, tiny_config):
    config, splits, preprocessor = splits_and_preprocessor(tiny_config)
    ds = batching.make_eval_dataset(splits.test, preprocessor, config)
    labels = np.concatenate([y.numpy() for _, y in ds])
    np.testing.assert_array_equal(labels, splits.test.labels)
    assert int(ds.cardinality()) == -(-len(splits.test) // config.batch_size)
    counts = preprocessing.token_lengths(splits.test.texts)
    assert counts.shape == (len(splits.test),) and counts.min() > 0
    np.testing.assert_array_equal(counts, [len(t.split()) for t in preprocessing.standardize_texts(splits.test.texts)])


def test_ngram_tfidf_matches_scikit_learn(csv_path, tiny_config):
    """The in-model wide features are TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) on the same vocabulary."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    config = tiny_config("wide_lstm", ngram_vocab_size=150)
    texts = preprocessing.load_clean_splits(config).train.texts
    ngrams = preprocessing.learn_ngram_vocabulary(texts, config)
    assert 3 < len(ngrams) <= 150 and any(" " in g for g in ngrams)  # bigrams made it in
    idf = preprocessing.inverse_document_frequency(texts, config, ngrams)
    ids = preprocessing.make_preprocessor(config, preprocessing.learn_vocabulary(texts, config), ngrams)(tf.constant(texts))
    ours = tf.sparse.to_dense(preprocessing.NgramTfIdf(config.ngram_vocab_size, 1.0, idf)(ids[batching.NGRAM_IDS])).numpy()
    sklearn = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+", lowercase=False, vocabulary=ngrams[2:])
    theirs = sklearn.fit_transform(preprocessing.standardize_texts(texts)).toarray()
    # Padding, OOV and unused slots have idf 0, so like scikit-learn's the norm covers known n-grams only.
    np.testing.assert_allclose(ours[:, 2 : len(ngrams)], theirs, atol=1e-5)


def test_training_and_serving_see_the_same_ngram_ids(csv_path, tiny_config):
    """Wide models: the pipeline yields both id sequences, the same the exported layer computes, padding removed."""
    config = tiny_config("wide_lstm", ngram_vocab_size=100, max_len=10)
    splits = preprocessing.load_clean_splits(config)
    texts = splits.train.texts
    preprocessor = preprocessing.make_preprocessor(
        config, preprocessing.learn_vocabulary(texts, config), preprocessing.learn_ngram_vocabulary(texts, config)
    )
    served = preprocessor(tf.constant(splits.test.texts))
    for i, (features, _) in enumerate(batching.encode(splits.test.records(), preprocessor)):
        for key in (batching.TOKEN_IDS, batching.NGRAM_IDS):
            ids, row = features[key].numpy(), served[key].numpy()[i]
            np.testing.assert_array_equal(row[: len(ids)], ids)
            assert (row[len(ids):] == 0).all() and (ids != 0).all()
        # The wide branch reads the whole review: 1-grams then 2-grams, beyond max_len.
        words = len(preprocessing.standardize_texts([splits.test.texts[i]])[0].split())
        assert len(features[batching.NGRAM_IDS]) == 2 * words - 1 and len(features[batching.TOKEN_IDS]) == min(words, 10)
    batch, _ = next(iter(batching.make_train_dataset(splits.train, preprocessor, config, batching.epoch_variable())))
    assert batch[batching.TOKEN_IDS].shape[0] == batch[batching.NGRAM_IDS].shape[0] > 0
