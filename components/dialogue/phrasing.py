"""The reply sentence: rule-based from the dialogue state, optionally re-phrased by an LLM.

The LLM (any OpenAI-compatible ``/chat/completions`` endpoint) only re-words the rule reply and the list it
is given; on any error or timeout the rule reply is used, so the LLM is never required.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from components.dialogue.catalogue import Catalogue
from components.dialogue.config import ConversationConfig
from components.dialogue.parser import ParsedTurn
from components.dialogue.state import DialogueState, year_label

if TYPE_CHECKING:
    from components.dialogue.engine import ChatItem

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You phrase the replies of a film recommender. In at most two short sentences, say what you understood "
    "and introduce the list. Mention only titles and facts given to you; never invent any."
)


def _join(names: Sequence[str], word: str = "and") -> str:
    names = list(names)
    if not names:
        return ""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {word} " + names[-1]


def describe(state: DialogueState, catalogue: Catalogue) -> str:
    """The standing constraints as a phrase: 'Comedy and Sci-Fi picks released in the 1990s, like X'."""
    label = year_label(state.year_min, state.year_max)
    parts = [f"{_join(state.accepted_categories)} picks" if state.accepted_categories else "picks"]
    if label:
        parts.append("released " + (f"in {label}" if label.startswith("the ") or label.isdigit() else label))
    refs = [
        catalogue.label(i) for i in (catalogue.index(x) for x in state.positive_refs[-2:]) if i is not None
    ]
    if refs:
        parts.append("like " + _join(refs))
    if state.tone:
        parts.append("on the lighter side" if state.tone > 0 else "on the darker side")
    avoid = []
    if state.rejected_categories:
        avoid.append("no " + _join(state.rejected_categories, "or"))
    negs = [
        catalogue.label(i) for i in (catalogue.index(x) for x in state.negative_refs[-2:]) if i is not None
    ]
    if negs:
        avoid.append("nothing like " + _join(negs, "or"))
    text = " ".join(parts)
    return text + (", with " + " and ".join(avoid) if avoid else "")


def rule_reply(
    state: DialogueState, parsed: ParsedTurn, titles: Sequence[str], k: int, catalogue: Catalogue
) -> str:
    """A short sentence: what changed this turn, then what the list is."""
    lead: list[str] = []
    if parsed.reset:
        lead.append("Starting over.")
    if parsed.year_critique:
        lead.append("Okay, more recent ones." if parsed.year_critique == "newer" else "Okay, older ones.")
    if parsed.tone:
        lead.append("Okay, something lighter." if parsed.tone > 0 else "Okay, something darker.")
    dropped = [catalogue.label(i) for i in parsed.rejected_items]
    if dropped:
        lead.append(f"Dropped {_join(dropped)}.")
    for t in parsed.unresolved_titles:
        lead.append(f"I couldn't find '{t}' in the catalogue.")
    constraints = describe(state, catalogue)
    n = len(titles)
    if n == 0:
        main = f"Nothing in the catalogue fits all of that ({constraints}); try dropping a constraint."
    elif not _has_constraints(state):
        main = f"Here are {n} popular picks to start; tell me what you are in the mood for."
    elif n < k:
        main = f"Only {n} {constraints} fit; here they are."
    else:
        main = f"Here are {n} {constraints}."
    if n and not state.accepted_categories and state.texts and _only_text(state):
        main = main[:-1] + f", matching '{state.texts[-1]}'."
    return " ".join([*lead, main])


def _has_constraints(state: DialogueState) -> bool:
    return state.has_constraints


def _only_text(state: DialogueState) -> bool:
    return not (state.year_min or state.year_max or state.positive_refs or state.rejected_categories)


def llm_reply(
    cfg: ConversationConfig, message: str, rule_text: str, items: Sequence[ChatItem], api_key: str | None
) -> str | None:
    """Re-phrase ``rule_text`` with the configured LLM; None on any failure (the rule reply is kept)."""
    if not cfg.llm_url:
        return None
    try:
        import httpx

        listing = "\n".join(f"{n + 1}. {it.title}: {it.reason}" for n, it in enumerate(items[:10]))
        body: dict[str, Any] = {
            "model": cfg.llm_model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"User said: {message}\nSummary: {rule_text}\nList:\n{listing}"},
            ],
            "max_tokens": 120,
            "temperature": 0.3,
        }
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        resp = httpx.post(
            cfg.llm_url.rstrip("/") + "/chat/completions",
            json=body,
            headers=headers,
            timeout=cfg.llm_timeout_s,
        )
        resp.raise_for_status()
        text = str(resp.json()["choices"][0]["message"]["content"]).strip()
        return text[:600] or None
    except Exception as exc:  # noqa: BLE001 - any failure falls back to the rule reply
        log.info("LLM phrasing failed (%s: %s); using the rule-based reply", type(exc).__name__, exc)
        return None
