"""The CLI's embedded defaults for the environment it hands to servers and flows."""

from __future__ import annotations

import os
from pathlib import Path


def test_a_relative_bentoml_home_is_made_absolute(tmp_path, monkeypatch):
    """``sessionflow serve`` execs ``bentoml serve``, whose server runs from the bento's own folder: a
    relative ``BENTOML_HOME=.bentoml`` then named no store at all and the workers failed their start-up in
    a loop."""
    from cli.main import _env_defaults

    monkeypatch.setattr(os, "environ", dict(os.environ))  # what _env_defaults sets stays in this test
    monkeypatch.chdir(tmp_path)
    os.environ["BENTOML_HOME"] = ".bentoml"
    _env_defaults(tmp_path)
    assert Path(os.environ["BENTOML_HOME"]) == (tmp_path / ".bentoml").resolve()
    del os.environ["BENTOML_HOME"]
    _env_defaults(Path("."))
    assert Path(os.environ["BENTOML_HOME"]) == (tmp_path / ".bentoml").resolve()
