"""Run the request panel (benchmarks/request_panel.yaml) against real catalogues and check every answer
objectively against the catalogue's own facts. Prints one line per request and writes JSON.

    python benchmarks/request_panel.py --bundle ml-latest-small=artifacts/dev/mls-ease \
        --bundle amazon-scientific=artifacts/dev/sci-itemknn

tests/conversation/test_request_panel.py runs the same checks (marked slow: it trains and indexes the
catalogues first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PANEL = Path(__file__).with_name("request_panel.yaml")


def load_panel(path: Path = PANEL) -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load(path.read_text())


def play(engine: Any, case: dict[str, Any], k: int = 10) -> tuple[Any, Any]:
    """Play a case's turns; returns (last answer, the answer before it). Assistant turns make it stateless."""
    from components.dialogue.engine import ChatResult

    sid = f"panel-{case['id']}"
    engine.reset(sid)
    previous = last = None
    turns = case["turns"]
    if any(isinstance(t, dict) and "assistant" in t for t in turns):
        messages = [{"role": "assistant", "content": t["assistant"]} if isinstance(t, dict)
                    else {"role": "user", "content": t} for t in turns]  # fmt: skip
        return engine.chat_stateless(messages, k), None
    for turn in turns:
        if isinstance(turn, dict) and "feedback" in turn:
            ix = engine.index
            item = next(i for i in range(len(ix)) if ix.label(i) == turn["item"])
            answer = engine.feedback(sid, ix.item_ids[item], turn["feedback"])
            previous, last = last, ChatResult("", [_item(x) for x in answer["items"]], answer["state"])
            continue
        previous, last = last, engine.chat(sid, turn, k)
    return last, previous


def _item(d: dict[str, Any]) -> Any:
    from components.dialogue.engine import ChatItem

    return ChatItem(d["item_id"], d["title"], d["score"], d["reason"])


