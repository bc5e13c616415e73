"""Durable rows: fsynced appends, torn tails ignored, keys by content."""
import json

import pytest

from orchestrator.results import ResultStore, unit_key


def test_unit_key_is_content_hash():
    a = unit_key("tts", {"id": "p1", "method": "beam", "n": 16, "seed": 0})
    b = unit_key("tts", {"seed": 0, "n": 16, "method": "beam", "id": "p1"})
    assert a == b
    assert a != unit_key("tts", {"id": "p1", "method": "beam", "n": 16, "seed": 1})
    assert a != unit_key("passuntil", {"id": "p1", "method": "beam", "n": 16, "seed": 0})


def test_rows_survive_reopen_and_torn_tail(tmp_path):
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    store.append("k1", {"id": 1}, {"v": 1.0})
    store.append("k2", {"id": 2}, {"v": 2.0})
    store.close()
    with open(path, "a") as f:
        f.write('{"key": "k3", "unit": {"id": 3}, "res')  # killed mid-write
    store = ResultStore(path)
    assert set(store.rows) == {"k1", "k2"}
    store.append("k3", {"id": 3}, {"v": 3.0})
    store.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k1", "k2", "k3"]
    assert [r.result["v"] for r in ResultStore(path).select(["k3", "k1", "missing"])] == [3.0, 1.0]


def test_a_unit_is_never_counted_twice(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append("k1", {"id": 1}, {"v": 1})
    with pytest.raises(ValueError):
        store.append("k1", {"id": 1}, {"v": 1})


def test_summary_tables_keep_multiline_cells_in_their_row():
    from orchestrator.report import markdown_table

    table = markdown_table([{"solution": "a) 1 + 2 = 3\n\nb) 3 | 4", "accuracy": 0.5}, {"accuracy": 1.0}])
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two rows
    assert lines[2] == "| a) 1 + 2 = 3<br><br>b) 3 \\| 4 | 0.5 |" and lines[3] == "|  | 1 |"
