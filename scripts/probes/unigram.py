"""Probe: the perplexity of a unigram model (training-text word frequencies) on 256 validation reviews, the floor a language model must beat."""
import os, sys
import collections, math
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from sentiment import cli
cli.start_tensorflow_quietly()
from sentiment import config as C, preprocessing
cfg = C.make_config("lstm", data=os.environ["DATA"], vocab_size=40000, seed=42)
splits = preprocessing.load_clean_splits(cfg)
tr = [t.split() for t in preprocessing.standardize_texts(splits.train.texts)]
va = [t.split() for t in preprocessing.standardize_texts(splits.validation.texts[:256] + splits.test.texts[:0])]
cnt = collections.Counter(w for t in tr for w in t)
vocab = set(w for w, _ in cnt.most_common(39998))
c2 = collections.Counter(w if w in vocab else "[UNK]" for t in tr for w in t); n = sum(c2.values())
for include_unk in (True, False):
    ll, k = 0.0, 0
    for t in va:
        for w in t:
            w = w if w in vocab else "[UNK]"
            if w == "[UNK]" and not include_unk: continue
            ll += math.log(c2[w] / n); k += 1
    print("unigram perplexity", "with UNK" if include_unk else "without UNK targets", round(math.exp(-ll / k), 1), k)
