"""``tempo-lab run`` on small synthetic notebooks (the real series is run by test_notebooks_papermill.py)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tempo_lab import cli, notebook
from tempo_lab.plumbing import series as runner


def write_notebook(path: Path, params: str, body: str, *, numbers: str | None = None) -> Path:
    cells = [new_markdown_cell("# test"), new_code_cell(params), new_code_cell(body)]
    cells[1].metadata["tags"] = ["parameters"]
    if numbers is not None:
        cells.append(new_code_cell(numbers))
        cells[-1].metadata["tags"] = ["key-numbers"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def series(tmp_path) -> Path:
    d = tmp_path / "nbs"
    d.mkdir()
    write_notebook(
        d / "01_first.ipynb",
        'model_name = None\nx = 1\nprompt = "hello"\ngaps = [0, 1]',
        "y = x * 2\nprint(prompt, gaps)",
        numbers=(
            "from tempo_lab import notebook\n"
            'notebook.print_key_numbers({"x": x, "y": y / 3, "prompt": prompt, "gaps": gaps})'
        ),
    )
    write_notebook(d / "02_second.ipynb", "x = 1", "print(x)")
    (d / "notes.ipynb").write_text("{}")  # not part of the series (no NN_ prefix)
    return d


def test_parse_value_reads_json_except_for_declared_strings():
    assert runner.parse_value("0.2") == 0.2
    assert runner.parse_value("[0, 5]") == [0, 5]
    assert runner.parse_value("true") is True
    assert runner.parse_value("None") is None and runner.parse_value("null") is None
    assert runner.parse_value("Once upon a time") == "Once upon a time"
    assert runner.parse_value("123", "str") == "123"
    assert runner.parse_value("None", "str") is None


def test_discover_orders_the_series_and_selects_by_prefix(series):
    assert [p.name for p in runner.discover(series)] == ["01_first.ipynb", "02_second.ipynb"]
    assert [p.name for p in runner.discover(series, ["02"])] == ["02_second.ipynb"]
    with pytest.raises(ValueError, match="--only '07'"):
        runner.discover(series, ["07"])
    with pytest.raises(ValueError, match="no notebooks"):
        runner.discover(series / "..")


def test_plan_gives_each_notebook_only_the_parameters_it_declares(series):
    nbs = runner.discover(series)
    plans = runner.plan_parameters(nbs, None, [["gaps", "[3, 4]"], ["prompt", "42"], ["x", "7"]])
    assert plans[nbs[0]] == {"gaps": [3, 4], "prompt": "42", "x": 7}  # prompt is declared str: kept as text
    assert plans[nbs[1]] == {"x": 7}
    with pytest.raises(ValueError, match="-p nope"):
        runner.plan_parameters(nbs, None, [["nope", "1"]])
    # --model goes to the notebooks that declare model_name; "bundled" means None
    planned = runner.plan_parameters(nbs, "tiny-random", [])
    assert planned == {nbs[0]: {"model_name": "tiny-random"}, nbs[1]: {}}
    assert runner.plan_parameters(nbs, "bundled", [])[nbs[0]] == {"model_name": None}


def test_key_numbers_and_metadata_stripping():
    nb = new_notebook(cells=[new_code_cell("k")])
    nb.cells[0].metadata["tags"] = ["key-numbers"]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text='{\n "a": 1.5,\n "b": "x"\n}\n')
    ]
    assert notebook.read_key_numbers(nb) == {"a": 1.5, "b": "x"}
    assert notebook.read_key_numbers(new_notebook(cells=[new_code_cell("1")])) == {}
    nb.metadata["papermill"] = {"duration": 1.0}
    nb.cells[0].metadata["papermill"] = {"duration": 1.0}
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "now"}
    runner.strip_run_metadata(nb)
    assert "papermill" not in nb.metadata and set(nb.cells[0].metadata) == {"tags"}


@pytest.mark.notebooks
def test_run_executes_into_out_injects_parameters_and_summarises(series, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(
        [
            "run",
            "--notebooks",
            str(series),
            "--out",
            str(out),
            "-p",
            "x",
            "6",
            "-p",
            "gaps",
            "[9]",
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    done = nbformat.read(str(out / "01_first.ipynb"), 4)
    injected = [c for c in done.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 6" in injected[0].source and "gaps = [9]" in injected[0].source
    assert notebook.read_key_numbers(done) == {"x": 6, "y": 4.0, "prompt": "hello", "gaps": [9]}
    assert "[1/2] 01_first.ipynb (x=6, gaps=[9])" in text
    assert "    y: 4.0" in text and "2/2 notebooks ran in" in text
    # the sources are untouched
    assert not nbformat.read(str(series / "01_first.ipynb"), 4).cells[2].get("outputs")


@pytest.mark.notebooks
def test_in_place_writes_outputs_without_run_metadata(series, tmp_path, capsys):
    rc = cli.main(
        [
            "run",
            "--notebooks",
            str(series),
            "--out",
            str(tmp_path / "b"),
            "--in-place",
            "--only",
            "01",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().out
    nb = nbformat.read(str(series / "01_first.ipynb"), 4)
    assert nb.cells[2].outputs[0]["text"] == "hello [0, 1]\n"
    assert "papermill" not in nb.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in nb.cells)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_in_place_refuses_parameters(series, capsys):
    assert cli.main(["run", "--notebooks", str(series), "--in-place", "-p", "x", "2"]) == 2
    assert "--in-place" in capsys.readouterr().err
    assert cli.main(["run", "--notebooks", str(series), "-p", "nope", "2"]) == 2


@pytest.mark.notebooks
def test_a_failing_notebook_is_reported_and_its_source_kept(tmp_path, capsys):
    d = tmp_path / "nbs"
    d.mkdir()
    src = write_notebook(d / "01_bad.ipynb", "x = 1", "raise RuntimeError('boom')")
    before = src.read_text()
    rc = cli.main(["run", "--notebooks", str(d), "--out", str(tmp_path / "o"), "--in-place", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "FAILED" in text and "boom" in text and "0/1 notebooks ran" in text
    assert src.read_text() == before
    partial = nbformat.read(str(tmp_path / "o" / "01_bad.ipynb"), 4)
    assert any(
        o.get("ename") == "RuntimeError" for c in partial.cells if c.cell_type == "code" for o in c.outputs
    )
    json.loads(before)  # still a valid notebook


def test_the_default_notebook_folder_is_the_checkouts_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./notebooks here: the folder beside the package
    found = runner.default_notebook_dir()
    assert found == Path(__file__).resolve().parents[1] / "notebooks"
    assert [p.name for p in runner.discover(found)][:1] == ["01_gap_attention_dropout.ipynb"]
