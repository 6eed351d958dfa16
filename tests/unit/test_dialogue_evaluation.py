"""Scoring on real dialogues: the INSPIRED reader, the documented title matcher, the case protocol,
Recall@K."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.dialogue.evaluation import (
    TitleMatcher,
    build_cases,
    corpus_path,
    evaluate_cases,
    read_inspired,
    title_key,
)
from tests.unit.dialogue_fixtures import SHARED

HEADER = "dialog_id\tutt_id\tspeaker\tturn_id\ttext\tmovies\n"


def write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "d.tsv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_title_keys_and_matcher() -> None:
    assert title_key("Matrix, The (1999)") == ("matrix", 1999)
    assert title_key("The Matrix (1999)") == ("matrix", 1999)
    assert title_key("Seven (Se7en) (1995)") == ("seven", 1995)
    m = TitleMatcher(
        ["1", "2", "3"], ["Matrix, The (1999)", "Heat (1995)", "Heat (1986)"], [1999, 1995, 1986]
    )
    assert m.match("The Matrix (1999)") == "1"
    assert m.match("The Matrix (2000)") == "1"  # a year off: release conventions differ
    assert m.match("Heat (1986)") == "3" and m.match("Heat") is None  # ambiguous without a year
    assert m.match("Matrix") == "1" and m.match("Jaws (1975)") is None


def test_cases_follow_the_protocol(tmp_path) -> None:
    path = write(tmp_path, [
        "d1\t1\tRECOMMENDER\t1\tHi! What do you like?\t",
        "d1\t2\tSEEKER\t1\tI loved QUOTATION_MARKHeatQUOTATION_MARK\tHeat (1995)",
        "d1\t3\tRECOMMENDER\t2\tTry The Matrix, or Heat again\tThe Matrix (1999);Heat (1995)",
        "d1\t4\tRECOMMENDER\t2\tOr Jaws\tJaws (1975)",
    ])  # fmt: skip
    dialogues = read_inspired(path)
    assert dialogues[0].utterances[1].text == 'I loved "Heat"' and dialogues[0].utterances[1].role == "user"
    m = TitleMatcher(["1", "2"], ["Matrix, The (1999)", "Heat (1995)"], [1999, 1995])
    build = build_cases(dialogues, m)
    [case] = build.cases  # Heat was named before; Jaws is not in the catalogue
    assert case.targets == ("1",) and case.position == 2 and len(case.history) == 2
    assert build.n_titles == 2 and build.n_mapped == 1 and build.unmapped == ["Jaws (1975)"]
    report = evaluate_cases(lambda history, k: ["2", "1"], build, ks=(1, 10))
    assert report.recall == {1: 0.0, 10: 1.0} and report.n_targets == 1

    def broken(history, k):
        raise RuntimeError("down")

    assert evaluate_cases(broken, build, ks=(10,)).errors == 1


def test_bad_files_say_where(tmp_path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not an INSPIRED file"):
        read_inspired(bad)
    wrong = write(tmp_path, ["d1\t1\tROBOT\t1\thi\t"])
    with pytest.raises(ValueError, match=r"d.tsv:2: speaker"):
        read_inspired(wrong)
    with pytest.raises(ValueError, match="unknown dialogue corpus"):
        corpus_path("nope", "test", tmp_path)


@pytest.mark.skipif(not (SHARED / "inspired" / "dev.tsv").is_file(), reason=f"INSPIRED not found in {SHARED}")
def test_the_real_inspired_dev_split() -> None:
    path = corpus_path("inspired", "dev", SHARED)  # sha256 checked
    dialogues = read_inspired(path)
    assert len(dialogues) == 99 and sum(len(d.utterances) for d in dialogues) == 3538
    titles = [t for d in dialogues for u in d.utterances for t in u.titles]
    assert len(titles) > 500 and all("(" in t for t in titles[:50])
