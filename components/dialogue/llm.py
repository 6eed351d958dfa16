"""A language model in the loop, through any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's
server,
a hosted API): ``LLMPlanner`` turns a message into the same typed ``Query`` as the built-in planner, under a
JSON schema, and falls back to the built-in planner on any timeout, error or invalid answer;
``grounded_reply`` lets the model phrase the reply from the shown items' facts and keeps it only when every
title and year it mentions is one of those facts.

Facet values and titles the model returns are resolved against the catalogue (rapidfuzz); values the
catalogue does not have are dropped, titles it does not have become ``unresolved_titles``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from components.dialogue.config import ConversationConfig
from components.dialogue.index import CatalogueIndex
from components.dialogue.planner import PlanContext, Planner
from components.dialogue.query import Constraint, Critique, Intent, ItemRef, Op, Query, Stance
from components.dialogue.text import fold, tokenize

if TYPE_CHECKING:
    from components.dialogue.engine import ChatItem

log = logging.getLogger(__name__)


class DraftConstraint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facet: str = Field(max_length=40)
    op: Op
    value: str | None = Field(None, max_length=80)
    low: float | None = None
    high: float | None = None


class DraftRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=120)
    stance: Stance


class QueryDraft(BaseModel):
    """What the LLM must return (JSON schema from this model); resolved into a ``Query``."""

    model_config = ConfigDict(extra="forbid")
    intent: Intent
    constraints: list[DraftConstraint] = Field(default_factory=list, max_length=8)
    soft: str = Field("", max_length=160)
    avoid: str = Field("", max_length=120)
    refs: list[DraftRef] = Field(default_factory=list, max_length=8)
    critique: Critique | None = None
    language: str = Field("en", pattern=r"^[a-z]{2}$", description="ISO 639-1 code of the message")


def draft_schema() -> dict[str, Any]:
    return QueryDraft.model_json_schema()


def system_prompt(index: CatalogueIndex, max_values: int = 60) -> str:
    """The catalogue the model plans for: item nouns, facets and their values, year range."""
    lines = [
        f"You turn a user's message to a recommender of {index.nouns} into a JSON query.",
        "Facets you may constrain (use these exact names and values):",
    ]
    for name, facet in index.categories.items():
        values = facet.values[:max_values]
        more = f" (and {len(facet.values) - len(values)} more)" if len(facet.values) > len(values) else ""
        lines.append(f"- {name} (category; op is / is_not): {', '.join(values)}{more}")
    for name, number in index.numbers.items():
        b = number.bounds
        span = f" from {b[0]:g} to {b[1]:g}" if b else ""
        lines.append(
            f"- {name} ({number.spec.kind}{span}; op at_least / at_most / between / not_between, low/high)"
        )
    lines += [
        "Rules: years inside a title are part of the title, not a constraint; 'X or Y' years are two "
        "options, "
        "never an empty range; negations apply to what they precede only.",
        "refs: every title the user mentions, with stance liked / disliked / seen / mentioned / "
        "asked_about / "
        "rejected. soft: free-text wishes (mood, topic, people). avoid: free text the user does not want, "
        "a comma between separate ideas.",
        "intent: recommend, refine, ask_about, chit_chat, off_topic, reset, not_understood or "
        "other_language.",
        "Answer with the JSON object only.",
    ]
    return "\n".join(lines)


class LLMPlanner:
    """Plans with an OpenAI-compatible endpoint; the built-in planner answers whenever the LLM cannot."""

    name = "llm"

    def __init__(self, cfg: ConversationConfig, fallback: Planner, index: CatalogueIndex) -> None:
        if not cfg.llm_url:
            raise ValueError("conversation.planner is 'llm' but conversation.llm_url is not set")
        self.cfg = cfg
        self.fallback = fallback
        self.index = index
        self._system = system_prompt(index)
        self.last_latency_ms: float | None = None

    def plan(self, message: str, context: PlanContext | None = None) -> Query:
        context = context or PlanContext()
        start = time.perf_counter()
        try:
            draft = self._ask(message, context)
            query = self._resolve(draft)
        except Exception as exc:  # noqa: BLE001 - any failure (timeout, HTTP, JSON, schema) falls back
            reason = f"{type(exc).__name__}: {str(exc)[:120]}"
            log.info("LLM planner failed (%s); using the built-in planner", reason)
            query = self.fallback.plan(message, context)
            query.planner = f"builtin (llm failed: {reason})"
        self.last_latency_ms = (time.perf_counter() - start) * 1000
        return query

    def _ask(self, message: str, context: PlanContext) -> QueryDraft:
        import httpx

        shown = [self.index.label(i) for i in context.shown[:10]]
        user = f"Message: {message}"
        if shown:
            user += "\nShown list (1-based): " + "; ".join(f"{n}. {t}" for n, t in enumerate(shown, 1))
        schema = draft_schema()
        if self.cfg.llm_json_mode == "json_schema":
            fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "query", "schema": schema}}
        else:
            fmt = {"type": "json_object", "schema": schema}
        body = {
            "model": self.cfg.llm_model,
            "messages": [{"role": "system", "content": self._system}, {"role": "user", "content": user}],
            "temperature": 0.0,
            "max_tokens": 400,
            "response_format": fmt,
        }
        resp = httpx.post(
            self.cfg.llm_url.rstrip("/") + "/chat/completions",  # type: ignore[union-attr]
            json=body, headers=_headers(self.cfg), timeout=self.cfg.llm_timeout_s,
        )  # fmt: skip
        resp.raise_for_status()
        content = resp.json()["choices"][0]["message"]["content"]
        return QueryDraft.model_validate(json.loads(_json_part(content)))

    def _resolve(self, draft: QueryDraft) -> Query:
        q = Query(intent=draft.intent, soft=draft.soft, avoid=draft.avoid, critique=draft.critique,
                  language=draft.language or "en", planner="llm")  # fmt: skip
        for c in draft.constraints:
            resolved = self._constraint(c)
            if resolved is not None:
                q.constraints.append(resolved)
        for ref in draft.refs:
            idx = self.index.linker.fuzzy(ref.title)
            if idx is None:
                q.unresolved_titles.append(ref.title)
            else:
                q.refs.append(
                    ItemRef(item_id=self.index.item_ids[idx], title=self.index.label(idx), stance=ref.stance)
                )
        return q

    def _value(self, facet: str, said: str) -> str | None:
        """A facet value the catalogue has: exact, a phrase of its vocabulary ("comedies"), or fuzzy."""
        from rapidfuzz import fuzz, process

        values = self.index.categories[facet].values
        lower = {v.lower(): v for v in values}
        if said.lower() in lower:
            return lower[said.lower()]
        rows = [v for f, v, w in self.index.phrases.get(fold(said), []) if f == facet and w >= 1.0]
        if rows:
            return rows[0]
        hit = process.extractOne(said, values, scorer=fuzz.WRatio, score_cutoff=85)
        return str(hit[0]) if hit else None

    def _constraint(self, c: DraftConstraint) -> Constraint | None:
        facet = c.facet
        if facet in self.index.categories:
            if c.op not in ("is", "is_not") or not c.value:
                return None
            value = self._value(facet, c.value)
            return None if value is None else Constraint(facet=facet, op=c.op, value=value, said=c.value)
        if facet in self.index.numbers and c.op in ("at_least", "at_most", "between", "not_between"):
            low, high = c.low, c.high
            if c.op in ("between", "not_between") and (low is None or high is None):
                return None
            if low is not None and high is not None and low > high:
                low, high = high, low
            return Constraint(facet=facet, op=c.op, low=low, high=high, said=f"{facet} {c.op}")
        return None


def grounded_reply(
    cfg: ConversationConfig,
    message: str,
    template: str,
    items: Sequence[ChatItem],
    facts: Sequence[str],
    api_key: str | None,
    index: CatalogueIndex | None = None,
) -> str | None:
    """The LLM's reply from the facts of the shown items, or None (keep the template) on any failure or when
    the reply names a title that was not shown or a year that is not in the facts."""
    if not cfg.llm_url:
        return None
    try:
        import httpx

        listing = "\n".join(f"{n}. {fact}" for n, fact in enumerate(facts[:10], 1))
        prompt = (
            f"User said: {message}\nWhat the recommender understood: {template}\nShown items and "
            f"their facts:\n"
            f"{listing}\nIn at most three short sentences, introduce these items to the user. Mention only "
            "titles and facts listed above; never invent any."
        )
        body = {
            "model": cfg.llm_model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 160,
            "temperature": 0.3,
        }
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        resp = httpx.post(cfg.llm_url.rstrip("/") + "/chat/completions", json=body, headers=headers,
                          timeout=cfg.llm_timeout_s)  # fmt: skip
        resp.raise_for_status()
        text = str(resp.json()["choices"][0]["message"]["content"]).strip()[:800]
    except Exception as exc:  # noqa: BLE001 - any failure keeps the template reply
        log.info("LLM reply failed (%s: %s); using the template reply", type(exc).__name__, exc)
        return None
    ok, why = check_grounded(text, items, facts, index)
    if not ok:
        log.info("LLM reply rejected (%s); using the template reply", why)
        return None
    return text or None


def check_grounded(
    text: str, items: Sequence[ChatItem], facts: Sequence[str], index: CatalogueIndex | None
) -> tuple[bool, str]:
    """Every 4-digit year in ``text`` occurs in the facts; every catalogue title linked in it was shown."""
    allowed_years = set(re.findall(r"\b(1[89]\d\d|20\d\d)\b", " ".join(facts)))
    for year in re.findall(r"\b(1[89]\d\d|20\d\d)\b", text):
        if year not in allowed_years:
            return False, f"year {year} is not a fact of the shown items"
    if index is not None:
        shown = {i.item_id for i in items}
        toks = tokenize(text)
        links, _ = index.linker.link(toks, [True] * len(toks))
        for lk in links:
            if index.item_ids[lk.item] not in shown and lk.evidence >= 1.5:
                return False, f"it names {index.label(lk.item)}, which was not shown"
    return True, ""


def _headers(cfg: ConversationConfig) -> dict[str, str]:
    key = os.environ.get(cfg.llm_api_key_env)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _json_part(content: str) -> str:
    """The JSON object in a reply (some servers wrap it in a code fence)."""
    m = re.search(r"\{.*\}", content, re.DOTALL)
    if not m:
        raise ValueError(f"no JSON object in the LLM answer: {content[:120]!r}")
    return m.group(0)
