"""Conversational recommendation core: parse a message, keep a dialogue state, rank, explain.

Modules, one job each: ``config`` (ConversationConfig), ``catalogue`` (per-item view + title index),
``lexicon`` (words the parser knows), ``parser`` (message -> constraints), ``state`` (dialogue state,
transitions, session stores), ``ranker`` (fusion, filters, MMR), ``reasons`` (grounded one-liners),
``phrasing`` (reply sentence, optional LLM), ``engine`` (ConversationEngine, the API the service calls).

Importing this package is cheap: the engine (which imports the model registry) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.dialogue.config import ConversationConfig

if TYPE_CHECKING:  # re-exported lazily through __getattr__
    from components.dialogue.engine import ChatItem, ChatResult, ConversationEngine  # noqa: F401
    from components.dialogue.state import (  # noqa: F401
        DialogueState,
        InMemorySessionStore,
        RedisSessionStore,
        SessionStore,
        make_session_store,
    )

_LAZY = {
    "ChatItem": "components.dialogue.engine",
    "ChatResult": "components.dialogue.engine",
    "ConversationEngine": "components.dialogue.engine",
    "DialogueState": "components.dialogue.state",
    "InMemorySessionStore": "components.dialogue.state",
    "RedisSessionStore": "components.dialogue.state",
    "SessionStore": "components.dialogue.state",
    "make_session_store": "components.dialogue.state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'components.dialogue' has no attribute {name!r}")


__all__ = ["ConversationConfig", *sorted(_LAZY)]
