"""``sessionflow chat``: talk to the recommender from a terminal.

Two backends, one loop:

- ``--url URL``: a running service (``POST {url}/chat`` and ``{url}/feedback``, JSON in and out);
- ``--bundle DIR``: in process, the bundle's ``ConversationEngine`` (``components.dialogue.load_engine``: the
  same engine the service builds; a bundle without a packaged index gets one built, embeddings cached).

Each answer shows the reply, what the recommender understood so far, and a numbered list.

Inside the chat: plain text is a message; ``:like N`` / ``:dislike N`` react to item N of the last list;
``:reset`` starts over; ``:help``; ``:quit`` (or end of input) leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from components.dialogue.config import ConversationConfig

HELP = (
    "Say what you are looking for, in your own words; name things you liked; say what you don't want.\n"
    "Commands: :like N, :dislike N (N = position in the last list), :reset, :help, :quit"
)
FEEDBACK_COMMANDS = {":like": "like", ":dislike": "dislike"}


class ChatError(RuntimeError):
    """A problem the user can fix (unreachable service, bad bundle, bad arguments); shown without a trace."""


class ChatBackend(Protocol):
    """What the terminal loop needs from a conversation: answers as plain JSON-like dicts."""

    session_id: str

    def chat(self, message: str) -> dict[str, Any]: ...

    def feedback(self, item_id: str, event: str) -> dict[str, Any]: ...

    def reset(self) -> None: ...


def open_bundle(bundle_dir: Path, config: ConversationConfig | None, embedding_cache: Path | None):  # noqa: ANN201
    """``load_engine`` with the bundle's problems as ChatErrors (shown without a traceback)."""
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import load_engine

    cfg = config or ConversationConfig()
    if embedding_cache is not None and not cfg.embedding_cache_dir:
        cfg = cfg.model_copy(update={"embedding_cache_dir": str(embedding_cache)})
    try:
        return load_engine(Path(bundle_dir), cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise ChatError(str(exc)) from exc


class EngineBackend:
    """In-process conversation on a ConversationEngine."""

    def __init__(self, engine: Any, session_id: str, k: int) -> None:  # a ConversationEngine
        self.engine = engine
        self.session_id = session_id
        self.k = k

    def chat(self, message: str) -> dict[str, Any]:
        return self.engine.chat(self.session_id, message, self.k).to_dict()

    def feedback(self, item_id: str, event: str) -> dict[str, Any]:
        return self.engine.feedback(self.session_id, item_id, event)

    def reset(self) -> None:
        self.engine.reset(self.session_id)


class HttpBackend:
    """A running sessionflow service: ``POST /chat`` {session_id, message, k}, ``POST /feedback``
    {session_id, item_id, event}. ``:reset`` starts a fresh session id (works with any server)."""

    def __init__(
        self, url: str, session_id: str, k: int, client: httpx.Client | None = None, timeout: float = 30.0
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.session_id = session_id
        self.k = k
        self.client = client or httpx.Client(timeout=timeout)

    def _post(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            resp = self.client.post(f"{self.url}{route}", json=payload)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code == 404:
            raise ChatError(f"{self.url}{route} does not exist: is this a sessionflow service with /chat?")
        if resp.status_code >= 400:
            raise ValueError(f"the service answered {resp.status_code}: {_error_text(resp)}")
        body = resp.json()
        if not isinstance(body, dict):
            raise ValueError(f"unexpected answer from {route}: {body!r:.200}")
        return body

    def _unreachable(self, exc: Exception) -> ChatError:
        return ChatError(
            f"cannot reach the sessionflow service at {self.url} ({type(exc).__name__}: {exc}); "
            "start it with `sessionflow serve` or pass --bundle DIR to chat without a server"
        )

    def check(self) -> None:
        """Fail early, with what to do, when nothing answers at the URL (BentoML's ``/readyz``)."""
        import httpx

        try:
            resp = self.client.get(f"{self.url}/readyz")
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code >= 500:
            raise ChatError(f"the service at {self.url} is not ready (HTTP {resp.status_code}); try again")

    def chat(self, message: str) -> dict[str, Any]:
        return self._post("/chat", {"session_id": self.session_id, "message": message, "k": self.k})

    def feedback(self, item_id: str, event: str) -> dict[str, Any]:
        return self._post("/feedback", {"session_id": self.session_id, "item_id": item_id, "event": event})

    def reset(self) -> None:
        self.session_id = new_session_id()


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:300]


def new_session_id() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------------------------------------- loop


def show_answer(console: Console, answer: dict[str, Any]) -> list[tuple[str, str]]:
    """Print the reply and a numbered table; returns the shown (item id, title) pairs (positions 1..n)."""
    from rich.table import Table

    reply = answer.get("reply")
    if reply:
        console.print(f"[bold green]recommender:[/] {reply}")
    known = known_so_far(answer.get("state") or {})
    if known:
        console.print(f"[dim]what I know so far: {known}[/]")
    items = answer.get("items") or []
    if not items:
        if not reply:
            console.print("[yellow]no items to show[/]")
        return []
    table = Table(show_lines=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("title")
    table.add_column("score", justify="right")
    table.add_column("why")
    for n, item in enumerate(items, start=1):
        table.add_row(str(n), str(item.get("title", "")), f"{float(item.get('score', 0.0)):.3f}",
                      str(item.get("reason", "")))  # fmt: skip
    console.print(table)
    return [(str(item.get("item_id")), str(item.get("title") or item.get("item_id"))) for item in items]


def known_so_far(state: dict[str, Any]) -> str:
    """The dialogue state in a line: constraints, liked/disliked counts, mood, free words."""
    parts = []
    for c in state.get("constraints") or []:
        op = c.get("op")
        if op in ("is", "prefer") and c.get("value") is not None:
            parts.append(str(c.get("value")))
        elif op == "is_not":
            parts.append(f"not {c.get('value')}")
        else:
            parts.append(str(c.get("said") or c.get("facet")))
    for key, label in (("liked", "liked"), ("disliked", "disliked"), ("seen", "seen")):
        if state.get(key):
            parts.append(f"{len(state[key])} {label}")
    if state.get("mood"):
        parts.append(str(state["mood"]))
    if state.get("soft"):
        parts.append(f"'{state['soft'][-1]}'")
    return ", ".join(parts)


def chat_loop(backend: ChatBackend, console: Console, read_line: Callable[[str], str]) -> int:
    """Read lines until ``:quit`` or end of input; returns the exit code (0, or 1 if the backend is gone)."""
    shown: list[tuple[str, str]] = []
    console.print(HELP, style="dim")
    while True:
        try:
            line = read_line("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not line:
            continue
        command, _, arg = line.partition(" ")
        try:
            if command in {":quit", ":q", ":exit"}:
                return 0
            if command == ":help":
                console.print(HELP, style="dim")
            elif command == ":reset":
                backend.reset()
                shown = []
                console.print(f"[dim]new conversation (session {backend.session_id})[/]")
            elif command in FEEDBACK_COMMANDS:
                item_id, title = _pick(shown, arg)
                answer = backend.feedback(item_id, FEEDBACK_COMMANDS[command])
                console.print(f"[dim]{FEEDBACK_COMMANDS[command]}d {title}[/]")
                if answer.get("items"):
                    shown = show_answer(console, {"items": answer["items"]})
            elif command.startswith(":"):
                console.print(f"[yellow]unknown command {command}[/]\n{HELP}")
            else:
                shown = show_answer(console, backend.chat(line)) or shown
        except ChatError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            return 1
        except ValueError as exc:  # bad input or a 4xx answer: say so, keep chatting
            console.print(f"[red]{exc}[/]")


def _pick(shown: list[tuple[str, str]], arg: str) -> tuple[str, str]:
    if not shown:
        raise ValueError("nothing shown yet: ask for something first")
    try:
        n = int(arg.strip())
    except ValueError:
        raise ValueError(f"give the item's number, e.g. ':like 2' (1..{len(shown)})") from None
    if not 1 <= n <= len(shown):
        raise ValueError(f"no item {n} in the last list (1..{len(shown)})")
    return shown[n - 1]


def run_chat(
    url: str | None = None,
    bundle_dir: Path | None = None,
    session_id: str | None = None,
    k: int = 10,
    config: ConversationConfig | None = None,
    embedding_cache: Path | None = None,
    console: Console | None = None,
    read_line: Callable[[str], str] | None = None,
) -> int:
    """Chat against ``url`` (a running service) or in process on ``bundle_dir``; returns an exit code.

    ``console`` / ``read_line`` default to a rich Console on the terminal and ``console.input``; tests pass
    their own. Problems the user can fix are printed (no traceback) with exit code 1.
    """
    from rich.console import Console

    console = console or Console()
    reader = read_line or (lambda prompt: console.input(prompt))
    sid = session_id or new_session_id()
    try:
        if (url is None) == (bundle_dir is None):
            raise ChatError("give either --url (a running service) or --bundle (a model bundle folder)")
        if k < 1:
            raise ChatError(f"--k must be at least 1, got {k}")
        backend: ChatBackend
        if url is not None:
            http = HttpBackend(url, sid, k)
            http.check()
            backend, where = http, url
        else:
            assert bundle_dir is not None
            with console.status("loading the model and its catalogue index..."):
                engine = open_bundle(bundle_dir, config, embedding_cache)
            backend = EngineBackend(engine, sid, k)
            meta = engine.predictor.meta
            where = (
                f"{meta.get('model', 'model')} bundle {bundle_dir} ({len(engine.index)} {engine.index.nouns})"
            )
    except ChatError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    console.print(f"[bold]sessionflow chat[/] - {where} - session {sid}")
    return chat_loop(backend, console, reader)
