"""Screenshot the chat page of a real ``bentoml serve`` of a bundle, after a short conversation, in headless
Chromium (Debian's ``chromium``; playwright drives it, never downloads one).

    python benchmarks/chat_screenshot.py --bundle artifacts/dev/mls-ease \
        --out docs/chat-ml-latest-small.png \
        --say "a funny sci-fi film from the 90s, nothing like Alien" --like 1 --say "more recent"

The bundle is packaged as ``flows.package`` does (its conversation index inside) into a throw-away BentoML
home; the server listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--say", action="append", default=[], help="a message (repeatable, in order)")
    p.add_argument(
        "--like", action="append", type=int, default=[], help="like card N after the first message"
    )
    args = p.parse_args()
    from playwright.sync_api import expect, sync_playwright

    from components.dialogue.packaging import write_index
    from tests.service import isolated_bentoml_home, save_bentoml_model, served

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="sessionflow-shot-") as tmp:
        tmp_path = Path(tmp)
        bundle = tmp_path / "bundle"
        shutil.copytree(args.bundle, bundle)
        if not (bundle / "conversation" / "index.json").is_file():
            write_index(bundle, Path(".cache/embeddings"))
        labels = {"registered_model": "sessionflow-recommender", "mlflow_model_version": "1", "model": "demo"}
        with isolated_bentoml_home(tmp_path / "home"):
            tag = save_bentoml_model(bundle, labels)
        with served(tag, tmp_path / "home", tmp_path / "feedback.db", tmp_path / "serve.log") as service, \
                sync_playwright() as pw:  # fmt: skip
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(service.url)
            for n, message in enumerate(args.say):
                before = page.locator("#chat-log .bubble.assistant").count()
                page.get_by_label("Message").fill(message)
                page.get_by_role("button", name="Send").click()
                expect(page.locator("#chat-log .bubble.assistant")).to_have_count(before + 1)
                if n == 0:
                    for pos in args.like:
                        card = page.locator("#results li.card").nth(pos - 1)
                        card.locator("button.like").click()
                        expect(page.locator("#status")).to_contain_text("list updated")
            page.mouse.move(0, 0)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
