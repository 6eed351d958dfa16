"""ConversationEngine: understand a message (a planner -> ``Query``), update the session's state, rank,
explain, reply. ``load_engine(bundle)`` is the one way to build it: the service, ``sessionflow chat``, the
pipeline's evaluations, the simulator and the benchmarks all call it.

The service calls ``chat`` / ``chat_stateless`` / ``feedback`` / ``recommend`` / ``reset``. One lock per
session (striped) keeps concurrent calls on a session consistent; the LLM (when configured) is called
outside the lock.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from components.dialogue import grammar as g
from components.dialogue.config import ConversationConfig
from components.dialogue.index import POPULARITY, RATING, CatalogueIndex
from components.dialogue.planner import BuiltinPlanner, PlanContext, Planner
from components.dialogue.query import ASKED_OPS, Constraint, Query, avoided_phrases, said_words
from components.dialogue.ranker import RankRequest, RankResult, rank
from components.dialogue.reasons import ReasonContext, explain, query_terms
from components.dialogue.reply import compose, describe_item
from components.dialogue.state import (
    MAX_TEXTS,
    DialogueState,
    apply_query,
    record_feedback,
    record_shown,
)
from components.dialogue.stores import SessionStore, make_session_store
from components.dialogue.text import fold, informativeness, tokenize
from components.schema import EVENTS, STRONG_POSITIVE_EVENTS, event_polarity

if TYPE_CHECKING:
    from components.bundle import Predictor

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000
_N_LOCKS = 64
_SILENT = ("other_language", "not_understood", "off_topic")
_WH_START = re.compile(r"^\s*(?:what|who|whom|whose|how|when|where|why|which|tell me)\b", re.IGNORECASE)
MAX_SUGGESTED = 3  # an assistant turn naming more items than this showed a list, it did not suggest them
PREPARE_AFTER_IDLE_S = 0.005  # a reply is prepared once no request has been served for this long
PREPARE_WAIT_S = 10.0  # ... else not at all (the next turn encodes it)


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
    reply_source: str = "template"  # "template" | "llm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.reply,
            "items": [i._asdict() for i in self.items],
            "state": self.state,
            "understood": self.understood,
            "reply_source": self.reply_source,
        }


@dataclass
class _Preparing:
    """A reply waiting for idle time (then parsed and encoded), or being prepared (``started``)."""

    future: Future[None] | None = None
    started: bool = False
    dropped: bool = False  # a request needed it first and does it itself


class ConversationEngine:
    """Multi-turn conversational recommendation over one Predictor's catalogue index."""

    def __init__(
        self,
        predictor: Predictor,
        index: CatalogueIndex,
        config: ConversationConfig,
        store: SessionStore | None = None,
        planner: Planner | None = None,
        retired: np.ndarray | None = None,
    ) -> None:
        if list(index.item_ids) != [str(i) for i in predictor.vocab.item_ids]:
            raise ValueError("the catalogue index was built for another model: its item ids differ")
        if retired is not None and retired.shape != (len(index),):
            raise ValueError(f"retired mask has shape {retired.shape}, the catalogue {len(index)} items")
        self.predictor = predictor
        self.index = index
        self.retired = retired if retired is not None and retired.any() else None  # (N,) bool
        self.config = config
        self.store = store or make_session_store(
            config.redis_url, config.session_ttl_seconds, config.max_sessions, config.session_db
        )
        self.builtin = BuiltinPlanner(index)
        self.planner: Planner = planner or self.builtin
        self._locks = [threading.Lock() for _ in range(_N_LOCKS)]
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vec_lock = threading.Lock()
        self._parsed: OrderedDict[str, tuple[str, list[int]]] = OrderedDict()  # assistant texts, parsed
        self._preparing: dict[str, _Preparing] = {}  # replies to parse and encode in idle time
        self._worker: ThreadPoolExecutor | None = None  # prepare_reply
        self._activity = threading.Condition(self._vec_lock)  # requests being served, for prepare_reply
        self._busy = 0
        self._last_served = 0.0
        self.prepare_after_idle_s = PREPARE_AFTER_IDLE_S
        self.index_source = "given"  # load_engine: "packaged" | "built at start"

    # -- public API ---------------------------------------------------------------------------------------
    def chat(self, session_id: str, message: str, k: int | None = None) -> ChatResult:
        """One user turn in a stored session. Without ``k``, as many items as the message asked for ("give
        me 3 thrillers"), else the default; a caller's ``k`` wins."""
        with self._serving():
            return self._chat(session_id, message, k)

    def _chat(self, session_id: str, message: str, k: int | None) -> ChatResult:
        asked_k = k
        self._k(k)  # a bad k is refused before any work
        message = _check_message(message)
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            context = self._context(state)
        query = self._understand(message, context)  # an LLM call happens outside the lock
        k = self._k(asked_k if asked_k is not None else query.count)
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            result = self._turn(state, query, k, said=message)
            self.store.put(state)
        answer = self._phrase(result, message)
        said = assistant_text(answer)
        with self._lock(session_id):  # what the assistant said counts next turn, as in a stateless history
            state = self.store.get(session_id) or DialogueState(session_id)
            state.assistant = [*state.assistant, said][-3:]
            self.store.put(state)
        if self.config.w_assistant > 0 and self.config.prepare_reply:
            self.prepare_reply(said)
        return answer

    def chat_stateless(self, messages: Sequence[dict[str, str]], k: int | None = None) -> ChatResult:
        """Answer the last turn of a whole conversation (``role``/``content`` dicts, oldest first), replayed
        into a fresh state. Every turn counts: user turns are understood in order; titles an assistant turn
        named are what the user was shown (never suggested again; "I've seen it" refers to them), and a
        question it asked makes a bare answer on-topic. Only the end is ranked: a stateless client showed the
        user the assistant's words, not lists this engine would have made on earlier turns. Without ``k``,
        as many items as the last turn asked for ("give me 3 thrillers"), else the default."""
        self._k(k)
        with self._serving():
            state, last_query, last_user = self.replay(messages)
            k = self._k(k if k is not None else last_query.count)
            return self._phrase(self._turn(state, last_query, k, applied=True), last_user)

    def replay(self, messages: Sequence[dict[str, str]]) -> tuple[DialogueState, Query, str]:
        """The state a conversation leads to, the last user turn's query and text (see chat_stateless)."""
        state = DialogueState("stateless")
        context = PlanContext()
        last_query = Query(intent="chit_chat", planner="none")
        last_user = ""
        previous = None
        for n, msg in enumerate(messages):
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise ValueError(f"messages[{n}] must be a dict with 'role' and 'content', got {msg!r}")
            content = _check_message(msg["content"])
            if msg["role"] == "assistant":
                context = self._assistant_turn(state, content, continues=previous == "assistant")
            elif msg["role"] == "user":
                last_user = content
                last_query = self._understand(content, context)
                apply_query(state, last_query, self.index, content)
                context = PlanContext(shown=self._dense(state.shown))
            else:
                raise ValueError(f"messages[{n}].role must be 'user' or 'assistant', got {msg['role']!r}")
            previous = msg["role"]
        return state, last_query, last_user

    def feedback(
        self, session_id: str, item_id: str, event: str, value: float | None = None
    ) -> dict[str, Any]:
        """Record a reaction to an item; the next answer for this session reflects it immediately."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {list(EVENTS)}")
        idx = self.index.index(str(item_id))
        if idx is None:
            raise ValueError(
                f"unknown item id {item_id!r}: not in the model's catalogue of {len(self.index)} items"
            )
        polarity = event_polarity(event, value)
        item_id = self.index.item_ids[idx]
        strong = event in STRONG_POSITIVE_EVENTS or event == "rating"
        with self._serving(), self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            record_feedback(state, item_id, polarity, strong)
            answer: dict[str, Any] = {
                "session_id": session_id, "item_id": item_id, "event": event, "value": value,
                "polarity": polarity,
            }  # fmt: skip
            if self.config.refresh_on_feedback:
                items = self._answer(state, len(state.shown) or self.config.default_k)[0]
                record_shown(state, [i.item_id for i in items])
                answer["items"] = [i._asdict() for i in items]
            self.store.put(state)
            answer["state"] = state.to_dict()
        return answer

    def recommend(
        self, session_id: str | None, items: list[str] | None = None, k: int | None = None,
        exclude: Sequence[str] | None = None,
    ) -> list[ChatItem]:  # fmt: skip
        """The /recommend path: ``items`` (oldest first) plus this session's feedback and constraints."""
        k = self._k(k)
        stored = self.store.get(session_id) if session_id else None
        state = copy.deepcopy(stored) if stored else DialogueState(session_id or "anonymous")
        given = [str(i) for i in (items or []) if self.index.index(str(i)) is not None]
        state.history = given + [i for i in state.history if i not in given]
        with self._serving():
            return self._answer(state, k, exclude=exclude or ())[0]

    def reset(self, session_id: str) -> None:
        with self._lock(session_id):
            self.store.delete(session_id)

    def load_history(self, session_id: str, item_ids: Sequence[str]) -> list[str]:
        """Set the session's interaction history (oldest first); returns the unknown ids left out."""
        known, unknown = self.split_known(item_ids)
        with self._lock(session_id):
            state = self.store.get(session_id) or DialogueState(session_id)
            state.history = known
            self.store.put(state)
        return unknown

    def split_known(self, item_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        known = [str(i) for i in item_ids if self.index.index(str(i)) is not None]
        return known, [str(i) for i in item_ids if self.index.index(str(i)) is None]

    def prepare_reply(self, text: str) -> None:
        """Parse and encode an assistant reply in a background thread once the engine is idle (no request
        served for ``PREPARE_AFTER_IDLE_S``), so that the next turn (and feedback) of its session finds it
        ready while the user reads: only the user's words are then encoded on its path. A request that needs
        the reply before that takes it back and encodes it with its own texts in one pass (no extra work
        when requests come back to back); one that needs it while it is being prepared waits for it."""
        with self._vec_lock:
            if text in self._preparing or text in self._parsed:
                return
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessionflow-reply")
            job = _Preparing()
            self._preparing[text] = job
            job.future = self._worker.submit(self._prepare, text, job)

    def _prepare(self, text: str, job: _Preparing) -> None:
        give_up = time.monotonic() + PREPARE_WAIT_S
        with self._activity:
            while not job.dropped:
                now = time.monotonic()
                idle = now - self._last_served
                if self._busy == 0 and idle >= self.prepare_after_idle_s:
                    job.started = True
                    break
                if now > give_up:  # never idle: the turn that needs it encodes it
                    job.dropped = True
                    if self._preparing.get(text) is job:
                        del self._preparing[text]
                    break
                self._activity.wait(min(0.1, self.prepare_after_idle_s - idle if not self._busy else 0.1))
        if not job.started:
            return
        try:
            rest, _ = self._assistant_parts([text])[0]
            self._prefetch([rest])
        except Exception:  # noqa: BLE001 - the turn that needs it parses and encodes it itself
            log.exception("preparing a reply failed; the next turn does it")
        finally:
            with self._vec_lock:
                if self._preparing.get(text) is job:
                    del self._preparing[text]

    def _claim(self, replies: Sequence[str]) -> dict[str, Future[None]]:
        """Replies being prepared now (to wait for); those still waiting for idle time are taken back."""
        started = {}
        with self._activity:
            for text in replies:
                job = self._preparing.get(text)
                if job is None:
                    continue
                if job.started and job.future is not None:
                    started[text] = job.future
                else:
                    job.dropped = True
                    del self._preparing[text]
                    self._activity.notify_all()
        return started

    @contextmanager
    def _serving(self) -> Iterator[None]:
        """Marks a request being served: replies are prepared only when none is."""
        with self._activity:
            self._busy += 1
        try:
            yield
        finally:
            with self._activity:
                self._busy -= 1
                self._last_served = time.monotonic()
                self._activity.notify_all()

    def forget_texts(self) -> None:
        """Empty the caches of text vectors, parsed replies and item similarities, as in a fresh process
        (benchmarks): replies waiting for idle time are dropped, those being prepared waited for."""
        with self._vec_lock:
            texts = list(self._preparing)
        for future in self._claim(texts).values():
            future.exception()  # waits; a failure was logged
        with self._vec_lock:
            self._vectors.clear()
            self._parsed.clear()
        self.index.forget_cosines()

    def warm_up(self) -> None:
        """Load what the first turn would load (sentence encoder, word frequencies, language and sentiment
        models), so the first user does not wait for it."""
        self.builtin.plan("something funny and recent, like the first one, not too dark")
        if self.config.w_dense > 0:
            self._vector("something funny and recent")

    def with_catalogue(
        self, predictor: Predictor, index: CatalogueIndex, retired: np.ndarray | None
    ) -> ConversationEngine:
        """This engine over a changed catalogue (items added or retired while serving): same settings,
        session store (conversations carry on) and planner kind; cached query vectors are kept (the encoder
        is the same), texts parsed against the old titles are not."""
        engine = ConversationEngine(predictor, index, self.config, self.store, retired=retired)
        engine.index_source = self.index_source
        with self._vec_lock:
            engine._vectors = OrderedDict(self._vectors)
        if index is self.index:
            engine._parsed = OrderedDict(self._parsed)
        _attach_planner(engine)
        return engine

    @property
    def n_active(self) -> int:
        """Items that can be recommended (retired ones left out)."""
        return len(self.index) - (int(self.retired.sum()) if self.retired is not None else 0)

    # -- one turn -------------------------------------------------------------------------------------------
    def _turn(
        self, state: DialogueState, query: Query, k: int, applied: bool = False, said: str = ""
    ) -> ChatResult:
        if not applied:
            apply_query(state, query, self.index, said)
        silent = query.intent in _SILENT and not state.has_preferences
        items, ranked = ([], None) if silent else self._answer(state, k)
        if query.intent not in _SILENT or state.has_preferences:
            record_shown(state, [i.item_id for i in items])
        about = self.index.index(state.focus) if query.intent == "ask_about" and state.focus else None
        unsupported = self._unsupported(query)
        unknown = self._unknown_avoid(query)
        weak = self._weak_match(state, query) if items else None
        reply = compose(query, state, self.index, [i.title for i in items], k,
                        ranked.relaxed if ranked else (), unsupported, about, unknown, weak,
                        self._constraints(state))  # fmt: skip
        understood = query.model_dump(exclude_defaults=True) | {
            "intent": query.intent,
            "planner": query.planner,
        }
        if ranked and ranked.relaxed:
            understood["relaxed"] = [c.model_dump(exclude_defaults=True) for c in ranked.relaxed]
        return ChatResult(reply, items, state.to_dict(), understood, "template")

    def _assistant_turn(self, state: DialogueState, content: str, continues: bool = False) -> PlanContext:
        """An assistant message of a stateless history: what it named was shown to the user. Consecutive
        assistant messages (``continues``) are one turn: a person writes one reply in several messages
        ("It's also Wes Anderson." "It has Bill Murray."), and what the assistant said is read by turns."""
        toks = tokenize(content)
        links, unresolved = self.index.linker.link(toks, [True] * len(toks))
        named = list(dict.fromkeys(self.index.item_ids[lk.item] for lk in links))
        if named:
            record_shown(state, named)
        if unresolved:  # "Toy Story 4" that the catalogue lacks: its words still find the others
            state.title_words = [*state.title_words, *(u.text for u in unresolved)][-MAX_TEXTS:]
        if 0 < len(named) <= MAX_SUGGESTED:  # a recommendation in conversation, not a list of results
            state.suggested = list(dict.fromkeys([*state.suggested, *named]))[-50:]
        if continues and state.assistant:
            state.assistant = [*state.assistant[:-1], f"{state.assistant[-1]} {content}"]
        else:
            state.assistant = [*state.assistant, content][-3:]
        return PlanContext(shown=self._dense(state.shown), suggested=self._dense(named),
                           assistant_asked="?" in content, question=g.last_question(content))  # fmt: skip

    def _context(self, state: DialogueState) -> PlanContext:
        question = g.last_question(state.assistant[-1]) if state.assistant else ""
        return PlanContext(shown=self._dense(state.shown), assistant_asked=bool(question), question=question)

    def _understand(self, message: str, context: PlanContext) -> Query:
        """The planner's query, with one check it cannot make without the encoder: words it does not know
        ("safety goggles" in a shop whose texts say "protective eyewear") that an item's text matches closely
        (cosine >= ``weak_match_cosine``) are a request, not off-topic. Questions ("what's the weather in
        Paris?") and single words stay as the planner read them."""
        query = self.planner.plan(message, context)
        threshold = self.config.weak_match_cosine
        if (
            query.intent != "off_topic" or not threshold or "?" in message
            or len(query.soft.split()) < 2 or _WH_START.match(message)
        ):  # fmt: skip
            return query
        vector = self._vector(message)
        if vector is None:
            return query
        cos = self.index.embeddings @ vector
        if self.retired is not None:
            cos = np.where(self.retired, -1.0, cos)
        if float(cos.max()) >= threshold:
            query.intent = "recommend"
        return query

    def _weak_match(self, state: DialogueState, query: Query) -> str | None:
        """This turn's free words when they are all the list follows and no item's text comes close to what
        was said ("running shoes" in a lab-supply shop): the reply then says these are only the nearest."""
        threshold = self.config.weak_match_cosine
        if not threshold or not query.soft or query.intent in _SILENT:
            return None
        if not _text_only(state):
            return None
        vector = self._vector(self._dense_query(state))  # the dense signal's own query: cached, encoded once
        if vector is None:
            return None
        cos = self.index.embeddings @ vector
        if self.retired is not None:
            cos = np.where(self.retired, -1.0, cos)
        if float(cos.max()) < threshold:
            return query.soft
        head = self._head(state)
        if head.count(" ") == 1 and not self.index.lexical.mentions_all(head):
            # in a shop, what is asked for is the request's head noun phrase: "safety glasses" where no
            # product text has both words is not matched by glass bottles and safety goggles
            return head
        return None

    def _head(self, state: DialogueState) -> str:
        """In a shop, the last two words the catalogue knows of the latest message's first noun phrase
        ("test tubes with caps" -> "test tubes"), or of an earlier one's when the latest begins with a
        pronoun ("one with a digital display"); '' when no text knows its noun, and for films and books,
        whose titles are names."""
        if not self.index.spec.titles_describe_items or not state.said:
            return ""
        for said in reversed(state.said):  # "one with a digital display": the head of the request before
            head = g.head_words(said)
            if head is None:
                continue
            if not head or not self.index.lexical.has(head[-1]):
                return ""  # "safety goggles" where no text says goggles: 'safety' alone names nothing
            return " ".join([w for w in head if self.index.lexical.has(w)][-2:])
        return ""

    def _unknown_avoid(self, query: Query) -> list[str]:
        """What the message asked to leave out that no item's text mentions ("nothing with Tom Cruise" on a
        catalogue without cast): it cannot be left out, and the reply says so."""
        if query.intent in _SILENT:
            return []
        constrained = said_words(query.constraints)
        ix, out = self.index, []
        for phrase in avoided_phrases([query.avoid]):  # each on its own: "not about ghosts or demons"
            text = " ".join(w for w in fold(phrase).split() if w not in g.STOPWORDS and w not in constrained)
            if text and not ix.lexical.mentions_all(text) and not ix.title_lexical.mentions_all(text):
                out.append(text)
        return out

    def _unsupported(self, query: Query) -> list[str]:
        """Facets the message asked about that this catalogue does not have ('price' on films)."""
        out = list(query.unsupported)
        said = fold(" ".join([query.soft, query.avoid])).split()
        priced = any(w.startswith(g.MONEY_WORDS) for w in said) or query.critique in ("cheaper", "pricier")
        if not self.builtin._number_facets and priced and "prices" not in out:
            out.append("prices")  # "cheaper ones" where nothing has a price: said so, and the list stays
        return out

    # -- ranking --------------------------------------------------------------------------------------------
    def request(self, state: DialogueState, exclude: Sequence[str] = ()) -> RankRequest:
        """The ranking request a state implies (public for tests and diagnostics)."""
        d = self._dense
        history, liked = d(state.history), d(state.liked)
        banned = set(d(state.seen)) | set(d(state.rejected)) | set(d(state.disliked)) | set(liked)
        banned |= set(d(state.mentioned)) | set(d(state.suggested)) | set(d(exclude))
        if self.config.exclude_session_items:
            banned |= set(history)
        turns = self.config.text_turns
        soft = state.soft[-turns:]
        mood = self.index.moods.get(state.mood or "", {})
        use_assistant = bool(state.assistant) and self.config.w_assistant > 0
        replies = state.assistant[-2:] if use_assistant else []
        preparing = self._claim(replies)  # replies prepared in idle time (prepare_reply) are usually ready
        ready = [t for t in replies if t not in preparing]
        text = self._dense_query(state)
        # one encoder call for the turn: the recent messages as typed (the fitted weights expect them joined)
        # and the assistant's words not encoded yet (cached per reply)
        avoided = avoided_phrases(state.avoid[-turns:]) if self.config.avoid_dense_top > 0 else []
        self._prefetch([text, *avoided, *(rest for rest, _ in self._assistant_parts(ready))])
        for future in preparing.values():  # a reply being prepared: wait for it (it started first)
            future.exception()
        said = self._assistant_parts(replies)
        mentioned = list(dict.fromkeys(d(state.mentioned) + d(state.suggested)))
        context = liked
        if self.config.mentions_in_history:  # what the conversation is about, unless turned down
            turned_down = set(d(state.disliked)) | set(d(state.rejected))
            talked = [*d(state.seen), *mentioned]
            context = list(dict.fromkeys(liked + [i for i in talked if i not in turned_down]))
        return RankRequest(
            history=history + [i for i in context if i not in history],
            liked=liked,
            similar=d(state.similar),
            mentioned=mentioned,
            disliked=d(state.disliked),
            banned=banned,
            shown_before=set(d(state.shown_before)) - banned,
            constraints=self._constraints(state),
            query=self._vector(text) if text else None,
            terms=_weighted_terms(soft),
            avoid_terms=_weighted_terms(state.avoid[-turns:]),
            avoid_queries=tuple(self._vector(p) for p in avoided),
            title_terms=_weighted_terms(state.title_words[-turns:]),
            title_phrases=tuple(dict.fromkeys(state.title_words[-turns:])),
            said_words={w for text in state.said[-turns:] for w in fold(text).split()},
            assistant=self._assistant_vector(said) if use_assistant else None,
            # the words beside the titles it named: 'similar to Lion' must not find The Lion King by its title
            assistant_terms=_weighted_terms([rest for rest, _ in said]),
            mood=mood,
            retired=self.retired,
            text_only=_text_only(state),
            head=self._head(state),
        )

    def _dense_query(self, state: DialogueState) -> str:
        """The text the dense signal encodes: the recent messages as typed (or the understood free words),
        joined; '' when the dense signal is off."""
        if self.config.w_dense <= 0:
            return ""
        turns = self.config.text_turns
        texts = state.soft[-turns:] if self.config.dense_text == "soft" else state.said[-turns:]
        return " ".join(texts)

    def _constraints(self, state: DialogueState) -> list[Constraint]:
        """Every exclusion ("not horror", "not from the 90s": what the user ruled out stays out); what was
        asked for -- category values and year or number ranges -- filters for the last
        ``hard_turns`` user turns, then becomes ``prefer``: it still boosts through the facet signal but no
        longer filters (people move on: "an 80s comedy" early in a chat does not rule out what they ask
        for six turns later)."""
        fresh = state.typed_constraints(since_turn=state.turn - self.config.hard_turns + 1)
        return [
            c if c.op not in ASKED_OPS or c in fresh else c.model_copy(update={"op": "prefer"})
            for c in state.typed_constraints()
        ]

    def _answer(
        self, state: DialogueState, k: int, exclude: Sequence[str] = ()
    ) -> tuple[list[ChatItem], RankResult]:
        ranked = rank(self.index, self.predictor.model, self.request(state, exclude), self.config, k)
        ctx = self.reason_context(state)
        items = []
        for r in ranked.items:
            reason, _ = explain(r.idx, self.index, ctx, r.parts, self.config.reason_min_similarity)
            items.append(
                ChatItem(self.index.item_ids[r.idx], self.index.label(r.idx), round(r.score, 6), reason)
            )
        return items, ranked

    def reason_context(self, state: DialogueState) -> ReasonContext:
        d = self._dense
        mood = self.index.moods.get(state.mood or "", {})
        return ReasonContext(
            constraints=state.typed_constraints(),
            liked=d(state.liked),
            history=[i for i in d(state.history) if i not in set(d(state.liked))],
            terms=query_terms(state.soft[-self.config.text_turns :]),
            mood=state.mood,
            mood_values=[fv for fv, w in sorted(mood.items(), key=lambda kv: -kv[1]) if w > 0],
        )

    def _phrase(self, result: ChatResult, message: str) -> ChatResult:
        """Let the configured LLM write the reply from the shown items' facts (checked; else the template)."""
        if self.config.llm_reply and self.config.llm_url and result.items:
            from components.dialogue.llm import grounded_reply

            api_key = os.environ.get(self.config.llm_api_key_env)
            facts = [describe_item(self.index.index(i.item_id) or 0, self.index) for i in result.items]
            text = grounded_reply(
                self.config, message, result.reply, result.items, facts, api_key, self.index
            )
            if text:
                result.reply, result.reply_source = text, "llm"
        return result

    # -- helpers --------------------------------------------------------------------------------------------
    def _k(self, k: int | None) -> int:
        k = self.config.default_k if k is None else int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return min(k, len(self.index))

    def _lock(self, session_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(session_id.encode()) % _N_LOCKS]

    def _dense(self, ids: Sequence[str]) -> list[int]:
        return [i for i in (self.index.index(x) for x in ids) if i is not None]

    def _assistant_parts(self, texts: Sequence[str]) -> list[tuple[str, list[int]]]:
        """Each assistant text as (its words without the titles it named, the items it named); parsed once
        per text (a reply is read again on each of the next turns)."""
        parts = []
        for text in texts:
            with self._vec_lock:
                known = self._parsed.get(text)
            if known is not None:
                parts.append(known)
                continue
            toks = tokenize(text)
            links, _ = self.index.linker.link(toks, [True] * len(toks))
            covered = {p for lk in links for p in range(lk.first, lk.last + 1)}
            rest = " ".join(t.text for i, t in enumerate(toks) if i not in covered and t.text[0].isalpha())
            parsed = (rest, sorted({lk.item for lk in links}))
            with self._vec_lock:
                self._parsed[text] = parsed
                while len(self._parsed) > 2048:
                    self._parsed.popitem(last=False)
            parts.append(parsed)
        return parts

    def _assistant_vector(self, parts: Sequence[tuple[str, list[int]]]) -> np.ndarray | None:
        """What the assistant said, as one unit vector: the titles it named by their item embeddings (no
        encoding), the rest of its words encoded (short and repetitive: "Here are 10 Comedy films", cached).
        The same for a stateless history and for this engine's own answers."""
        out = []
        for rest, named in parts:
            vecs = []
            words = self._vector(rest)
            if words is not None:
                vecs.append(words)
            if named:
                mean = self.index.embeddings[named].mean(axis=0)
                vecs.append(mean / max(float(np.linalg.norm(mean)), 1e-9))
            if vecs:
                v = np.mean(vecs, axis=0)
                out.append(v / max(float(np.linalg.norm(v)), 1e-9))
        if not out:
            return None
        v = np.mean(out, axis=0)
        return v / max(float(np.linalg.norm(v)), 1e-9)

    def _prefetch(self, texts: Sequence[str]) -> None:
        """Encode the texts not cached yet in one forward pass (a turn needs up to three)."""
        with self._vec_lock:
            missing = list(
                dict.fromkeys(t.strip() for t in texts if t.strip() and t.strip() not in self._vectors)
            )
        if not missing:
            return
        from components.text_encoder import get_encoder

        vecs = get_encoder().encode(missing)
        if vecs.shape[1] != self.index.embeddings.shape[1]:
            log.warning("query embedding dim %d != item embedding dim %d: text signal off",
                        vecs.shape[1], self.index.embeddings.shape[1])  # fmt: skip
            return
        with self._vec_lock:
            for text, vec in zip(missing, vecs, strict=True):
                self._vectors[text] = vec
            while len(self._vectors) > 2048:
                self._vectors.popitem(last=False)

    def _vector(self, text: str) -> np.ndarray | None:
        """The cached unit vector of ``text`` (encoded now when new); None for empty text."""
        text = text.strip()
        if not text:
            return None
        self._prefetch([text])
        with self._vec_lock:
            if text in self._vectors:
                self._vectors.move_to_end(text)
            return self._vectors.get(text)


def load_engine(
    bundle_dir: str | Path,
    config: ConversationConfig | None = None,
    store: SessionStore | None = None,
    index: CatalogueIndex | None = None,
) -> ConversationEngine:
    """The conversation engine of a bundle: its Predictor and its packaged catalogue index
    (``<bundle>/conversation/``, written by ``components.dialogue.packaging.write_index``). A bundle
    without an
    index gets one built now from its items table (slower: encodes the texts unless cached)."""
    from components.bundle import Predictor

    cfg = config or ConversationConfig()
    bundle_dir = Path(bundle_dir)
    predictor = Predictor.load(bundle_dir)
    source = "given" if index is not None else "packaged"
    if index is None:
        try:
            index = CatalogueIndex.load(bundle_dir)
        except FileNotFoundError:
            from components.dialogue.packaging import index_for_bundle

            log.warning("%s has no conversation index: building one now", bundle_dir)
            index = index_for_bundle(bundle_dir, predictor, cfg.embedding_cache_dir)
            source = "built at start"
    engine = ConversationEngine(predictor, index, cfg, store)
    engine.index_source = source
    _attach_planner(engine)
    engine.warm_up()
    return engine


def _attach_planner(engine: ConversationEngine) -> None:
    """The configured planner over the engine's index (the built-in one unless ``planner: llm``)."""
    if engine.config.planner == "llm":
        from components.dialogue.llm import LLMPlanner

        engine.planner = LLMPlanner(engine.config, engine.builtin, engine.index)


def assistant_text(answer: ChatResult) -> str:
    """An answer as the user saw it -- the reply and the titles listed -- which is what a stateless client
    sends back as the assistant's turn."""
    listing = "; ".join(i.title for i in answer.items)
    return f"{answer.reply} {listing}".strip()


def _text_only(state: DialogueState) -> bool:
    """Whether free words are all a list follows: no facet asked, no item named or liked, no mood. How the
    items were received ("a popular multimeter") orders what the words find and shapes nothing."""
    asked = [
        c
        for c in state.constraints
        if c["op"] not in ("is_not", "not_between") and c["facet"] not in (POPULARITY, RATING)
    ]  # fmt: skip  (exclusions shape nothing either)
    shaped = (asked, state.liked, state.similar, state.mentioned, state.history, state.mood)
    return bool(state.soft) and not any(shaped)


def _weighted_terms(texts: Sequence[str]) -> dict[str, float]:
    """word -> weight: informativeness, halved for each older turn."""
    out: dict[str, float] = {}
    for age, text in enumerate(reversed(list(texts))):
        for w in fold(text).split():
            if len(w) < 2 or w in g.STOPWORDS:
                continue
            out[w] = max(out.get(w, 0.0), informativeness(w) * 0.5**age)
    return out


def _check_message(message: object) -> str:
    if not isinstance(message, str):
        raise ValueError(f"message must be a string, got {type(message).__name__}")
    return message.strip()[:MAX_MESSAGE_CHARS]
