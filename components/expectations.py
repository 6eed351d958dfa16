"""Validation rules as code: the Great Expectations suites and the derived columns they check.

Three suites, run in this order by ``components.validate``:

``items`` (one row per catalogue entry)
    item_id not null and not blank; title not null and not blank; title free of HTML markup (rule
    ``title_markup``: scraped catalogues leave titles such as "Industrial & Scientific />"); item_id unique --
    the first row with an item_id is kept, later rows with the same id are rule ``duplicate_item_id``.

``interactions_rows`` (one row per event; row-level rules)
    user_id / session_id / item_id not null and not blank; timestamp parseable (not NaT) and inside
    [timestamp_min, timestamp_max]; event not null and one of ``schema.EVENTS``; when event == 'rating' the
    value is present and inside [rating_min, rating_max]; item_id present in the *validated* items table
    (rule ``unknown_item``); exact duplicate rows (all canonical columns equal) keep their first occurrence,
    the later copies are rule ``duplicate``.

``interactions_sessions`` (run on the rows that passed ``interactions_rows``)
    session length (rows per session_id) inside [min_session_length, max_session_length] (rule
    ``session_length``); bot-like sessions (rule ``bot_like_session``): a session with >= 5 *non-rating*
    events (view, click, cart, ...) whose rate, those events divided by their time span in seconds, exceeds
    ``max_events_per_second`` (a span of 0 s counts as an infinite rate) is rejected as a whole.
    Rating events never count towards the bot rule: rating logs such as MovieLens store one timestamp per
    second and users rate dozens of films in the same second, which is not bot traffic.

Every expectation carries ``meta = {"rule": ..., "reason": ...}``: ``rule`` is the name that quarantined rows
carry (``<expectation type>:<column>`` for plain column checks, a short name for the derived checks above) and
``reason`` a template filled per rejected row from the validated frame (``{column}``) and the raw input
(``{raw_column}``). The order of a suite is the rule priority: a row that breaks several rules is
quarantined under the first one.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.config import ValidateConfig
from components.schema import EVENTS

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

ROW_ID = "row_id"
RATING = "rating"
MIN_BOT_EVENTS = 5

SUITE_ITEMS = "items"
SUITE_INTERACTION_ROWS = "interactions_rows"
SUITE_INTERACTION_SESSIONS = "interactions_sessions"

RULE_DUPLICATE = "duplicate"
RULE_DUPLICATE_ITEM = "duplicate_item_id"
RULE_TITLE_MARKUP = "title_markup"
RULE_UNKNOWN_ITEM = "unknown_item"
RULE_SESSION_LENGTH = "session_length"
RULE_BOT = "bot_like_session"

_NOT_BLANK = r"\S"  # at least one non-whitespace character
_MARKUP = r"</?[A-Za-z][^<>]*>|/>"  # an HTML tag or its debris ("Industrial & Scientific />")


def _named(expectation: Any, reason: str, rule: str | None = None) -> Any:
    """Attach the quarantine rule name and reason template to an expectation (kept in the suite JSON)."""
    expectation.meta = {
        "rule": rule or f"{expectation.expectation_type}:{expectation.column}",
        "reason": reason,
    }
    return expectation


def _present(gxe: Any, column: str) -> list[Any]:
    """Not null, then not empty/blank."""
    return [
        _named(gxe.ExpectColumnValuesToNotBeNull(column=column), f"{column} is missing"),
        _named(
            gxe.ExpectColumnValuesToMatchRegex(column=column, regex=_NOT_BLANK),
            f"{column} '{{{column}}}' is empty or blank",
        ),
    ]


def items_suite() -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx.ExpectationSuite(
        name=SUITE_ITEMS,
        expectations=[
            *_present(gxe, "item_id"),
            *_present(gxe, "title"),
            _named(
                gxe.ExpectColumnValuesToNotMatchRegex(column="title", regex=_MARKUP),
                "title '{title}' holds HTML markup (a scraping leftover, not a product name)",
                RULE_TITLE_MARKUP,
            ),
            _named(
                gxe.ExpectColumnValuesToBeNull(column="duplicate_of"),
                "item_id '{item_id}' is already defined in row {duplicate_of}",
                RULE_DUPLICATE_ITEM,
            ),
        ],
    )


def interaction_rows_suite(
    cfg: ValidateConfig, ts_min: pd.Timestamp, ts_max: pd.Timestamp
) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    is_rating = Column("event") == RATING
    rating_range = f"[{cfg.rating_min:g}, {cfg.rating_max:g}]"
    return gx.ExpectationSuite(
        name=SUITE_INTERACTION_ROWS,
        expectations=[
            *_present(gxe, "user_id"),
            *_present(gxe, "session_id"),
            *_present(gxe, "item_id"),
            _named(
                gxe.ExpectColumnValuesToNotBeNull(column="timestamp"),
                "timestamp '{raw_timestamp}' is missing or not a parseable date",
            ),
            _named(
                gxe.ExpectColumnValuesToBeBetween(
                    column="timestamp", min_value=ts_min.to_pydatetime(), max_value=ts_max.to_pydatetime()
                ),
                f"timestamp {{timestamp}} is outside [{ts_min}, {ts_max}]",
            ),
            _named(gxe.ExpectColumnValuesToNotBeNull(column="event"), "event is missing"),
            _named(
                gxe.ExpectColumnValuesToBeInSet(column="event", value_set=list(EVENTS)),
                f"event '{{event}}' is not one of {', '.join(EVENTS)}",
            ),
            _named(
                gxe.ExpectColumnValuesToNotBeNull(column="value", row_condition=is_rating),
                "rating event without a value ('{raw_value}')",
            ),
            _named(
                gxe.ExpectColumnValuesToBeBetween(
                    column="value",
                    min_value=cfg.rating_min,
                    max_value=cfg.rating_max,
                    row_condition=is_rating,
                ),
                f"rating {{value}} is outside {rating_range}",
            ),
            _named(
                gxe.ExpectColumnValuesToBeInSet(column="item_in_catalogue", value_set=[True]),
                "item_id '{item_id}' is not in the validated items table",
                RULE_UNKNOWN_ITEM,
            ),
            _named(
                gxe.ExpectColumnValuesToBeNull(column="duplicate_of"),
                "exact duplicate of row {duplicate_of}",
                RULE_DUPLICATE,
            ),
        ],
    )


def interaction_sessions_suite(cfg: ValidateConfig) -> ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    return gx.ExpectationSuite(
        name=SUITE_INTERACTION_SESSIONS,
        expectations=[
            _named(
                gxe.ExpectColumnValuesToBeBetween(
                    column="session_length",
                    min_value=cfg.min_session_length,
                    max_value=cfg.max_session_length,
                ),
                f"session '{{session_id}}' has {{session_length}} events, outside "
                f"[{cfg.min_session_length}, {cfg.max_session_length}]",
                RULE_SESSION_LENGTH,
            ),
            _named(
                gxe.ExpectColumnValuesToBeBetween(
                    column="session_events_per_second", max_value=cfg.max_events_per_second
                ),
                f"bot-like session '{{session_id}}': {{session_bot_events}} non-rating events at "
                f"{{session_events_per_second:.1f}} events/s (limit {cfg.max_events_per_second:g})",
                RULE_BOT,
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------------------
# Derived columns (pandas, vectorised). Every frame handed to GX is indexed by ``row_id``: the row's position
# in the input table, so GX reports failing rows by position.


def _duplicate_of(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Position of the first row with the same values in ``columns``; <NA> for first occurrences."""
    positions = pd.Series(frame.index.to_numpy(), index=frame.index)
    group = frame.groupby(columns, dropna=False, sort=False).ngroup()
    first = positions.groupby(group).transform("min")
    return first.where(first != positions).astype("Int64")


