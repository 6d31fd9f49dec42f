"""Labelled reviews: sources (in memory or streamed) and their tf.data batches.

* :mod:`sentiment.data.sources`: TFDS, CSV and aclImdb read into memory; the ``Source`` interface.
* :mod:`sentiment.data.streaming`: CSV files too large for memory, streamed (the other ``Source``).
* :mod:`sentiment.data.batching`: any source into shuffled, bucketed tf.data batches.
"""
