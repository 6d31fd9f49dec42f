"""Refusing SavedModels that could do more than classify: the ops of ``saved_model.pb`` read, never run.

A SavedModel is a program: its ``serving_default`` may call ``ReadFile``, ``WriteFile``, ``PyFunc``
and the like, and loading it runs its resource initializers. Before one is loaded, ``check_ops``
reads its graph and function library as protobuf (the wire format, parsed here in plain Python:
importing TensorFlow's generated classes would import TensorFlow, which ``sentiment.serving`` must
not) and refuses any op outside ``ALLOWED_OPS``, the ops this project's exports use (every shipped
model in ``saved_models/`` and a tiny export of every model and readout).
The checkpoint ops of the save and restore functions TensorFlow adds to every export are allowed
only there: a function a loaded model can call (a signature, a resource initializer) may not use them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

from sentiment.errors import ModelError
from sentiment.serving import model_files

SAVED_MODEL_FILE = "saved_model.pb"
MAX_GRAPH_BYTES = 256 * 1024 * 1024  # a saved_model.pb larger than this is refused unread (the shipped ones: ~1 MB)

# Every op in the callable functions of this project's exports, derived once from saved_models/*/*/saved_model.pb and tiny exports
# of simple_rnn, lstm, lstm_chrono, gru, bilstm, wide and wide_lstm with every readout (tests/serving/test_graph_ops.py: shipped and fresh pass):
# arithmetic, control flow, lookup tables, strings, tensor lists, variables. None touches a file, a process or the network.
ALLOWED_OPS = frozenset("""
AddV2 BiasAdd BroadcastTo Cast ConcatV2 Const Cumsum DenseBincount DenseCountSparseOutput Equal ExpandDims Fill FloorDiv FloorMod
GatherV2 Greater GreaterEqual HashTableV2 Identity Less Log Log1p LogicalAnd LookupTableFindV2 LookupTableImportV2 MatMul Max
Maximum Minimum Mul Neg NoOp NotEqual Pack RaggedTensorToTensor Range ReadVariableOp RealDiv Reshape ReverseV2 Rsqrt SegmentSum
SelectV2 Shape Sigmoid Size SparseFillEmptyRows Split Sqrt Square Squeeze StatefulPartitionedCall StaticRegexReplace
StridedSlice StringLower StringNGrams StringSplitV2 StringStrip Sub Sum Tanh TensorListConcatV2 TensorListFromTensor
TensorListGetItem TensorListReserve TensorListSetItem TensorListStack Tile Transpose Unique UnsortedSegmentSum While ZerosLike
""".split())
# The main graph (what TF Serving runs; tf.saved_model.load does not) also creates and initializes the variables.
MAIN_GRAPH_OPS = ALLOWED_OPS | {"AssignVariableOp", "Placeholder", "VarHandleOp", "VarIsInitializedOp"}
# The checkpoint ops of the save and restore functions every export carries (TF Serving restores variables through them):
# allowed only in functions no signature or initializer can reach.
SAVER_OPS = frozenset({"AssignVariableOp", "DisableCopyOnRead", "MergeV2Checkpoints", "RestoreV2", "SaveV2", "Select",
                       "ShardedFilename", "StaticRegexFullMatch", "StringJoin"})


@dataclasses.dataclass
class Graph:
    """What ``saved_model.pb`` holds, for the check: each function's ops and callees, the main graph's, and the loadable roots."""

    functions: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # function name → ops of its nodes
    calls: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # function name → functions its nodes name
    main_ops: list[str] = dataclasses.field(default_factory=list)
    roots: set[str] = dataclasses.field(default_factory=set)  # the concrete functions a loaded model can call


def varint(data: memoryview, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return it and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ModelError("truncated or corrupt protobuf (a varint runs off the end)")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def fields(data: memoryview) -> Iterator[tuple[int, object]]:
    """Yield (field number, value) of a serialized message: an int for a varint, a memoryview for bytes, None for fixed-width."""
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire = key >> 3, key & 7
        value = None
        if wire == 0:
            value, pos = varint(data, pos)
        elif wire == 2:
            length, pos = varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ModelError(f"corrupt protobuf (wire type {wire})")
        if pos > len(data):
            raise ModelError("truncated or corrupt protobuf (a field runs off the end)")
        yield number, value


def submessages(data: memoryview, number: int) -> Iterator[memoryview]:
    """Yield the length-delimited values of field ``number`` (a repeated message, or a map's entries)."""
    return (value for n, value in fields(data) if n == number and isinstance(value, memoryview))


def text(data: memoryview, number: int) -> str:
    """Return the last string value of field ``number`` ('' if absent)."""
    found = ""
    for value in submessages(data, number):
        found = bytes(value).decode("utf-8", errors="replace")
    return found


def attr_functions(attr_value: memoryview) -> Iterator[str]:
    """Yield the functions an AttrValue names: ``func`` (10), ``list.func`` (1 → 9), and those inside their attrs."""
    named = list(submessages(attr_value, 10)) + [f for listed in submessages(attr_value, 1) for f in submessages(listed, 9)]
    for name_attr_list in named:
        yield text(name_attr_list, 1)
        for entry in submessages(name_attr_list, 2):
            for value in submessages(entry, 2):
                yield from attr_functions(value)


def read_nodes(container: memoryview, number: int) -> tuple[list[str], set[str]]:
    """Return the ops of the NodeDefs in field ``number`` of a message and the functions their attrs name."""
    ops, called = [], set()
    for node in submessages(container, number):
        ops.append(text(node, 2))
        for entry in submessages(node, 5):
            for value in submessages(entry, 2):
                called.update(attr_functions(value))
    return ops, called


def parse_saved_model(data: bytes) -> Graph:
    """Read a SavedModel protobuf into a ``Graph`` (ModelError if it is not one)."""
    graph, view = Graph(), memoryview(data)
    meta_graphs = list(submessages(view, 2))
    if not meta_graphs:
        raise ModelError("it holds no graph (not a SavedModel, or truncated)")
    for meta_graph in meta_graphs:
        for graph_def in submessages(meta_graph, 2):
            ops, called = read_nodes(graph_def, 1)
            graph.main_ops += ops
            for library in submessages(graph_def, 2):
                for function in submessages(library, 1):
                    name = "".join(text(signature, 1) for signature in submessages(function, 1))
                    graph.functions[name], graph.calls[name] = read_nodes(function, 3)
        for object_graph in submessages(meta_graph, 7):
            graph.roots.update(text(entry, 1) for entry in submessages(object_graph, 2))
    return graph


def reachable(graph: Graph) -> set[str]:
    """Return the functions a loaded model can run: its concrete functions and all they call (every function without them)."""
    todo = list(graph.roots) if graph.roots else list(graph.functions)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [callee for callee in graph.calls.get(name, ()) | set(graph.functions.get(name, ())) if callee in graph.functions]
    return seen


def forbidden_ops(graph: Graph) -> dict[str, str]:
    """Return each op outside the allowlist and the function (or ``the main graph``) that uses it."""
    callable_functions, found = reachable(graph), {}
    for name, ops in graph.functions.items():
        allowed = ALLOWED_OPS if name in callable_functions else ALLOWED_OPS | SAVER_OPS
        for op in ops:
            if op not in allowed and op not in graph.functions:
                found.setdefault(op, name)
    for op in graph.main_ops:
        if op not in MAIN_GRAPH_OPS and op not in graph.functions:
            found.setdefault(op, "the main graph")
    return found


def check_ops(version_dir: str | Path) -> None:
    """Raise a ModelError naming the first op of the SavedModel at ``version_dir`` that this project's exports never use."""
    path = Path(version_dir) / SAVED_MODEL_FILE
    data = model_files.read_bounded(path, MAX_GRAPH_BYTES)
    try:
        found = forbidden_ops(parse_saved_model(data))
    except ModelError as e:
        raise ModelError(f"cannot load model {version_dir}: {path.name} is not a readable SavedModel: {e}") from e
    if found:
        op, where = sorted(found.items())[0]
        others = f" (and {len(found) - 1} other op(s): {', '.join(sorted(found)[1:6])})" if len(found) > 1 else ""
        raise ModelError(f"{version_dir} is refused: its graph uses op {op} (in {where}){others}, which this project's exports never use; "
                         "if you trust where the model came from, load it with --trust-model")
