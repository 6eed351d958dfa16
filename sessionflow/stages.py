"""Stage runners: the file-level entry points shared by the CLI, dvc.yaml stages and the Prefect flow.

Each reads its inputs from the project folders, calls the pure components, writes its outputs and returns a
typed result (sessionflow/results.py). This is the layer the CLI, dvc.yaml and the Prefect flows (flows/)
call; it never imports flows or Prefect.

    pull        -> data/raw/<dataset>/                      (built-in datasets; immutable)
    feedback    -> data/feedback/<dataset>/events.parquet     (snapshot of the service's feedback log)
    catalogue   -> data/catalogue/<dataset>/changes.parquet   (snapshot of the service's catalogue overlay)
    ingest      -> data/interim/<dataset>/{interactions,items}.parquet, ingest.json
                   (raw data + the positive feedback of the snapshot when data.include_feedback, with the
                   catalogue changes folded in when data.include_catalogue_changes)
    validate    -> data/processed/<dataset>/clean/{interactions,items}.parquet, validation.json
                   data/quarantine/<dataset>/                (rejected rows with rule + reason)
    featurize   -> data/processed/<dataset>/features/        (vocab, splits, popularity, item_text.npy)

``lineage`` ties a training run to its data version: data hashes (raw + feedback + catalogue snapshots) and
the DVC revision (git commit of the project folder, dvc.lock's hashes of the data outputs).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.config import FeaturesConfig, Settings
from components.datasets import BUILTIN, DatasetSpec, builtin_spec, load_spec, pull
from components.features import (
    FeatureSet,
    build_features,
    has_real_text,
    item_texts,
    load_features,
    save_features,
)
from sessionflow.results import (
    CatalogueExport,
    CodeRevision,
    DataLineage,
    FeatureResult,
    FeedbackExport,
    IngestResult,
    Lineage,
    ValidationResult,
)

TRENDING_FILE = "item_trending.npy"
AUDIENCE_FILE = "item_audience.npy"


@dataclass(frozen=True)
class Paths:
    """Where everything lives, under one project root."""

    root: Path
    dataset: str

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def feedback(self) -> Path:
        return self.root / "data" / "feedback" / self.dataset

    @property
    def feedback_snapshot(self) -> Path:
        return self.feedback / "events.parquet"

    @property
    def catalogue(self) -> Path:
        return self.root / "data" / "catalogue" / self.dataset

    @property
    def catalogue_snapshot(self) -> Path:
        return self.catalogue / "changes.parquet"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim" / self.dataset

    @property
    def clean(self) -> Path:
        return self.root / "data" / "processed" / self.dataset / "clean"

    @property
    def features(self) -> Path:
        return self.root / "data" / "processed" / self.dataset / "features"

    @property
    def quarantine(self) -> Path:
        return self.root / "data" / "quarantine"

    @property
    def gx(self) -> Path:
        return self.root / "gx"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"


def dataset_spec(settings: Settings, root: Path) -> DatasetSpec:
    if settings.data.dataset_spec:
        spec_path = Path(settings.data.dataset_spec)
        return load_spec(spec_path if spec_path.is_absolute() else root / spec_path)
    return builtin_spec(settings.data.dataset, root / "data" / "raw")


def paths_for(settings: Settings, root: Path) -> Paths:
    return Paths(root, dataset_spec(settings, root).name)


def ingest_inputs(settings: Settings, root: Path) -> list[Path]:
    """What ingest reads: the dataset's files, the feedback snapshot (when feedback is merged) and the
    catalogue changes snapshot (when they are folded in)."""
    from components.datasets import spec_files

    paths = paths_for(settings, root)
    files = spec_files(dataset_spec(settings, root))
    if settings.data.include_feedback:
        files = [*files, paths.feedback_snapshot]
    if settings.data.include_catalogue_changes:
        files = [*files, paths.catalogue_snapshot]
    return files


def ingest_fingerprint(settings: Settings, root: Path) -> str:
    """sha256 of ingest's settings, the content of its inputs and its code (sessionflow/fingerprint.py)."""
    from sessionflow.fingerprint import stage_fingerprint

    return stage_fingerprint("ingest", settings, ingest_inputs(settings, root), root)


