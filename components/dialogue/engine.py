"""ConversationEngine: parse a message, update the session's state, rank, explain, reply.

The service calls ``chat`` / ``chat_stateless`` / ``feedback`` / ``recommend`` / ``reset``; everything
else here is private. One lock per session (striped) keeps concurrent calls on a session consistent.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from components.dialogue.catalogue import Catalogue
from components.dialogue.config import ConversationConfig
from components.dialogue.parser import MessageParser, ParsedTurn
from components.dialogue.phrasing import llm_reply, rule_reply
from components.dialogue.ranker import Ranked, RankRequest, rank
from components.dialogue.reasons import ReasonContext, explain, query_terms
from components.dialogue.state import (
    DialogueState,
    SessionStore,
    apply_turn,
    make_session_store,
    record_shown,
    year_label,
)
from components.schema import EVENTS

if TYPE_CHECKING:
    from components.bundle import Predictor

log = logging.getLogger(__name__)

POSITIVE_EVENTS = frozenset({"click", "cart", "purchase", "like"})
LIKE_EVENTS = frozenset({"like", "purchase"})
NEGATIVE_EVENTS = frozenset({"dislike", "skip"})
MAX_MESSAGE_CHARS = 2000
_N_LOCKS = 64


class ChatItem(NamedTuple):
    """One recommended item: raw id, title, fused score, one-line reason."""

    item_id: str
    title: str
    score: float
    reason: str


@dataclass
class ChatResult:
    """The answer to one chat turn."""

    reply: str
    items: list[ChatItem]
    state: dict[str, Any]
    understood: dict[str, Any] = field(default_factory=dict)
    reply_source: str = "rules"  # "rules" | "llm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.reply,
            "items": [i._asdict() for i in self.items],
            "state": self.state,
            "understood": self.understood,
            "reply_source": self.reply_source,
        }


class ConversationEngine:
    """Multi-turn conversational recommendation over one Predictor's catalogue."""

    def __init__(
        self,
        predictor: Predictor,
        items: pd.DataFrame,
        config: ConversationConfig,
        store: SessionStore | None,
        embeddings: np.ndarray | None = None,
    ) -> None:
        self.predictor = predictor
        self.config = config
        self.store = (
            store
            if store is not None
            else make_session_store(config.redis_url, config.session_ttl_seconds, config.max_sessions)
        )
        self.catalogue = Catalogue.build(predictor, items, embeddings, config.embedding_cache_dir)
        self.parser = MessageParser(self.catalogue)
        self._locks = [threading.Lock() for _ in range(_N_LOCKS)]
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- public API ---------------------------------------------------------------------------------------
    def chat(self, session_id: str, message: str, k: int | None = None) -> ChatResult:
        """One user turn in a stored session: constraints are folded into the session's state."""
        k = self._k(k)
        message = _check_message(message)
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            result = self._turn(state, message, k)
            self.store.put(state)
        return self._phrase(result, message)

    def chat_stateless(self, messages: list[dict[str, str]], k: int | None = None) -> ChatResult:
        """Replay the user turns of ``messages`` (role/content dicts) into a temporary state."""
        k = self._k(k)
        state = DialogueState("stateless")
        result: ChatResult | None = None
        last = ""
        for n, msg in enumerate(messages):
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise ValueError(f"messages[{n}] must be a dict with 'role' and 'content', got {msg!r}")
            if msg["role"] == "user":
                last = _check_message(msg["content"])
                result = self._turn(state, last, k)
        if result is None:
            raise ValueError("messages hold no turn with role 'user': nothing to answer")
        return self._phrase(result, last)

    def feedback(
        self, session_id: str, item_id: str, event: str, value: float | None = None
    ) -> dict[str, Any]:
        """Record a reaction to an item; the next answer for this session reflects it immediately."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {list(EVENTS)}")
        idx = self.catalogue.index(str(item_id))
        if idx is None:
            raise ValueError(
                f"unknown item id {item_id!r}: not in the model's catalogue of {len(self.catalogue)} items"
            )
        polarity = _polarity(event, value)
        item_id = self.catalogue.item_ids[idx]
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            if polarity == "negative":
                _remove(item_id, state.liked, state.positive_refs, state.history)
                _append_unique(state.disliked, item_id)
            else:
                _remove(item_id, state.disliked, state.rejected_items, state.history)
                state.history.append(item_id)
                if polarity == "positive" and (event in LIKE_EVENTS or event == "rating"):
                    _append_unique(state.liked, item_id)
            answer: dict[str, Any] = {
                "session_id": session_id, "item_id": item_id, "event": event, "value": value,
                "polarity": polarity,
            }  # fmt: skip
            if self.config.refresh_on_feedback:
                k = len(state.shown) or self.config.default_k
                items = self._answer(state, k)
                record_shown(state, [i.item_id for i in items])
                answer["items"] = [i._asdict() for i in items]
            self.store.put(state)
            answer["state"] = state.to_dict()
        return answer

    def recommend(
        self,
        session_id: str | None,
        items: list[str] | None = None,
        k: int | None = None,
        exclude: Sequence[str] | None = None,
    ) -> list[ChatItem]:
        """The /recommend path: ``items`` (the session's items, oldest first) plus this session's live
        feedback and constraints. Unknown ids are ignored here; ``split_known`` reports them."""
        k = self._k(k)
        stored = self.store.get(session_id) if session_id else None
        state = copy.deepcopy(stored) if stored else DialogueState(session_id or "anonymous")
        given = [str(i) for i in (items or []) if self.catalogue.index(str(i)) is not None]
        state.history = given + [i for i in state.history if i not in given]
        return self._answer(state, k, exclude=exclude or ())

    def reset(self, session_id: str) -> None:
        """Forget the session entirely (constraints, feedback, history)."""
        with self._lock(session_id):
            self.store.delete(session_id)

    def load_history(self, session_id: str, item_ids: Sequence[str]) -> list[str]:
        """Set the session's interaction history (oldest first); returns the unknown ids left out."""
        known = [str(i) for i in item_ids if self.catalogue.index(str(i)) is not None]
        unknown = [str(i) for i in item_ids if self.catalogue.index(str(i)) is None]
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            state.history = known
            self.store.put(state)
        return unknown

    def split_known(self, item_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """(known, unknown) raw ids against the catalogue."""
        known = [str(i) for i in item_ids if self.catalogue.index(str(i)) is not None]
        return known, [str(i) for i in item_ids if self.catalogue.index(str(i)) is None]

    # -- internals -----------------------------------------------------------------------------------------
    def _k(self, k: int | None) -> int:
        k = self.config.default_k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return min(k, len(self.catalogue))

    def _lock(self, session_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(session_id.encode()) % _N_LOCKS]

    def _turn(self, state: DialogueState, message: str, k: int) -> ChatResult:
        shown = [i for i in (self.catalogue.index(s) for s in state.shown) if i is not None]
        parsed = self.parser.parse(message, shown)
        apply_turn(state, parsed, self.catalogue)
        items = self._answer(state, k)
        record_shown(state, [i.item_id for i in items])
        understood = self._understood(parsed)
        reply = self._reply(state, parsed, items, k)
        return ChatResult(reply, items, state.to_dict(), understood, "rules")

    def _phrase(self, result: ChatResult, message: str) -> ChatResult:
        """Let the configured LLM re-word the reply (called outside the session lock)."""
        if self.config.llm_url:
            api_key = os.environ.get(self.config.llm_api_key_env)
            phrased = llm_reply(self.config, message, result.reply, result.items, api_key)
            if phrased:
                result.reply, result.reply_source = phrased, "llm"
        return result

    def _dense(self, ids: Sequence[str]) -> list[int]:
        return [i for i in (self.catalogue.index(x) for x in ids) if i is not None]

    def request(self, state: DialogueState, exclude: Sequence[str] = ()) -> RankRequest:
        """The ranking request a state implies (public for tests and diagnostics)."""
        d = self._dense
        history, liked, pos = d(state.history), d(state.liked), d(state.positive_refs)
        neg = list(dict.fromkeys(d(state.disliked) + d(state.negative_refs)))
        model_history = history + [i for i in liked + pos if i not in history]
        banned = set(d(state.rejected_items)) | set(neg) | set(pos) | set(d(exclude))
        if self.config.exclude_session_items:
            banned |= set(history) | set(liked)
        return RankRequest(
            model_history=model_history,
            negative_history=neg,
            positive_refs=list(dict.fromkeys(liked + pos)),
            negative_refs=neg,
            query=self._query(state),
            accepted=list(state.accepted_categories),
            rejected=list(state.rejected_categories),
            year_min=state.year_min,
            year_max=state.year_max,
            tone_weights=self.parser.tone_weights(state.tone),
            banned=banned,
            shown_before=set(d(state.shown_before)) - banned,
        )

    def _answer(self, state: DialogueState, k: int, exclude: Sequence[str] = ()) -> list[ChatItem]:
        req = self.request(state, exclude)
        ranked = rank(self.catalogue, self.predictor.model, req, self.config, k)
        return self._explain(state, ranked)

    def reason_context(self, state: DialogueState) -> ReasonContext:
        """The session facts reasons may cite (public for tests and diagnostics)."""
        d = self._dense
        tone = self.parser.tone_weights(state.tone)
        liked = d(state.liked)
        return ReasonContext(
            accepted=list(state.accepted_categories),
            year_min=state.year_min,
            year_max=state.year_max,
            liked=liked,
            references=d(state.positive_refs),
            history=[i for i in d(state.history) if i not in set(liked)],
            query_terms=query_terms(state.texts[-self.config.max_query_turns :]),
            tone_categories=[c for c, w in sorted(tone.items(), key=lambda kv: -kv[1]) if w > 0],
            tone=state.tone,
        )

    def _explain(self, state: DialogueState, ranked: list[Ranked]) -> list[ChatItem]:
        ctx = self.reason_context(state)
        out = []
        for r in ranked:
            reason, _ = explain(r.idx, self.catalogue, ctx, r.parts, self.config.reason_min_similarity)
            out.append(
                ChatItem(
                    self.catalogue.item_ids[r.idx], self.catalogue.label(r.idx), round(r.score, 6), reason
                )
            )
        return out

    def _query(self, state: DialogueState) -> np.ndarray | None:
        text = " ".join(state.texts[-self.config.max_query_turns :]).strip()
        if not text or self.config.w_text <= 0:
            return None
        with self._cache_lock:
            if text in self._query_cache:
                self._query_cache.move_to_end(text)
                return self._query_cache[text]
        from components.text_encoder import get_encoder

        vec = get_encoder().encode([text])[0]
        if vec.shape[0] != self.catalogue.embeddings.shape[1]:
            log.warning("query embedding dim %d != item embedding dim %d: text signal off",
                        vec.shape[0], self.catalogue.embeddings.shape[1])  # fmt: skip
            return None
        with self._cache_lock:
            self._query_cache[text] = vec
            while len(self._query_cache) > 1024:
                self._query_cache.popitem(last=False)
        return vec

    def _understood(self, parsed: ParsedTurn) -> dict[str, Any]:
        label = self.catalogue.label
        return {
            "reset": parsed.reset,
            "categories": parsed.categories,
            "rejected_categories": parsed.rejected_categories,
            "years": year_label(parsed.year_min, parsed.year_max) if parsed.year_set else None,
            "year_critique": parsed.year_critique,
            "tone": {1: "lighter", -1: "darker"}.get(parsed.tone),
            "like": [label(i) for i in parsed.positive_refs],
            "unlike": [label(i) for i in parsed.negative_refs],
            "rejected_items": [label(i) for i in parsed.rejected_items],
            "unresolved_titles": parsed.unresolved_titles,
            "text": parsed.text,
        }

    def _reply(self, state: DialogueState, parsed: ParsedTurn, items: list[ChatItem], k: int) -> str:
        return rule_reply(state, parsed, [i.title for i in items], k, self.catalogue)


def _check_message(message: object) -> str:
    if not isinstance(message, str):
        raise ValueError(f"message must be a string, got {type(message).__name__}")
    return message.strip()[:MAX_MESSAGE_CHARS]


def _polarity(event: str, value: float | None) -> str:
    if event in NEGATIVE_EVENTS:
        return "negative"
    if event in POSITIVE_EVENTS:
        return "positive"
    if event == "rating":
        if value is None or not np.isfinite(float(value)):
            raise ValueError("a 'rating' event needs a numeric value (e.g. 1-5)")
        return "positive" if float(value) >= 4 else "negative" if float(value) <= 2 else "neutral"
    return "neutral"


def _append_unique(target: list[str], item: str) -> None:
    if item not in target:
        target.append(item)


def _remove(item: str, *lists: list[str]) -> None:
    for lst in lists:
        while item in lst:
            lst.remove(item)
