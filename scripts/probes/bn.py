"""Probe: batch-normalize the pooled readout (so a pretrained encoder's large, alike pooled states reach the head standardized)."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
import train
from sentiment import cli
cli.start_tensorflow_quietly()
import keras
from sentiment import models
_read_out = models.read_out
models.read_out = lambda states, readout: keras.layers.BatchNormalization(name="readout_norm")(_read_out(states, readout))
sys.exit(cli.run_main(train.main))