def ingest_is_current(settings: Settings, root: Path) -> bool:
    """Whether data/interim holds the ingest of exactly the current inputs, settings and code."""
    info_path = paths_for(settings, root).interim / "ingest.json"
    if not info_path.is_file() or not (info_path.parent / "interactions.parquet").is_file():
        return False
    try:
        recorded = json.loads(info_path.read_text()).get("fingerprint")
        return recorded == ingest_fingerprint(settings, root)
    except (ValueError, OSError):
        return False


def run_pull(settings: Settings, root: Path) -> Path | None:
    """Pull a built-in dataset (no-op for user specs: their files are where the spec says)."""
    if settings.data.dataset_spec:
        return None
    if settings.data.dataset not in BUILTIN:
        raise ValueError(f"unknown dataset {settings.data.dataset!r}; built-in: {sorted(BUILTIN)}")
    return pull(settings.data.dataset, root / "data" / "raw", os.environ.get("SESSIONFLOW_DATA_MIRROR"))


def write_snapshot(
    table: pd.DataFrame, target: Path, digest_of: Callable[[pd.DataFrame], str]
) -> tuple[str, bool]:
    """Write ``table`` to the parquet ``target`` (temporary file + rename) unless the file there has the same
    content digest already; returns (digest, unchanged). Unchanged files keep file-keyed caches valid."""
    digest = digest_of(table)
    unchanged = target.is_file() and digest_of(pd.read_parquet(target)) == digest
    if not unchanged:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(target)
    return digest, unchanged


def run_feedback_export(settings: Settings, root: Path) -> FeedbackExport:
    """Snapshot the live feedback log into data/feedback/<dataset>/events.parquet (the data version DVC
    tracks). Always written -- empty when there is no log yet -- so DVC has a stable output; left untouched
    when its content is unchanged, so file-keyed caches downstream stay valid."""
    from components.feedback_log import default_feedback_url, feedback_stats, read_feedback, redact_url
    from components.ingest import feedback_hash
    from sessionflow.forget import forget_requests

    paths = paths_for(settings, root)
    url = default_feedback_url(root)
    events = read_feedback(url)
    target = paths.feedback_snapshot
    digest, unchanged = write_snapshot(events, target, feedback_hash)
    return FeedbackExport(
        dataset=paths.dataset,
        source=redact_url(url),
        snapshot=str(target),
        feedback_hash=digest,
        rewritten=not unchanged,
        forget_requests=forget_requests(root),
        **feedback_stats(events),
    )


def run_catalogue_export(settings: Settings, root: Path) -> CatalogueExport:
    """Snapshot the service's catalogue overlay (components/catalogue_overlay.py: items added and retired
    while serving) into data/catalogue/<dataset>/changes.parquet, the data version DVC tracks. Always written
    -- empty when nothing changed yet -- and left untouched when its content is unchanged, as the feedback
    snapshot."""
    from components.catalogue_overlay import OverlayStore, default_overlay_path, overlay_hash, overlay_table

    paths = paths_for(settings, root)
    source = default_overlay_path(root)
    state = OverlayStore(source).read()
    table = overlay_table(state)
    target = paths.catalogue_snapshot
    digest, unchanged = write_snapshot(table, target, overlay_hash)
    return CatalogueExport(
        dataset=paths.dataset,
        source=source.name,
        snapshot=str(target),
        catalogue_hash=digest,
        rewritten=not unchanged,
        revision=state.revision,
        n_added=len(state.items),
        n_retired=len(state.retired),
    )


