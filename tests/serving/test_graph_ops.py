"""Untrusted SavedModels: their graph is read as protobuf, never run, and any op this project's exports never use is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_entry

from sentiment.errors import ModelError
from sentiment.serving import graph_ops, model_files

SHIPPED = sorted(ROOT.glob("saved_models/*/*/saved_model.pb"))


class Snooper(tf.Module):
    """A 'sentiment model' whose signature also reads one file and writes another."""

    def __init__(self, stolen: str, dropped: str):
        super().__init__()
        self.stolen, self.dropped = stolen, dropped

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text):
        tf.io.write_file(self.dropped, tf.io.read_file(self.stolen))
        probability = tf.fill(tf.shape(text), 0.9)
        return {"probability": probability, "label": tf.where(probability >= 0.5, "positive", "negative")}


@pytest.fixture(scope="module")
def snooper(tmp_path_factory) -> tuple[Path, Path]:
    """A SavedModel that copies a secret file when it serves; returns its dir and where it would drop the copy."""
    tmp = tmp_path_factory.mktemp("snooper")
    (tmp / "secret.txt").write_text("secret")
    module = Snooper(str(tmp / "secret.txt"), str(tmp / "dropped.txt"))
    tf.saved_model.save(module, str(tmp / "models" / "snoop" / "1"), signatures={"serving_default": module.serve})
    model_files.write_checksums(tmp / "models" / "snoop" / "1")  # checksums that hold prove nothing about who made it
    return tmp / "models" / "snoop" / "1", tmp / "dropped.txt"


def test_the_parser_reads_the_same_ops_as_tensorflow():
    from tensorflow.core.protobuf import saved_model_pb2

    for path in SHIPPED[:2]:
        theirs = saved_model_pb2.SavedModel.FromString(path.read_bytes())
        graph = graph_ops.parse_saved_model(path.read_bytes())
        for meta_graph in theirs.meta_graphs:
            library = {f.signature.name: sorted(n.op for n in f.node_def) for f in meta_graph.graph_def.library.function}
            assert {name: sorted(ops) for name, ops in graph.functions.items()} == library
            assert sorted(graph.main_ops) == sorted(n.op for n in meta_graph.graph_def.node)
            assert graph.roots == set(meta_graph.object_graph_def.concrete_functions)


def test_every_shipped_and_freshly_exported_model_passes(saved_model):
    assert len(SHIPPED) >= 5
    for path in [*SHIPPED, saved_model / "lstm" / "1" / "saved_model.pb"]:
        graph_ops.check_ops(path.parent)


def test_the_save_and_restore_functions_keep_their_checkpoint_ops_but_nothing_callable_may_use_them():
    graph = graph_ops.parse_saved_model(SHIPPED[0].read_bytes())
    callable_functions = graph_ops.reachable(graph)
    saver = [name for name in graph.functions if name not in callable_functions]
    assert saver and all("_traced_save_" in n or "_traced_restore_" in n for n in saver)
    assert graph_ops.forbidden_ops(graph) == {}
    signature = next(iter(graph.roots))
    graph.functions[signature] = [*graph.functions.get(signature, []), "SaveV2"]
    assert graph_ops.forbidden_ops(graph) == {"SaveV2": signature}


def test_a_model_that_reads_and_writes_files_is_refused_naming_the_op(snooper):
    version, dropped = snooper
    with pytest.raises(ModelError, match=r"uses op (ReadFile|WriteFile) .*--trust-model"):
        graph_ops.check_ops(version)


def test_predict_and_evaluate_refuse_it_before_it_runs_and_trust_model_overrides(snooper, capsys):
    version, dropped = snooper
    code, out, err = run_entry("predict.py", ["--engine", "savedmodel", "--model", str(version), "a great film"], capsys)
    assert code == 2 and out == "" and "op ReadFile" in err and len(err.strip().splitlines()) == 1
    assert not dropped.exists()
    code, out, err = run_entry("evaluate.py", [str(version), "--out", str(version.parent / "report")], capsys)
    assert code == 2 and "op ReadFile" in err and not dropped.exists()
    code, out, err = run_entry("predict.py", ["--engine", "savedmodel", "--model", str(version), "--trust-model", "a great film"], capsys)
    assert code == 0 and out.startswith("positive") and dropped.read_text() == "secret"  # trusted: it runs, and does what it does


@pytest.mark.parametrize("data", [b"", b"\x12\xff\xff\xff\xff\x0f", b"\x12\x05abc", b"\x0b\x00"])
def test_a_truncated_or_corrupt_graph_is_a_model_error(tmp_path, data):
    (tmp_path / "saved_model.pb").write_bytes(data)
    with pytest.raises(ModelError, match="saved_model.pb"):
        graph_ops.check_ops(tmp_path)


def test_a_varint_parses_as_protobuf_writes_it():
    assert graph_ops.varint(memoryview(bytes([0xAC, 0x02])), 0) == (300, 2)
    assert np.array_equal([n for n, _ in graph_ops.fields(memoryview(b"\x08\x96\x01\x12\x01a"))], [1, 2])
