"""Nothing lost on the way in or out: malformed CSV quoting, clashing column names, read errors mid-file, empty input."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest
from conftest import run_entry

from sentiment.errors import SentimentError
from sentiment.serving import reviews as reading


def predict(saved_model, capsys, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run predict.py on the shared exported lstm."""
    return run_entry("predict.py", ["--models-dir", str(saved_model), "--model", "lstm", *args], capsys, stdin)


def test_a_stray_opening_quote_is_an_error_naming_its_line_after_the_rows_before_it(saved_model, tmp_path, capsys):
    file = tmp_path / "r.csv"
    file.write_text('id,text\n1,a great film\n2,"an awful film\n3,boring\n4,superb\n')
    code, out, err = predict(saved_model, capsys, "--file", str(file), "--format", "csv")
    assert code == 2
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in rows] == ["1"]  # the record before it is out; nothing was swallowed silently
    assert "the record starting on line 3 is malformed" in err and len(err.strip().splitlines()) == 1


def test_a_quote_closing_mid_field_is_an_error_too():
    with pytest.raises(SentimentError, match="line 3"):
        list(reading.read_csv_text('id,text\n1,fine\n2,"a "quoted" word"\n'))


def test_input_columns_never_overwrite_output_columns(saved_model, tmp_path, capsys):
    file = tmp_path / "r.csv"
    file.write_text("reasons,label,input_label,text,id,id\nmine,pos,x,a great film,7,8\n")
    code, out, err = predict(saved_model, capsys, "--file", str(file), "--format", "json", "--explain")
    row = json.loads(out)
    assert (row["input_reasons"], row["input_label"], row["input_input_label"], row["id"], row["input_id"]) == ("mine", "pos", "x", "7", "8")
    assert isinstance(row["reasons"], dict) and row["label"] in ("positive", "negative")
    code, out, err = predict(saved_model, capsys, "--file", str(file), "--format", "csv", "--explain")
    header, row = list(csv.reader(io.StringIO(out)))
    assert len(header) == len(set(header)) and dict(zip(header, row))["input_reasons"] == "mine"


@pytest.mark.parametrize("name", ["r.txt.gz", "r.csv.gz"])
def test_rows_read_before_a_truncated_gzip_are_printed_then_one_error(saved_model, tmp_path, capsys, name):
    lines = ["text"] * name.endswith(".csv.gz") + [f"review {i} was a great film" for i in range(3000)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    (tmp_path / name).write_bytes(whole[: len(whole) // 2])
    code, out, err = predict(saved_model, capsys, "--file", str(tmp_path / name), "--format", "json", "--batch-size", "100")
    assert code == 2 and err.startswith("error: cannot read") and len(err.strip().splitlines()) == 1
    assert len(out.splitlines()) > 100  # every row read before the break


def test_empty_input_says_so(saved_model, tmp_path, capsys):
    (tmp_path / "empty.txt").write_bytes(b"")
    code, out, err = predict(saved_model, capsys, "--file", str(tmp_path / "empty.txt"))
    assert code == 1 and out == "" and "no reviews to classify: " in err and "empty.txt held none" in err
    code, out, err = predict(saved_model, capsys, "-")
    assert code == 1 and "stdin held none" in err


def test_output_names_are_unique_and_never_an_output_field():
    assert reading.output_names(["text", "label", "input_label", "reasons", "x", "x"], 0) == [
        "input_label", "input_input_label", "input_reasons", "x", "input_x"]



def test_a_long_line_is_read_in_pieces_keeping_both_ends():
    line = ("é" * 300_000 + "MIDDLE" + "ü" * 300_000).encode() + b"\nshort one\n"
    first, second = reading.read_lines(line, "t")
    assert first.text.startswith("é") and first.text.endswith("ü") and "MIDDLE" not in first.text
    assert len(first.text.encode()) <= 2 * reading.KEEP_BYTES + 1 and second.text == "short one"


def test_a_line_without_end_is_a_one_line_error_after_the_lines_before_it():
    lines = reading.bounded_lines(io.BytesIO(b"good film\n" + b"\0" * (3 * 2**20)), "zeros", keep=1024, limit=2 * 2**20)
    assert next(lines) == b"good film\n"
    with pytest.raises(SentimentError, match="zeros line 2 is over 2 MB without a line break"):
        next(lines)


def test_predict_py_on_dev_zero_stops_with_one_line_in_flat_memory(capsys):
    code, _, err = run_entry("predict.py", ["--file", "/dev/zero"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: /dev/zero line 1 is over 64 MB")


def test_text_output_shows_control_characters_as_escapes():
    assert reading.printable("good \x1b[31mred\x1b[0m\rfilm") == "good \\x1b[31mred\\x1b[0m\\rfilm"
    assert reading.printable("plain, ünïcode text") == "plain, ünïcode text"