def run_ingest(settings: Settings, root: Path) -> IngestResult:
    from components.catalogue_overlay import overlay_hash
    from components.features import resolve_sequence_key
    from components.ingest import feedback_hash, ingest, merge_catalogue_changes, merge_feedback

    spec = dataset_spec(settings, root)
    paths = Paths(root, spec.name)
    fingerprint = ingest_fingerprint(settings, root)  # of the inputs as read now
    data = ingest(spec, settings.data.session_gap_minutes)
    n_raw, raw_hash = len(data.interactions), data.data_hash
    n_feedback, auto_key, snapshot_hash = 0, None, None
    if settings.data.include_feedback and paths.feedback_snapshot.is_file():
        feedback = pd.read_parquet(paths.feedback_snapshot)
        if len(feedback):
            # what `features.sequence_key: auto` means for the source data, pinned before feedback (clicks,
            # likes) is merged: a rating log stays one sequence per user however much feedback arrives
            auto_key = resolve_sequence_key(data.interactions, "auto") if n_raw else None
            n_feedback = len(feedback)
            snapshot_hash = feedback_hash(feedback)
            data = merge_feedback(data, feedback)
    n_with_feedback = len(data.interactions)
    catalogue_hash, merged = None, None
    if settings.data.include_catalogue_changes and paths.catalogue_snapshot.is_file():
        changes = pd.read_parquet(paths.catalogue_snapshot)
        if len(changes):
            if auto_key is None and n_raw:  # pinned on the source data, as for feedback
                auto_key = resolve_sequence_key(data.interactions, "auto")
            catalogue_hash = overlay_hash(changes)
            data, merged = merge_catalogue_changes(data, changes)
    paths.interim.mkdir(parents=True, exist_ok=True)
    data.interactions.to_parquet(paths.interim / "interactions.parquet", index=False)
    data.items.to_parquet(paths.interim / "items.parquet", index=False)
    info = IngestResult(
        dataset=spec.name,
        format=spec.format,
        data_hash=data.data_hash,
        raw_data_hash=raw_hash,
        feedback_hash=snapshot_hash,
        n_interactions=len(data.interactions),
        n_items=len(data.items),
        n_users=int(data.interactions["user_id"].nunique()),
        n_sessions=int(data.interactions["session_id"].nunique()),
        n_source_interactions=n_raw,
        n_feedback_events=n_feedback,
        n_feedback_interactions=n_with_feedback - n_raw,
        n_feedback_negative_dropped=n_feedback - (n_with_feedback - n_raw),
        sequence_key_auto=auto_key,
        catalogue_hash=catalogue_hash,
        n_catalogue_added=merged.n_added if merged else 0,
        n_catalogue_replaced=merged.n_replaced if merged else 0,
        n_catalogue_retired=merged.n_retired if merged else 0,
        n_retired_interactions_dropped=merged.n_interactions_dropped if merged else 0,
        fingerprint=fingerprint,
    )
    (paths.interim / "ingest.json").write_text(info.model_dump_json(indent=2))
    return info


def run_validate(settings: Settings, root: Path, raise_on_fail: bool = True) -> ValidationResult:
    from components.validate import validate_tables

    paths = paths_for(settings, root)
    interactions = pd.read_parquet(paths.interim / "interactions.parquet")
    items = pd.read_parquet(paths.interim / "items.parquet")
    report = validate_tables(
        interactions,
        items,
        settings.validate_,
        project_dir=paths.gx,
        quarantine_dir=paths.quarantine,
        dataset_name=paths.dataset,
    )
    paths.clean.mkdir(parents=True, exist_ok=True)
    info = ValidationResult(
        passed=report.passed,
        counts=json.loads(json.dumps(report.counts, default=str)),
        data_docs=str(report.data_docs) if report.data_docs else None,
        summary=report.summary,
        quarantine=str(paths.quarantine / paths.dataset),
    )
    (paths.clean / "validation.json").write_text(info.model_dump_json(indent=2))
    if raise_on_fail:
        report.raise_if_failed()
    report.interactions.to_parquet(paths.clean / "interactions.parquet", index=False)
    report.items.to_parquet(paths.clean / "items.parquet", index=False)
    return info


def run_featurize(settings: Settings, root: Path) -> FeatureResult:
    paths = paths_for(settings, root)
    if not (paths.clean / "interactions.parquet").is_file():
        raise FileNotFoundError(f"{paths.clean} holds no validated data; run the validate stage first")
    interactions = pd.read_parquet(paths.clean / "interactions.parquet")
    items = pd.read_parquet(paths.clean / "items.parquet")
    fs = build_features(interactions, _pinned_features(settings, paths), items)
    save_features(fs, paths.features)
    info = dict(fs.stats)
    from components.prior import item_audience, trending_popularity

    trending = trending_popularity(interactions, fs.vocab, settings.features.trending_half_life_days)
    np.save(paths.features / TRENDING_FILE, trending)
    np.save(paths.features / AUDIENCE_FILE, item_audience(interactions, fs.vocab))
    if settings.features.text_embeddings and has_real_text(items):
        from components.text_encoder import embed_items

        emb, _ = embed_items(
            item_texts(fs.vocab, items), paths.cache / "embeddings", settings.features.embed_batch_size
        )
        np.save(paths.features / "item_text.npy", emb)
        info["item_text_embeddings"] = list(emb.shape)
    result = FeatureResult.model_validate(
        json.loads(json.dumps({"sequence_key": fs.sequence_key, "stats": info}, default=str))
    )
    (paths.features / "features.json").write_text(result.model_dump_json(indent=2))
    return result


