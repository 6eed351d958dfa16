"""Conversational recommendation core: understand a message, keep a dialogue state, rank, explain.

Modules, one job each: ``config`` (ConversationConfig); ``index`` (the catalogue index built at packaging:
facets, phrases, embeddings, BM25 via ``lexical``, titles via ``linker``) and ``packaging`` (writing it into a
bundle); ``text``, ``grammar``, ``ranges``, ``language`` (words, English cues, years/numbers, language);
``query`` (the typed Query, the contract between understanding and ranking); ``planner`` (the built-in
planner) and ``llm`` (an OpenAI-compatible planner and grounded replies); ``state`` and ``stores`` (dialogue
state and where it lives); ``ranker`` (signals, filters, relaxation, MMR); ``reasons`` and ``reply``
(grounded one-liners and the reply); ``engine`` (ConversationEngine and ``load_engine``); ``evaluation``
(Recall@K on real dialogues).

Importing this package is cheap: the engine (which imports the model registry) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.dialogue.config import ConversationConfig

if TYPE_CHECKING:  # re-exported lazily through __getattr__
    from components.dialogue.engine import ChatItem, ChatResult, ConversationEngine, load_engine  # noqa: F401
    from components.dialogue.state import DialogueState  # noqa: F401
    from components.dialogue.stores import (  # noqa: F401
        InMemorySessionStore,
        RedisSessionStore,
        SessionStore,
        SqliteSessionStore,
        make_session_store,
    )

_LAZY = {
    "ChatItem": "components.dialogue.engine",
    "ChatResult": "components.dialogue.engine",
    "ConversationEngine": "components.dialogue.engine",
    "load_engine": "components.dialogue.engine",
    "DialogueState": "components.dialogue.state",
    "InMemorySessionStore": "components.dialogue.stores",
    "RedisSessionStore": "components.dialogue.stores",
    "SqliteSessionStore": "components.dialogue.stores",
    "SessionStore": "components.dialogue.stores",
    "make_session_store": "components.dialogue.stores",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'components.dialogue' has no attribute {name!r}")


__all__ = ["ConversationConfig", *sorted(_LAZY)]
