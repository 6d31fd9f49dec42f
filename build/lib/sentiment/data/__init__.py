"""Reviews: sources (in memory or streamed) and their tf.data batches.

* :mod:`sentiment.data.sources`: TFDS, CSV and aclImdb read into memory; the ``Source`` interface.
* :mod:`sentiment.data.streaming`: CSV files too large for memory, streamed (the other ``Source``).
* :mod:`sentiment.data.batching`: any source into shuffled, bucketed tf.data batches.
* :mod:`sentiment.data.preprocessing`: raw review text → model inputs (the Keras layer, in the graph).
* :mod:`sentiment.data.unlabelled`: reviews without labels, for word vectors, pretraining and a teacher.
* :mod:`sentiment.data.fast_tokenizer`: the same standardization and tokens in Python, without TensorFlow (serving).
"""
