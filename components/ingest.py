"""Adapters: raw files of each format -> canonical interactions and items tables (components/schema.py).

Adapters keep every row (bad values become NaN/NaT/<NA>); validation decides what to reject and
quarantines it with the reason. A file that cannot be read as its format says (empty, truncated, mixed
encodings, malformed lines) stops ingest with a one-line ``DataFormatError`` naming the file and the line
(components/rawfiles.py). Sessions come from ``assign_sessions`` (inactivity gap) unless the
source has its own session ids (DIGINETICA, or a mapped ``session_id`` column).

``merge_feedback`` appends the service's feedback (a snapshot of components.feedback_log) to the ingested
tables, and ``merge_catalogue_changes`` folds in the catalogue changes made while serving (a snapshot of
components.catalogue_overlay): the retraining loop's new data version.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.catalogue_overlay import CatalogueMerge, merge_catalogue, overlay_hash
from components.datasets import DatasetSpec, data_hash, spec_files
from components.feedback_log import negative_feedback
from components.rawfiles import read_lines, read_parquet, read_table, zip_member
from components.schema import INTERACTION_COLUMNS, coerce_interactions, coerce_items

FEEDBACK_SESSION_PREFIX = "feedback:"


@dataclass
class CanonicalData:
    interactions: pd.DataFrame
    items: pd.DataFrame
    data_hash: str
    source_has_sessions: bool


def ingest(spec: DatasetSpec, session_gap_minutes: float = 30.0) -> CanonicalData:
    """Read a dataset described by ``spec`` into canonical tables."""
    reader = _READERS[spec.format]
    interactions, items, has_sessions = reader(spec)
    if not has_sessions:
        interactions = assign_sessions(interactions, session_gap_minutes)
    interactions = coerce_interactions(interactions)
    # stable sort: per user by time; ties keep file order
    interactions = interactions.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return CanonicalData(interactions, coerce_items(items), data_hash(spec_files(spec)), has_sessions)


def feedback_hash(feedback: pd.DataFrame) -> str:
    """sha256 of a feedback table's content (canonical columns, row order kept; timestamps as ISO UTC)."""
    canon = coerce_interactions(feedback)[list(INTERACTION_COLUMNS)]
    canon["timestamp"] = canon["timestamp"].map(lambda t: "" if pd.isna(t) else t.isoformat())
    text = canon.to_csv(index=False, lineterminator="\n", na_rep="", float_format="%.17g")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def merge_feedback(data: CanonicalData, feedback: pd.DataFrame) -> CanonicalData:
    """``data`` with the positive feedback events appended (a new data version); pure.

    - Negative reactions (``dislike``, ``skip``, ``rating`` < 3) are dropped: training sequences treat every
      interaction as positive, so a disliked item must not become a training target. They stay in the
      feedback snapshot for analysis.
    - Feedback user ids are pseudonymised by the log and never match the source's users, so feedback
      sessions form sequences of their own; their session ids get the prefix ``feedback:`` so that they
      cannot collide with the source's session ids.
    - Rows are appended as they are: validation judges them like any other row (an item missing from the
      catalogue is quarantined by the rule ``unknown_item``).
    - ``data_hash`` becomes sha256(raw hash, feedback content hash) over the whole snapshot (negatives
      included), so it changes whenever feedback arrives; with no feedback ``data`` is returned unchanged.
    Items and ``source_has_sessions`` are kept; nothing else is recomputed.
    """
    if feedback.empty:
        return data
    canon = coerce_interactions(feedback)[list(INTERACTION_COLUMNS)]
    positive = canon[~negative_feedback(canon).to_numpy()].copy()
    positive["session_id"] = FEEDBACK_SESSION_PREFIX + positive["session_id"].astype("string")
    interactions = coerce_interactions(pd.concat([data.interactions, positive], ignore_index=True))
    combined = hashlib.sha256(f"{data.data_hash}|feedback:{feedback_hash(canon)}".encode()).hexdigest()
    return CanonicalData(interactions, data.items, combined, data.source_has_sessions)


