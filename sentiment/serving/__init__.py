"""The serving runtime: what ``predict.py`` needs to classify reviews without TensorFlow.

Reading and checking reviews, finding an export and choosing its engine, the LiteRT engine
and its tokenizer. Nothing here may import TensorFlow or Keras, directly or through another
module of the project: ``tests/serving/test_serving.py`` reads every import of this package to hold
that, and imports the package in a fresh process to check that TensorFlow stays out.
"""