def item_frame(items: pd.DataFrame, raw_title: pd.Series) -> pd.DataFrame:
    """Frame for ``items_suite``: item_id, title (raw: nulls kept), duplicate_of (null item_ids excluded)."""
    frame = pd.DataFrame(
        {"item_id": items["item_id"], "title": raw_title.astype("string")}, index=items.index
    )
    dup = _duplicate_of(frame[["item_id"]], ["item_id"])
    frame["duplicate_of"] = dup.where(frame["item_id"].notna())
    frame.index.name = ROW_ID
    return frame


def interaction_row_frame(interactions: pd.DataFrame, known_items: pd.Index) -> pd.DataFrame:
    """Frame for ``interaction_rows_suite``: canonical columns + item_in_catalogue + duplicate_of."""
    frame = interactions.copy()
    known = pd.array(frame["item_id"].isin(known_items).to_numpy(), dtype="boolean")
    frame["item_in_catalogue"] = pd.Series(known, index=frame.index).where(frame["item_id"].notna())
    frame["duplicate_of"] = _duplicate_of(interactions, list(interactions.columns))
    frame.index.name = ROW_ID
    return frame


def interaction_session_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Frame for ``interaction_sessions_suite`` over rows that passed the row rules.

    Adds session_length (rows in the session), session_bot_events (non-rating events in the session) and
    session_events_per_second (those events / their time span in s; inf for a span of 0; NaN -- not checked --
    when the session has fewer than 5 non-rating events).
    """
    frame = rows[["user_id", "session_id", "item_id", "timestamp", "event"]].copy()
    sessions = frame["session_id"]
    frame["session_length"] = sessions.map(sessions.value_counts()).astype("int64")
    events = frame[frame["event"] != RATING]
    stats = events.groupby("session_id", sort=False)["timestamp"].agg(["size", "min", "max"])
    span = (stats["max"] - stats["min"]).dt.total_seconds().to_numpy()
    n = stats["size"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore"):
        rate = np.where(span > 0, n / np.where(span > 0, span, 1.0), np.inf)
    rate = np.where(n >= MIN_BOT_EVENTS, rate, np.nan)
    frame["session_bot_events"] = sessions.map(stats["size"]).fillna(0).astype("int64")
    frame["session_events_per_second"] = sessions.map(pd.Series(rate, index=stats.index)).astype("float64")
    frame.index.name = ROW_ID
    return frame


def format_reasons(template: str, rows: pd.DataFrame) -> pd.Series:
    """Fill ``template`` per row: ``{col}`` / ``{col:spec}`` take the row's value (``<missing>`` if null)."""
    out = pd.Series("", index=rows.index, dtype="string")
    for literal, field, spec, _ in string.Formatter().parse(template):
        out = out + literal
        if field is None:
            continue
        values = rows[field]
        if spec:
            text = values.map(lambda v, s=spec: "<missing>" if pd.isna(v) else format(v, s)).astype("string")
        else:
            text = values.astype("string").fillna("<missing>")
        out = out + text
    return out