def _pinned_features(settings: Settings, paths: Paths) -> FeaturesConfig:
    """``sequence_key: auto`` resolved on the source data as ingest recorded it (feedback events must not
    turn a rating log into session sequences); other settings as given."""
    cfg = settings.features
    info_path = paths.interim / "ingest.json"
    if cfg.sequence_key != "auto" or not info_path.is_file():
        return cfg
    key = json.loads(info_path.read_text()).get("sequence_key_auto")
    return cfg.model_copy(update={"sequence_key": key}) if key in ("user", "session") else cfg


def trending_prior(settings: Settings, root: Path) -> np.ndarray | None:
    """The featurize stage's time-decayed popularity (vocabulary order), or None before it existed."""
    path = paths_for(settings, root).features / TRENDING_FILE
    return np.load(path) if path.is_file() else None


def item_audience(settings: Settings, root: Path) -> np.ndarray | None:
    """The featurize stage's interactions, mean rating and ratings per item (vocabulary order), or None
    before it existed."""
    path = paths_for(settings, root).features / AUDIENCE_FILE
    return np.load(path) if path.is_file() else None


def load_stage_features(settings: Settings, root: Path) -> tuple[FeatureSet, pd.DataFrame, str]:
    """Features, the clean items table and the data hash, as the training stage needs them."""
    paths = paths_for(settings, root)
    fs = load_features(paths.features)
    items = pd.read_parquet(paths.clean / "items.parquet")
    data_hash = json.loads((paths.interim / "ingest.json").read_text())["data_hash"]
    return fs, items, data_hash


def evaluate_bundle(settings: Settings, root: Path, bundle_dir: Path) -> dict[str, float]:
    """A saved bundle (e.g. the champion) scored on the current test split, mapped into its vocabulary."""
    from components.bundle import Predictor
    from components.evaluate import evaluate
    from components.features import remap_eval_data

    fs, _, _ = load_stage_features(settings, root)
    pred = Predictor.load(bundle_dir)
    data, popularity = remap_eval_data(fs, pred.vocab)
    return evaluate(pred.model, data, settings.evaluate, popularity)


def load_ingest(settings: Settings, root: Path) -> IngestResult:
    """What the last ingest recorded (data/interim/<dataset>/ingest.json)."""
    path = paths_for(settings, root).interim / "ingest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the ingest stage first")
    return IngestResult.model_validate_json(path.read_text())


def lineage(settings: Settings, root: Path, ingest: IngestResult | None = None) -> Lineage:
    """The data version behind a training run: data hashes and the DVC revision of the project folder."""
    info = ingest or load_ingest(settings, root)
    paths = paths_for(settings, root)
    data = DataLineage(
        data_hash=info.data_hash,
        raw_data_hash=info.raw_data_hash,
        feedback_hash=info.feedback_hash,
        n_feedback_events=info.n_feedback_events,
        catalogue_hash=info.catalogue_hash,
    )
    outputs = [paths.raw / paths.dataset, paths.feedback_snapshot, paths.catalogue_snapshot]
    return Lineage(data=data, code=code_revision(root, [str(p.relative_to(root)) for p in outputs]))


def code_revision(root: Path, dvc_paths: Sequence[str] = ()) -> CodeRevision:
    """git commit (and whether the tree is dirty) of ``root``, sha256 of its dvc.lock and the md5 dvc.lock
    records for ``dvc_paths``; fields are None outside a git repository / without dvc.lock."""
    commit = _git(root, "rev-parse", "HEAD")
    dirty = None if commit is None else bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    lock = root / "dvc.lock"
    lock_sha, outs = None, {}
    if lock.is_file():
        import yaml

        text = lock.read_bytes()
        lock_sha = hashlib.sha256(text).hexdigest()
        stages_ = (yaml.safe_load(text) or {}).get("stages", {})
        for stage in stages_.values():
            for out in stage.get("outs", []) or []:
                if out.get("path") in dvc_paths and out.get("md5"):
                    outs[out["path"]] = str(out["md5"])
    return CodeRevision(git_commit=commit, git_dirty=dirty, dvc_lock_sha256=lock_sha, dvc_outs=outs)


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
