"""The SimpleRNN vs LSTM study (``study.py``): gradient flow, accuracy by review length, synthetic memory probes.

Research code beside the product: nothing in the package outside this folder imports it.
"""
