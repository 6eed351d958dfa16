"""Stale data never passes and bad files are refused in one line: stage fingerprints cover input content
and stage code; empty, truncated and mixed-encoding files name the file and the line; no traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from components.config import load_settings
from components.rawfiles import DataFormatError, read_table
from sessionflow import fingerprint, stages

REPO = Path(__file__).resolve().parents[2]
MIRROR = Path(os.environ.get("SESSIONFLOW_DATA_MIRROR", REPO.parent / "shared" / "datasets"))

ROWS = "user,item,ts\n" + "".join(f"u{i % 7},{i % 11},{1_700_000_000 + 60 * i}\n" for i in range(60))


def write_spec(root: Path, log_bytes: bytes) -> Path:
    (root / "clicks.csv").write_bytes(log_bytes)
    spec = {
        "name": "tiny",
        "format": "interactions-csv",
        "path": "clicks.csv",
        "timestamp_unit": "s",
        "columns": {"user_id": "user", "item_id": "item", "timestamp": "ts"},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    return root / "spec.yaml"


def settings_for(spec: Path):
    return load_settings(None, {"data.dataset_spec": str(spec), "data.include_feedback": False})


def test_replaced_source_with_same_size_and_mtime_is_not_current(tmp_path):
    spec = write_spec(tmp_path, ROWS.encode())
    settings = settings_for(spec)
    assert not stages.ingest_is_current(settings, tmp_path)
    stages.run_ingest(settings, tmp_path)
    assert stages.ingest_is_current(settings, tmp_path)
    source = tmp_path / "clicks.csv"
    before = source.stat()
    changed = ROWS.replace("u3,", "u4,", 1)  # same length, other content
    assert len(changed) == len(ROWS)
    source.write_text(changed)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime as before
    assert not stages.ingest_is_current(settings, tmp_path), "a changed source file must re-ingest"
    stages.run_ingest(settings, tmp_path)
    assert stages.ingest_is_current(settings, tmp_path)


def test_settings_change_the_fingerprint(tmp_path):
    spec = write_spec(tmp_path, ROWS.encode())
    a = stages.ingest_fingerprint(settings_for(spec), tmp_path)
    other = load_settings(
        None,
        {"data.dataset_spec": str(spec), "data.include_feedback": False, "data.session_gap_minutes": 5},
    )
    assert stages.ingest_fingerprint(other, tmp_path) != a
    unrelated = load_settings(
        None, {"data.dataset_spec": str(spec), "data.include_feedback": False, "train.models": ["ease"]}
    )
    assert stages.ingest_fingerprint(unrelated, tmp_path) == a  # train settings do not touch ingest


def test_code_edits_change_the_fingerprint_of_the_stages_that_run_them(tmp_path, monkeypatch):
    project = tmp_path / "project"
    for package in ("components", "models", "sessionflow"):
        shutil.copytree(REPO / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PROJECT_ROOT", project)
    spec = write_spec(tmp_path, ROWS.encode())
    settings = settings_for(spec)

    def keys() -> dict[str, str]:
        return {
            s: fingerprint.stage_fingerprint(s, settings, [spec], tmp_path) for s in ("ingest", "validate")
        }

    before = keys()
    expectations = project / "components" / "expectations.py"
    expectations.write_text(expectations.read_text() + "\n# an edit\n")
    after = keys()
    assert after["validate"] != before["validate"]
    assert after["ingest"] == before["ingest"]  # ingest does not run the expectations
    schema = project / "components" / "schema.py"  # imported by both
    schema.write_text(schema.read_text() + "\n# an edit\n")
    last = keys()
    assert last["ingest"] != after["ingest"] and last["validate"] != after["validate"]
    files = {p.relative_to(project).as_posix() for p in fingerprint.code_files("ingest", project)}
    assert {"components/ingest.py", "components/datasets.py", "sessionflow/stages.py"} <= files


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", r"clicks\.csv: the file is empty"),
        (b"user,item,ts\n", r"clicks\.csv: no data rows"),
        (ROWS.encode() + b"u1,5", r"clicks\.csv:62: the last line has 2 of 3 fields and no line end"),
        (
            b"user,item,ts\nu1,caf\xc3\xa9,1700000000\nu2,caf\xe9,1700000060\n",
            r"clicks\.csv:3: byte 0xe9 at column 7 is not valid utf-8",
        ),
        (b"user,item,ts\nu1,2,3\nu1,2,3,4,5\n", r"clicks\.csv: .*line 3"),
    ],
)
def test_bad_files_are_one_line_errors_naming_file_and_line(tmp_path, content, expected):
    spec = write_spec(tmp_path, content)
    with pytest.raises(DataFormatError, match=expected) as err:
        stages.run_ingest(settings_for(spec), tmp_path)
    assert "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["ingest", "--dataset-spec", str(spec), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "clicks.csv" in lines[0]


def test_latin1_tables_read_as_latin1(tmp_path):
    path = tmp_path / "u.item"
    path.write_bytes("1|Café (1995)\n".encode("latin-1"))
    assert read_table(path, sep="|", names=["id", "title"], encoding="latin-1")["title"][0] == "Café (1995)"


@pytest.mark.skipif(not (MIRROR / "ml-100k" / "u.data").is_file(), reason="ml-100k mirror not found")
def test_sha256_refusal_through_validate_is_one_line(tmp_path):
    raw = tmp_path / "data" / "raw" / "ml-100k"
    shutil.copytree(MIRROR / "ml-100k", raw)
    with (raw / "u.data").open("ab") as fh:
        fh.write(b"1\t1\t5\t881250949\n")  # no longer the published file
    result = CliRunner().invoke(app, ["validate", "--dataset", "ml-100k", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "u.data has sha256" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, expected",
    [(["train", "--models", "popularity"], "holds no features; run the featurize stage first"),
     (["featurize"], "holds no validated data; run the validate stage first")],
)  # fmt: skip
def test_a_stage_before_the_one_it_needs_is_one_line(tmp_path, args, expected):
    result = CliRunner().invoke(app, [*args, "--dataset", "ml-100k", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("stage", ["ingest", "validate", "featurize"])
def test_dvc_stages_depend_on_all_the_code_they_run(stage):
    """DVC and the Prefect flow cache the same thing: every module the stage imports is a DVC dependency."""
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    missing = [
        p.relative_to(REPO).as_posix()
        for p in fingerprint.code_files(stage)
        if not any(
            p.relative_to(REPO).as_posix() == d or p.relative_to(REPO).as_posix().startswith(d + "/")
            for d in deps
        )
    ]
    assert not missing, f"dvc.yaml stage {stage!r} lacks code deps {missing}"
