"""Validate stage: canonical tables in, clean tables + quarantine out, judged by Great Expectations suites.

Rules (suites as code, see ``components.expectations`` for the full list and their priority):

* items: item_id present and unique (later duplicates rejected), title present.
* interactions, row rules: ids present, timestamp parseable and in range, event known, rating values present
  and in range, item in the validated catalogue, exact duplicates (first copy kept).
* interactions, session rules (on rows that passed the row rules): session length in range, and bot-like
  sessions -- >= 5 non-rating events faster than ``max_events_per_second`` -- rejected as a whole. The bot
  rule ignores rating events: rating logs (MovieLens) legitimately hold many ratings within the same second.

GX runs three checkpoints (items, interaction rows, interaction sessions) against a file Data Context in
``project_dir`` with ``result_format=COMPLETE``; the frames are indexed by ``row_id`` (input position), so
each expectation reports exactly which rows fail. Those rows go to the quarantine under the first rule they
break, with a readable reason; nothing is dropped silently (rows in == clean + quarantined, per table).

Gate (``ValidationReport.passed``): False when the share of interactions rejected for reasons other than
exact duplication exceeds ``max_reject_fraction``, when the exact-duplicate share exceeds
``max_duplicate_fraction`` (duplicates have their own threshold, so they do not count twice), or when
either clean table is empty. The quarantine is written whether or not the gate passes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from components import expectations as ex
from components.config import ValidateConfig
from components.schema import INTERACTION_COLUMNS, ITEM_COLUMNS, coerce_interactions, coerce_items

logger = logging.getLogger(__name__)

DATASOURCE = "sessionflow"
BATCH_DEFINITION = "whole_dataframe"


class DataValidationError(Exception):
    """The data failed the validation gate; the message is the readable summary (with the Data Docs path)."""


@dataclass
class ValidationReport:
    """Outcome of ``validate_tables``.

    counts keys: ``<table>.<rule>`` (rows quarantined under that rule, every rule listed, zeros included),
    ``<table>.n_rows_in`` / ``<table>.n_rows_clean`` / ``<table>.n_quarantined`` for table in
    (interactions, items), and ``n_duplicates`` (interaction rows that exactly repeat an earlier row).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int]
    passed: bool
    summary: str
    data_docs: str | None

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise DataValidationError(self.summary)


@dataclass
class _Rule:
    name: str
    reason: str
    row_ids: np.ndarray  # input positions GX reported as unexpected
    n_unexpected: int


class _GxProject:
    """A file Data Context in ``root`` with one pandas dataframe asset per (dataset, table)."""

    def __init__(self, root: Path, dataset_name: str) -> None:
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.base import ProgressBarsConfig

        root.mkdir(parents=True, exist_ok=True)
        self.context: Any = gx.get_context(mode="file", context_root_dir=str(root))
        bars = self.context.variables.progress_bars  # a ProgressBarsConfig, or a dict once read back
        if (bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", True)) is not False:
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self.context.variables.save()
        if self.context.config.analytics_enabled is not False:
            self.context.enable_analytics(False)
        try:
            self.datasource: Any = self.context.data_sources.get(DATASOURCE)
        except KeyError:
            self.datasource = self.context.data_sources.add_pandas(DATASOURCE)
        self.dataset_name = dataset_name
        now = datetime.now(UTC)
        self.run_id = RunIdentifier(run_name=f"{dataset_name}-{now:%Y%m%dT%H%M%S}", run_time=now)

    def run(self, table: str, suite: Any, frame: pd.DataFrame) -> list[_Rule]:
        """Validate ``frame`` (indexed by row_id) with ``suite``; update Data Docs; return rule results."""
        import great_expectations as gx

        asset_name = f"{self.dataset_name}.{table}"
        try:
            asset = self.datasource.get_asset(asset_name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(asset_name)
        try:
            batch = asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        suite = self.context.suites.add_or_update(suite)
        name = f"{self.dataset_name}.{suite.name}"
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
                # named index + exclude_unexpected_values: GX returns the failing row_ids as one list (fast)
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": [ex.ROW_ID],
                    "exclude_unexpected_values": True,
                    "return_unexpected_index_query": False,
                },
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=self.run_id)
        rules = []
        for suite_result in result.run_results.values():
            for res in suite_result.results:
                config = res.expectation_config
                if res.exception_info and res.exception_info.get("raised_exception"):
                    raise RuntimeError(
                        f"GX could not evaluate {config.type} on {table}.{config.kwargs.get('column')}: "
                        f"{res.exception_info.get('exception_message')}"
                    )
                found = res.result.get("unexpected_index_list") or []
                ids = np.asarray(found[0][ex.ROW_ID] if found else [], dtype=np.int64)
                n_unexpected = int(res.result.get("unexpected_count") or 0)
                if len(ids) != n_unexpected:
                    raise RuntimeError(
                        f"GX reported {n_unexpected} failures for {config.meta['rule']} "
                        f"but listed {len(ids)} rows"
                    )
                rules.append(_Rule(config.meta["rule"], config.meta["reason"], ids, n_unexpected))
        return rules

    def docs_path(self) -> str | None:
        sites = self.context.get_docs_sites_urls()
        url = sites[0].get("site_url") if sites else None
        return unquote(urlparse(url).path) if url else None