def merge_catalogue_changes(
    data: CanonicalData, changes: pd.DataFrame
) -> tuple[CanonicalData, CatalogueMerge]:
    """``data`` with the catalogue changes of a snapshot (``overlay_table``) folded in; pure. Added items join
    the items table (their rows replace rows of the same id), retired items leave it together with their
    interactions. ``data_hash`` becomes sha256(hash so far, snapshot content hash); unchanged without
    changes."""
    merged = merge_catalogue(data.items, data.interactions, changes)
    if changes.empty:
        return data, merged
    combined = hashlib.sha256(f"{data.data_hash}|catalogue:{overlay_hash(changes)}".encode()).hexdigest()
    out = CanonicalData(
        coerce_interactions(merged.interactions), merged.items, combined, data.source_has_sessions
    )
    return out, merged


def assign_sessions(df: pd.DataFrame, gap_minutes: float) -> pd.DataFrame:
    """session_id = '<user>-<n>': a new session starts after ``gap_minutes`` of inactivity (stable order)."""
    df = df.copy()
    ts = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    seconds = (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)  # NaN for NaT
    users_all = df["user_id"].astype("string").fillna("").to_numpy(dtype=object)
    order = np.lexsort((np.arange(len(df)), np.nan_to_num(seconds, nan=np.inf), users_all))
    users = users_all[order]
    t = seconds[order]
    new_user = np.r_[True, users[1:] != users[:-1]]
    with np.errstate(invalid="ignore"):
        new_gap = np.r_[True, (t[1:] - t[:-1]) > gap_minutes * 60.0]
    session_no = np.cumsum(new_user | new_gap)
    first_of_user = np.maximum.accumulate(np.where(new_user, session_no, 0))
    local = session_no - first_of_user
    sid = np.empty(len(df), dtype=object)
    sid[order] = [f"{u}-{n}" for u, n in zip(users, local, strict=True)]
    df["session_id"] = sid
    return df


_EPOCH_LIMIT_SECONDS = 9.2e9  # datetime64[ns] covers 1677..2262, about +-9.2e9 s around 1970


