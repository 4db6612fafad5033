"""docs/theorems.md names real tests, and its counts match its rows."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "theorems.md"
ROW = re.compile(r"^\| ([SPWF]\d+) \|")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows():
    rows = []
    for line in TABLE.read_text().splitlines():
        if ROW.match(line):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            assert len(cells) == 6, f"row {cells[0]} has {len(cells)} columns, expected 6"
            rows.append(cells)
    return rows


def _defined(path):
    tree = ast.parse((ROOT / path).read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_named_test_exists():
    rows = _rows()
    assert len(rows) > 50
    cache, missing = {}, []
    for cells in rows:
        for path, name in TEST.findall(cells[3]):
            if path not in cache:
                cache[path] = _defined(path) if (ROOT / path).exists() else set()
            if name not in cache[path]:
                missing.append(f"{cells[0]}: {path}::{name}")
    assert not missing, "docs/theorems.md names tests that do not exist: " + ", ".join(missing)


def test_rows_have_a_test_or_a_reason_and_counts_match():
    rows = _rows()
    ids = [c[0] for c in rows]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    indep = weak = none = skipped = 0
    for rid, _, _, tests, check, status in rows:
        named = TEST.findall(tests)
        if status.startswith("not checkable") or status.startswith("not implemented"):
            skipped += 1
        elif not named:
            none += 1
        elif check.startswith("weak"):
            weak += 1
        else:
            indep += 1
    m = re.search(r"\| now [^|]*\| (\d+) \| (\d+) \| (\d+)[^|]*\| (\d+) \| (\d+) \|", TABLE.read_text())
    assert m, "counts row not found"
    assert tuple(int(v) for v in m.groups()) == (len(rows), indep, weak, none, skipped)