def check(engine: Any, case: dict[str, Any], last: Any, previous: Any) -> list[str]:
    """The failed checks of one answer ([] = pass), each as a sentence."""
    ix = engine.index
    items = [ix.index(i.item_id) for i in last.items]
    genres = [set(ix.facet_values(i).get("genre", [])) for i in items]
    brands = [set(ix.facet_values(i).get("brand", [])) for i in items]
    years = [ix.years[i] for i in items]
    titles = [i.title for i in last.items]
    understood = last.understood or {}
    cons = understood.get("constraints", [])
    state_cons = (last.state or {}).get("constraints", [])
    fails: list[str] = []
    c = case["checks"]

    def need(ok: bool, why: str) -> None:
        if not ok:
            fails.append(why)

    prev_items = [i.item_id for i in previous.items] if previous else []
    for key, want in c.items():
        if key == "any_genre":
            need(bool(items) and all(g & set(want) for g in genres), f"every item should be one of {want}")
        elif key == "all_genres":
            need(bool(items) and all(set(want) <= g for g in genres), f"every item should be all of {want}")
        elif key == "some_genre":
            need(any(g & set(want) for g in genres), f"some item should be one of {want}")
        elif key == "not_all_genre":
            need(bool(items) and not all(g & set(want) for g in genres), f"not every item should be {want}")
        elif key == "some_year_outside":
            need(any(not want[0] <= y <= want[1] for y in years), f"some year outside {want} (not a filter)")
        elif key == "no_genre":
            need(all(not g & set(want) for g in genres), f"no item may be {want}")
        elif key == "year_min":
            need(bool(items) and all(y >= want for y in years), f"every year >= {want}")
        elif key == "year_max":
            need(bool(items) and all(y <= want for y in years), f"every year <= {want}")
        elif key == "year_not_between":
            need(all(not want[0] <= y <= want[1] for y in years), f"no year in {want}")
        elif key == "years_in":
            need(bool(items) and all(any(a <= y <= b for a, b in want) for y in years), f"years in {want}")
        elif key == "no_titles":
            bad = [t for t in titles for w in want if w.lower() in t.lower()]
            need(not bad, f"should not show {bad}")
        elif key == "refs":
            got = {(r["title"], r["stance"]) for r in understood.get("refs", [])}
            need({tuple(r) for r in want} <= got, f"refs {want} not in {sorted(got)}")
        elif key == "no_refs":
            need(not understood.get("refs"), f"no title should be linked, got {understood.get('refs')}")
        elif key == "intent":
            need(understood.get("intent") == want, f"intent {understood.get('intent')} != {want}")
        elif key == "empty":
            need(not items, f"should show nothing, showed {titles[:3]}")
        elif key == "nonempty":
            need(bool(items), "should show items")
        elif key == "reply_has":
            need(all(w.lower() in last.reply.lower() for w in want), f"reply lacks {want}: {last.reply!r}")
        elif key == "reply_lacks":
            need(not any(w.lower() in last.reply.lower() for w in want), f"reply has {want}: {last.reply!r}")
        elif key == "no_as_asked":
            need(all("as asked" not in i.reason for i in last.items), "a reason says 'as asked'")
        elif key == "text_any":
            hits = sum(any(w in ix.texts[i].lower() for w in want["words"]) for i in items)
            need(hits >= want["min"], f"only {hits} items mention {want['words']} (need {want['min']})")
        elif key == "text_none":
            bad = [ix.titles[i] for i in items if any(w in ix.texts[i].lower() for w in want)]
            need(not bad, f"items mention {want}: {bad[:3]}")
        elif key == "unresolved":
            got = [u.lower() for u in understood.get("unresolved_titles", [])]
            need(all(u.lower() in got for u in want), f"unresolved {got} lacks {want}")
        elif key == "avoid":
            need(want in understood.get("avoid", ""), f"avoid text {understood.get('avoid')!r} lacks {want}")
        elif key == "no_constraint_on":
            need(all(x["facet"] != want for x in cons), f"no {want} constraint expected, got {cons}")
        elif key == "no_constraint_value":
            need(all(x.get("value") != want for x in state_cons), f"{want} should be gone: {state_cons}")
        elif key == "popularity_kept":
            before = np.median([ix.prior[ix.index(i)] for i in prev_items]) if prev_items else 0
            after = np.median([ix.prior[i] for i in items]) if items else 0
            need(after >= want * before, f"median popularity fell from {before:.3f} to {after:.3f}")
        elif key == "not_previous":
            need(not set(prev_items) & {i.item_id for i in last.items}, "shows items already seen")
        elif key == "not_previous_first":
            need(bool(prev_items) and prev_items[0] not in {i.item_id for i in last.items}, "first one back")
        elif key == "not_previous_second":
            need(bool(prev_items) and prev_items[1] not in {i.item_id for i in last.items}, "second one back")
        elif key in ("newer_than_previous", "older_than_previous"):
            prev_years = [ix.years[ix.index(i)] for i in prev_items]
            newer = np.mean(years) > np.mean(prev_years) if years and prev_years else False
            older = np.mean(years) < np.mean(prev_years) if years and prev_years else False
            need(newer if key.startswith("newer") else older, f"{key}: {np.mean(prev_years):.0f} -> "
                 f"{np.mean(years) if years else float('nan'):.0f}")  # fmt: skip
        elif key == "more_genre_than_previous":
            prev_share = np.mean([want in ix.facet_values(ix.index(i)).get("genre", []) for i in prev_items])
            share = np.mean([want in g for g in genres]) if genres else 0
            need(share > prev_share, f"share of {want} {prev_share:.1f} -> {share:.1f}")
        elif key == "mean_rating_min":  # the log's own ratings (MovieLens): every item rated this well
            means = ix.mean_ratings if ix.mean_ratings is not None else np.full(len(ix), np.nan)
            low = [f"{ix.titles[i]} {means[i]:.1f}" for i in items if not means[i] >= want]
            need(bool(items) and not low, f"mean rating under {want}: {low[:3]}")
        elif key == "not_most_rated":  # none among the catalogue's ``want`` share of most rated items
            count = ix.numbers["ratings"].values
            edge = np.sort(count)[::-1][int(want * len(count))]
            busy = [f"{ix.titles[i]} ({int(count[i])})" for i in items if count[i] > edge]
            need(bool(items) and not busy, f"among the {want:.0%} most rated (> {int(edge)}): {busy[:3]}")
        elif key == "brand_not":
            need(all(not b & set(want) for b in brands), f"a brand in {want} was shown")
        elif key == "brand_is":
            need(bool(items) and all(b & set(want) for b in brands), f"every item should be {want}")
        else:
            fails.append(f"unknown check {key!r}")
    return fails


def run(engines: dict[str, Any], panel: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    results = []
    for catalogue, cases in panel.items():
        engine = engines.get(catalogue)
        for case in cases:
            if engine is None:
                results.append({"catalogue": catalogue, "id": case["id"], "skipped": "no bundle given"})
                continue
            start = time.perf_counter()
            last, previous = play(engine, case)
            fails = check(engine, case, last, previous)
            results.append({
                "catalogue": catalogue, "id": case["id"], "passed": not fails, "failures": fails,
                "reply": last.reply, "shown": [i.title for i in last.items[:5]],
                "ms": round((time.perf_counter() - start) * 1000, 1),
                "known_failure": case.get("known_failure"),
            })  # fmt: skip
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", action="append", default=[], help="CATALOGUE=BUNDLE_DIR (repeatable)")
    p.add_argument("--output", type=Path, default=Path("results/request_panel.json"))
    args = p.parse_args()
    from components.dialogue.engine import load_engine

    engines = {}
    for spec in args.bundle:
        name, _, folder = spec.partition("=")
        engines[name] = load_engine(Path(folder))
    results = run(engines, load_panel())
    for r in results:
        known = " (known failure)" if not r.get("passed", True) and r.get("known_failure") else ""
        mark = "skip" if "skipped" in r else "PASS" if r["passed"] else "FAIL" + known
        print(f"{mark}  {r['catalogue']:18s} {r['id']:36s} {'; '.join(r.get('failures', []))[:150]}")
    done = [r for r in results if "skipped" not in r]
    passed = sum(r["passed"] for r in done)
    print(f"{passed}/{len(done)} passed")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"passed": passed, "n": len(done), "loadavg": os.getloadavg(),
                                       "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