def epoch_to_utc(values: pd.Series, unit: str) -> pd.Series:
    """Unix times (s or ms) -> UTC timestamps; unparseable or unrepresentable values become NaT (kept)."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    scale = {"s": 1.0, "ms": 1e-3}[unit]
    numbers = numbers.where((numbers * scale).abs() < _EPOCH_LIMIT_SECONDS)
    return pd.to_datetime(numbers, unit=unit, utc=True, errors="coerce")


def _movielens_100k(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    root = spec.resolve(spec.path)
    ratings = read_table(root / "u.data", sep="\t", names=["user_id", "item_id", "value", "ts"])
    inter = pd.DataFrame(
        {
            "user_id": ratings["user_id"],
            "item_id": ratings["item_id"],
            "timestamp": epoch_to_utc(ratings["ts"], "s"),
            "event": "rating",
            "value": pd.to_numeric(ratings["value"], errors="coerce"),
        }
    )
    genres = read_table(root / "u.genre", sep="|", names=["name", "idx"], encoding="latin-1")
    genres["idx"] = pd.to_numeric(genres["idx"], errors="coerce")
    genre_names = [g for g in genres.sort_values("idx")["name"].tolist() if isinstance(g, str)]
    cols = ["item_id", "title", "release", "video", "url", *genre_names]
    raw = read_table(root / "u.item", sep="|", names=cols, encoding="latin-1")
    flags = raw[genre_names].fillna("0").to_numpy() == "1"
    cats = [[g for g, f in zip(genre_names, row, strict=True) if f and g != "unknown"] for row in flags]
    # the "(YYYY)" in the title is the film's year; release dates are sometimes re-releases
    title_year = pd.to_numeric(raw["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    release_year = pd.to_datetime(raw["release"], format="%d-%b-%Y", errors="coerce").dt.year
    year = title_year.fillna(release_year)
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"].fillna(""),
            "categories": cats,
            "year": year,
            "attributes": [json.dumps({"imdb_url": u}) if isinstance(u, str) else "{}" for u in raw["url"]],
        }
    )
    items["text"] = [_item_text(t, c, None) for t, c in zip(items["title"], items["categories"], strict=True)]
    return inter, items, False


def _movielens_latest(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    path = spec.resolve(spec.path)

    def read(name: str) -> pd.DataFrame:
        if path.suffix == ".zip":
            data, where = zip_member(path, name)
            return read_table(where, sep=",", data=data, where=where)
        return read_table(path / name, sep=",")

    ratings, movies, tags = read("ratings.csv"), read("movies.csv"), read("tags.csv")
    inter = pd.DataFrame(
        {
            "user_id": ratings["userId"],
            "item_id": ratings["movieId"],
            "timestamp": pd.to_datetime(
                pd.to_numeric(ratings["timestamp"], errors="coerce"), unit="s", utc=True
            ),
            "event": "rating",
            "value": pd.to_numeric(ratings["rating"], errors="coerce"),
        }
    )
    tag_text = (
        tags.dropna(subset=["tag"]).groupby("movieId")["tag"].agg(lambda s: ", ".join(dict.fromkeys(s)))
    )
    cats = (
        movies["genres"]
        .fillna("")
        .map(lambda g: [x for x in g.split("|") if x and x != "(no genres listed)"])
    )
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0]
    items = pd.DataFrame(
        {"item_id": movies["movieId"], "title": movies["title"], "categories": cats, "year": year}
    )
    items["text"] = [
        _item_text(t, c, tag_text.get(i))
        for i, t, c in zip(items["item_id"], items["title"], cats, strict=True)
    ]
    return inter, items, False


def _sequence_lines(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    users: list[str] = []
    item_ids: list[str] = []
    pos: list[int] = []
    for line in read_lines(spec.resolve(spec.path)):
        parts = line.split()
        if not parts:
            continue
        users.extend([parts[0]] * (len(parts) - 1))
        item_ids.extend(parts[1:])
        pos.extend(range(len(parts) - 1))
    inter = _sequence_table(users, item_ids, pos, spec)
    return inter, _items_or_ids(spec, inter), True


def _diginetica(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    raw = read_table(spec.resolve(spec.path), sep=";")
    day = pd.to_datetime(raw["eventdate"], format="%Y-%m-%d", errors="coerce", utc=True)
    ts = day + pd.to_timedelta(pd.to_numeric(raw["timeframe"], errors="coerce"), unit="ms")
    anonymous = raw["user_id"].isna() | (raw["user_id"] == "NA")
    inter = pd.DataFrame(
        {
            "user_id": raw["user_id"].where(~anonymous, "anon-" + raw["session_id"].astype(str)),
            "session_id": raw["session_id"],
            "item_id": raw["item_id"],
            "timestamp": ts,
            "event": "view",
            "value": np.nan,
        }
    )
    return inter, _items_or_ids(spec, inter), True


def _interactions_csv(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    path = spec.resolve(spec.path)
    raw = read_parquet(path) if path.suffix in (".parquet", ".pq") else read_table(path, sep=spec.separator)
    mapping = {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp", **spec.columns}
    missing = [f"{canon} (column {col!r})" for canon, col in mapping.items() if col not in raw.columns]
    required_missing = [m for m in missing if m.split()[0] in ("user_id", "item_id", "timestamp")]
    if required_missing:
        raise ValueError(
            f"{path}: spec {spec.name!r} maps columns that are not in the file: {required_missing}; "
            f"file columns: {list(raw.columns)}"
        )
    ts_raw = raw[mapping["timestamp"]]
    if spec.timestamp_unit:
        ts = epoch_to_utc(ts_raw, spec.timestamp_unit)
    else:
        ts = pd.to_datetime(ts_raw, utc=True, errors="coerce", format="mixed")
    inter = pd.DataFrame(
        {
            "user_id": raw[mapping["user_id"]],
            "item_id": raw[mapping["item_id"]],
            "timestamp": ts,
            "event": raw[mapping["event"]] if "event" in spec.columns else spec.default_event,
            "value": pd.to_numeric(raw[mapping["value"]], errors="coerce")
            if "value" in spec.columns
            else np.nan,
        }
    )
    has_sessions = "session_id" in spec.columns
    if has_sessions:
        inter["session_id"] = raw[spec.columns["session_id"]]
    return inter, _items_or_ids(spec, inter), has_sessions


def _sequence_table(users: list[str], item_ids: list[str], pos: list[int], spec: DatasetSpec) -> pd.DataFrame:
    """Interactions of ordered sequences without times: one sequence per user (= its session), synthetic
    timestamps ``synthetic_time_step_seconds`` apart from 2000-01-01 so that the order survives."""
    step = pd.to_timedelta(np.asarray(pos, dtype=np.float64) * spec.synthetic_time_step_seconds, unit="s")
    inter = pd.DataFrame(
        {
            "user_id": users,
            "item_id": item_ids,
            "timestamp": pd.Timestamp("2000-01-01", tz="UTC") + step,
            "event": spec.default_event,
            "value": np.nan,
        }
    )
    inter["session_id"] = inter["user_id"]
    return inter


def _items_or_ids(spec: DatasetSpec, inter: pd.DataFrame) -> pd.DataFrame:
    """Items from the spec's items file, or a bare catalogue of the ids seen in the log."""
    if spec.items is None:
        ids = pd.unique(inter["item_id"].dropna().astype(str))
        return pd.DataFrame({"item_id": ids, "title": [f"item {i}" for i in ids], "text": ""})
    it = spec.items
    path = spec.resolve(it.path)
    raw = read_parquet(path) if path.suffix in (".parquet", ".pq") else read_table(path, sep=it.separator)
    mapping = {"item_id": "item_id", "title": "title", **it.columns}
    if mapping["item_id"] not in raw.columns:
        raise ValueError(
            f"{path}: items file has no column {mapping['item_id']!r}; columns: {list(raw.columns)}"
        )
    out = pd.DataFrame({"item_id": raw[mapping["item_id"]]})
    out["title"] = (
        raw[mapping["title"]] if mapping["title"] in raw.columns else "item " + out["item_id"].astype(str)
    )
    if "categories" in mapping and mapping["categories"] in raw.columns:
        sep = it.category_separator
        out["categories"] = (
            raw[mapping["categories"]]
            .fillna("")
            .map(lambda s: [c.strip() for c in s.split(sep) if c.strip()])
        )
    else:
        out["categories"] = [[] for _ in range(len(out))]
    if "year" in mapping and mapping["year"] in raw.columns:
        out["year"] = raw[mapping["year"]]
    extra = raw[mapping["text"]] if "text" in mapping and mapping["text"] in raw.columns else None
    out["text"] = [
        _item_text(t, c, None if extra is None else extra.iloc[i])
        for i, (t, c) in enumerate(zip(out["title"], out["categories"], strict=True))
    ]
    attrs = {k[len("attributes.") :]: col for k, col in mapping.items() if k.startswith("attributes.")}
    if attrs:  # brand, price...: what catalogue facets with column attributes.<key> read
        missing = sorted(col for col in attrs.values() if col not in raw.columns)
        if missing:
            raise ValueError(f"{path}: items file has no column(s) {missing}; columns: {list(raw.columns)}")
        out["attributes"] = [
            json.dumps({k: _attribute(raw[col].iloc[i]) for k, col in attrs.items()}) for i in range(len(raw))
        ]
    return out


