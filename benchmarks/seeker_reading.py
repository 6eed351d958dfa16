"""How the conversation engine reads real people: every seeker message of an INSPIRED split, in its dialogue.

For each SEEKER utterance the dialogue up to it is replayed (``ConversationEngine.replay``, the path of a
stateless ``/chat``), and two things are counted:

- the intent the engine gives the message (request, refinement, question about an item, small talk,
  off-topic, ...): an off-topic reading is a refusal ("I can only help you find films here"), so the count of
  those, and the messages behind it, say how often real people are turned away;
- the items the engine takes the message to refer to against the titles the dataset's annotators listed for
  that utterance (the ``movies`` column, mapped to the catalogue like the evaluation targets): found /
  annotated, and the references the annotators did not list (titles they missed, often lower-case ones, and
  references to what was just suggested: "I've seen it").

Dev only for decisions; the numbers are not a score to tune on.

    SESSIONFLOW_DATA_MIRROR=../shared/datasets OMP_NUM_THREADS=1 \\
        python benchmarks/seeker_reading.py --bundle artifacts/dev/mls-ease --split dev

Writes results/seeker_reading_<split>.json (git-ignored): the counts, and every message with its reading.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's code, not whichever sessionflow is installed


def read(bundle: str, split: str, mirror: str | None) -> dict[str, Any]:
    from components.dialogue.engine import load_engine
    from components.dialogue.evaluation import TitleMatcher, corpus_path, read_inspired

    engine = load_engine(bundle)
    index = engine.index
    matcher = TitleMatcher(index.item_ids, index.titles, index.years)
    intents: collections.Counter[str] = collections.Counter()
    linked = annotated = extra = 0
    messages = []
    for dialogue in read_inspired(corpus_path("inspired", split, mirror)):
        history: list[dict[str, str]] = []
        for utt in dialogue.utterances:
            history.append({"role": utt.role, "content": utt.text})
            if utt.role != "user":
                continue
            _, query, _ = engine.replay(history)
            gold = {m for m in (matcher.match(t) for t in utt.titles) if m is not None}
            got = {r.item_id for r in query.refs}
            intents[query.intent] += 1
            annotated += len(gold)
            linked += len(gold & got)
            extra += len(got - gold)
            messages.append({
                "dialogue": dialogue.dialogue_id, "text": utt.text, "intent": query.intent,
                "annotated": sorted(index.label(index.index(g)) for g in gold),
                "linked": sorted(index.label(index.index(g)) for g in got),
            })  # fmt: skip
    return {
        "messages": len(messages),
        "intents": dict(intents.most_common()),
        "titles": {
            "annotated": annotated,
            "linked": linked,
            "not_annotated": extra,
            "recall": round(linked / annotated, 4) if annotated else None,
        },  # fmt: skip
        "per_message": messages,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(REPO / "artifacts" / "dev" / "mls-ease"))
    ap.add_argument("--split", default="dev", choices=["dev", "test"])
    ap.add_argument("--output", default=None)
    args = ap.parse_args(argv)
    mirror = os.environ.get("SESSIONFLOW_DATA_MIRROR")
    started = time.perf_counter()
    report = read(args.bundle, args.split, mirror)
    report |= {
        "bundle": args.bundle, "split": args.split, "seconds": round(time.perf_counter() - started, 1),
        "command": " ".join(sys.argv),
    }  # fmt: skip
    out = Path(args.output or REPO / "results" / f"seeker_reading_{args.split}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(json.dumps({k: v for k, v in report.items() if k != "per_message"}, indent=1))
    return report


if __name__ == "__main__":
    main()