class _Verdicts:
    """Per-row first failing rule + reason for one table (positions 0..n-1)."""

    def __init__(self, table: str, n: int, raw: pd.DataFrame) -> None:
        self.table = table
        self.rule = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.raw = raw.add_prefix("raw_")
        self.rule_counts: dict[str, int] = {}
        self.flagged: dict[str, int] = {}

    def add(self, rules: list[_Rule], frame: pd.DataFrame) -> None:
        """Assign each failing row to the first rule (suite order) that rejects it."""
        for rule in rules:
            self.flagged[rule.name] = self.flagged.get(rule.name, 0) + rule.n_unexpected
            fresh = rule.row_ids[pd.isna(self.rule[rule.row_ids])] if len(rule.row_ids) else rule.row_ids
            self.rule_counts[rule.name] = self.rule_counts.get(rule.name, 0) + len(fresh)
            if len(fresh):
                rows = frame.loc[fresh].join(self.raw.iloc[fresh])
                self.rule[fresh] = rule.name
                self.reason[fresh] = ex.format_reasons(rule.reason, rows).to_numpy(dtype=object)

    @property
    def rejected(self) -> np.ndarray:
        return ~pd.isna(self.rule)

    def quarantine(self, raw: pd.DataFrame) -> pd.DataFrame:
        positions = np.flatnonzero(self.rejected)
        out = raw.iloc[positions].astype("string").reset_index(drop=True)
        out.insert(0, "table", self.table)
        out.insert(1, "row", positions.astype("int64"))
        out["rule"] = pd.array(self.rule[positions], dtype="string")
        out["reason"] = pd.array(self.reason[positions], dtype="string")
        return out


def _utc(value: str | datetime) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def validate_tables(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    cfg: ValidateConfig,
    project_dir: str | Path,
    quarantine_dir: str | Path | None = None,
    dataset_name: str = "dataset",
) -> ValidationReport:
    """Validate both tables with GX; return clean tables, the quarantine and the gate verdict.

    ``project_dir`` is the GX Data Context folder (created when missing; Data Docs under
    ``uncommitted/data_docs``). When ``quarantine_dir`` is given, ``<quarantine_dir>/<dataset_name>/`` gets
    quarantine.parquet, quarantine.csv and counts.json, also when the gate passes.
    """
    raw_inter = interactions.reset_index(drop=True)
    raw_items = items.reset_index(drop=True)
    inter = coerce_interactions(raw_inter)
    cat = coerce_items(raw_items)
    ts_min = _utc(cfg.timestamp_min)
    ts_max = _utc(cfg.timestamp_max) if cfg.timestamp_max else _utc(datetime.now(UTC) + timedelta(days=1))

    project = _GxProject(Path(project_dir), dataset_name)

    item_verdicts = _Verdicts("items", len(cat), raw_items)
    frame = ex.item_frame(cat, raw_items["title"])  # the raw title: coerce_items fills missing ones with ""
    item_verdicts.add(project.run("items", ex.items_suite(), frame), frame)
    clean_items = cat[~item_verdicts.rejected].reset_index(drop=True)

    inter_verdicts = _Verdicts("interactions", len(inter), raw_inter)
    frame = ex.interaction_row_frame(inter, pd.Index(clean_items["item_id"]))
    n_duplicates = int(frame["duplicate_of"].notna().sum())
    suite = ex.interaction_rows_suite(cfg, ts_min, ts_max)
    inter_verdicts.add(project.run("interactions", suite, frame), frame)
    frame = ex.interaction_session_frame(inter[~inter_verdicts.rejected])
    inter_verdicts.add(project.run("interactions", ex.interaction_sessions_suite(cfg), frame), frame)
    clean_inter = inter[~inter_verdicts.rejected].reset_index(drop=True)

    quarantine = _combine_quarantine(
        inter_verdicts.quarantine(raw_inter), item_verdicts.quarantine(raw_items)
    )
    counts: dict[str, int] = {}
    for verdicts, n_in, n_clean in (
        (inter_verdicts, len(inter), len(clean_inter)),
        (item_verdicts, len(cat), len(clean_items)),
    ):
        n_quarantined = int(verdicts.rejected.sum())
        if n_in != n_clean + n_quarantined or n_quarantined != sum(verdicts.rule_counts.values()):
            raise RuntimeError(
                f"{verdicts.table}: {n_in} rows in but {n_clean} clean + {n_quarantined} rejected"
            )
        counts[f"{verdicts.table}.n_rows_in"] = n_in
        counts[f"{verdicts.table}.n_rows_clean"] = n_clean
        counts[f"{verdicts.table}.n_quarantined"] = n_quarantined
        counts.update({f"{verdicts.table}.{rule}": n for rule, n in verdicts.rule_counts.items()})
    counts["n_duplicates"] = n_duplicates

    n_in = len(inter)
    n_rejected = counts["interactions.n_quarantined"] - counts[f"interactions.{ex.RULE_DUPLICATE}"]
    reject_share = n_rejected / max(n_in, 1)
    dup_share = n_duplicates / max(n_in, 1)
    problems = []
    if reject_share > cfg.max_reject_fraction:
        problems.append(
            f"rejected share {reject_share:.2%} > max_reject_fraction {cfg.max_reject_fraction:.2%}"
        )
    if dup_share > cfg.max_duplicate_fraction:
        problems.append(
            f"duplicate share {dup_share:.2%} > max_duplicate_fraction {cfg.max_duplicate_fraction:.2%}"
        )
    if clean_items.empty:
        problems.append("no valid items: the items table is empty after validation")
    if clean_inter.empty:
        problems.append("no valid interactions: the interactions table is empty after validation")

    docs = project.docs_path()
    out_dir = Path(quarantine_dir) / dataset_name if quarantine_dir is not None else None
    summary = _summary(
        dataset_name,
        counts,
        (inter_verdicts, item_verdicts),
        reject_share,
        dup_share,
        cfg,
        problems,
        docs,
        out_dir,
    )
    if out_dir is not None:
        _write_quarantine(out_dir, quarantine, counts, not problems, reject_share, dup_share, docs)
    logger.info("%s", summary)
    return ValidationReport(clean_inter, clean_items, quarantine, counts, not problems, summary, docs)