def _attribute(value: object) -> object:
    """An item attribute as JSON: as written in the file (number facets parse "$12.50" at indexing), missing
    or empty values as null."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    return text or None


def _atomic_stem(root: Path, name: str | None) -> str:
    if name:
        return name
    stems = sorted(p.name[: -len(".test.inter")] for p in root.glob("*.test.inter"))
    if len(stems) != 1:
        raise ValueError(
            f"{root}: recbole-atomic needs exactly one <name>.test.inter (found {stems or 'none'}); "
            "set atomic_name in the dataset spec"
        )
    return stems[0]


def _atomic_table(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab-separated, header ``name:type``; columns renamed to ``name``."""
    if not path.is_file():
        raise FileNotFoundError(f"recbole-atomic: {path} is missing")
    raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    raw.columns = [str(c).split(":", 1)[0] for c in raw.columns]
    return raw


def _index_map(path: Path) -> dict[str, str] | None:
    """``token<TAB>index`` (item2index / user2index) -> {index: token}; None when the file is absent."""
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t", header=None, names=["token", "index"], dtype=str, quoting=3)
    return dict(zip(table["index"], table["token"], strict=True))


def _recbole_atomic(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """RecBole/UniSRec pre-split atomic files: ``<name>.{train,valid,test}.inter`` rows of
    (user_id, item_id_list = history, item_id = target); a user's full time-ordered sequence is its longest
    row's history + target (the test row). ``<name>.text`` gives item text (``item_id``, ``text``);
    ``<name>.item2index`` / ``user2index`` map the integer indices back to the source ids."""
    root = spec.resolve(spec.path)
    stem = _atomic_stem(root, spec.atomic_name)
    items_of = _index_map(root / f"{stem}.item2index")
    users_of = _index_map(root / f"{stem}.user2index")
    sequences: dict[str, list[str]] = {}
    for split in ("train", "valid", "test"):
        table = _atomic_table(root / f"{stem}.{split}.inter")
        missing = {"user_id", "item_id_list", "item_id"} - set(table.columns)
        if missing:
            raise ValueError(f"{root / f'{stem}.{split}.inter'}: lacks columns {sorted(missing)}")
        for user, history, target in zip(
            table["user_id"], table["item_id_list"], table["item_id"], strict=True
        ):
            seq = [*history.split(), target]
            if len(seq) > len(sequences.get(user, [])):
                sequences[user] = seq
    users: list[str] = []
    item_ids: list[str] = []
    pos: list[int] = []
    for user, seq in sequences.items():
        users.extend([users_of.get(user, user) if users_of else user] * len(seq))
        item_ids.extend(items_of.get(i, i) if items_of else i for i in seq)
        pos.extend(range(len(seq)))
    inter = _sequence_table(users, item_ids, pos, spec)
    text_path = root / f"{stem}.text"
    if text_path.is_file():
        text = _atomic_table(text_path)
        if not {"item_id", "text"} <= set(text.columns):
            raise ValueError(f"{text_path}: needs columns item_id and text, has {list(text.columns)}")
        items = pd.DataFrame({"item_id": text["item_id"], "text": text["text"].str.strip()})
        items["title"] = items["text"].map(_first_sentence)
        known = set(items["item_id"])
        extra = [i for i in pd.unique(inter["item_id"]) if i not in known]
        if extra:
            items = pd.concat(
                [items, pd.DataFrame({"item_id": extra, "title": [f"item {i}" for i in extra], "text": ""})],
                ignore_index=True,
            )
    else:
        items = _items_or_ids(spec, inter)
    return inter, items, True


def _first_sentence(text: str) -> str:
    """Up to the first '. ' (or the whole text): the product title in UniSRec's text files."""
    head = re.split(r"\.\s", text, maxsplit=1)[0].strip()
    return head.rstrip(".") or text


def _item_text(title: object, categories: list[str], extra: object) -> str:
    parts = [str(title)] if isinstance(title, str) and title else []
    if categories:
        parts.append(", ".join(categories))
    if isinstance(extra, str) and extra:
        parts.append(extra)
    return ". ".join(parts)


_READERS = {
    "movielens-100k": _movielens_100k,
    "movielens-latest": _movielens_latest,
    "sequence-lines": _sequence_lines,
    "diginetica": _diginetica,
    "interactions-csv": _interactions_csv,
    "recbole-atomic": _recbole_atomic,
}