def _combine_quarantine(inter: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """One frame: table, row, interaction columns, item-only columns, extra input columns, rule, reason."""
    frames = [f for f in (inter, items) if not f.empty]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    first = ["table", "row", *INTERACTION_COLUMNS, *[c for c in ITEM_COLUMNS if c not in INTERACTION_COLUMNS]]
    seen = [*first, "rule", "reason"]
    extra = [c for f in (inter, items) for c in f.columns if c not in seen]
    columns = list(dict.fromkeys([*first, *extra, "rule", "reason"]))
    combined = combined.reindex(columns=columns)
    for col in columns:
        combined[col] = combined[col].astype("int64" if col == "row" else "string")
    return combined


def _summary(
    dataset: str,
    counts: dict[str, int],
    verdicts: tuple[_Verdicts, ...],
    reject_share: float,
    dup_share: float,
    cfg: ValidateConfig,
    problems: list[str],
    docs: str | None,
    out_dir: Path | None,
) -> str:
    lines = [f"Data validation of '{dataset}': {'PASSED' if not problems else 'FAILED'}"]
    for v in verdicts:
        t = v.table
        lines.append(
            f"{t}: {counts[f'{t}.n_rows_in']} rows in, {counts[f'{t}.n_rows_clean']} clean, "
            f"{counts[f'{t}.n_quarantined']} quarantined"
        )
        for rule, n in v.rule_counts.items():
            if v.flagged.get(rule, 0):
                lines.append(f"  {rule}: {n} quarantined ({v.flagged[rule]} flagged by GX)")
    lines.append(
        f"thresholds: rejected (non-duplicate) {reject_share:.2%} of interactions "
        f"(max {cfg.max_reject_fraction:.2%}); duplicates {dup_share:.2%} "
        f"(max {cfg.max_duplicate_fraction:.2%})"
    )
    if problems:
        failing = [f"{v.table}.{r}" for v in verdicts for r, n in v.rule_counts.items() if n]
        lines.append("failed because: " + "; ".join(problems))
        lines.append("failing rules: " + (", ".join(failing) if failing else "none"))
        lines.append(
            "fix the source data or the ingest mapping, or loosen the thresholds in params.yaml (validate)"
        )
    lines.append(f"Data Docs: {docs or 'not built'}")
    if out_dir is not None:
        lines.append(f"quarantine: {out_dir / 'quarantine.csv'}")
    return "\n".join(lines)


def _write_quarantine(
    out_dir: Path,
    quarantine: pd.DataFrame,
    counts: dict[str, int],
    passed: bool,
    reject_share: float,
    dup_share: float,
    docs: str | None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    quarantine.to_parquet(out_dir / "quarantine.parquet", index=False)
    quarantine.to_csv(out_dir / "quarantine.csv", index=False)
    payload = {
        "passed": passed,
        "reject_fraction": round(reject_share, 6),
        "duplicate_fraction": round(dup_share, 6),
        "counts": counts,
        "data_docs": docs,
    }
    (out_dir / "counts.json").write_text(json.dumps(payload, indent=2) + "\n")
