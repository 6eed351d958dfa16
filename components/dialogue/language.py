"""Which language a message is in, and whether it holds any words at all.

The sentence encoder (all-MiniLM-L6-v2) and the built-in planner read English only: no multilingual encoder
packaged with weights on PyPI loads with transformers (checked 2026-11), so a message in another language is
detected and answered honestly ("I only understand English so far") instead of being matched blindly.
Detection: the share of letters outside the Latin script, then py3langid's classifier confirmed by word
frequencies (a word counts as English when wordfreq knows it at least as well in English as in the detected
language), so short English chat ("hi im good you") is not mistaken for another language.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from components.dialogue.text import zipf

_WORDFREQ_LANGS = frozenset(
    [
        "ar",
        "bn",
        "bs",
        "bg",
        "ca",
        "zh",
        "hr",
        "cs",
        "da",
        "nl",
        "en",
        "fi",
        "fr",
        "de",
        "el",
        "he",
        "hi",
        "hu",
        "is",
        "id",
        "it",
        "ja",
        "ko",
        "lv",
        "lt",
        "mk",
        "ms",
        "nb",
        "fa",
        "pl",
        "pt",
        "ro",
        "ru",
        "sl",
        "sk",
        "sr",
        "es",
        "sv",
        "fil",
        "ta",
        "tr",
        "uk",
        "ur",
        "vi",
    ]
)


@lru_cache(maxsize=1)
def _identifier():  # noqa: ANN202 - py3langid has no stubs
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)


def detect_language(message: str, words: list[str]) -> str:
    """ISO 639-1 code of the message's language ('en' when it reads as English or cannot tell)."""
    letters = [c for c in message if c.isalpha()]
    if not letters:
        return "en"
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if latin / len(letters) < 0.5:
        lang, _ = _identifier().classify(message)
        return "en" if lang == "en" else str(lang)
    alpha = [w for w in words if w.isalpha()]
    if len(alpha) < 2:
        return "en"
    lang, prob = _identifier().classify(message)
    if lang == "en" or prob < 0.2:
        return "en"
    if lang in _WORDFREQ_LANGS:
        english = sum(1 for w in alpha if zipf(w, "en") >= zipf(w, lang) and zipf(w, "en") > 0)
        return "en" if english / len(alpha) >= 0.5 else str(lang)
    if prob < 0.5:  # a language word frequencies cannot confirm needs a confident classifier ("qwerty asdf")
        return "en"
    english = sum(1 for w in alpha if zipf(w, "en") >= 3.0)
    return "en" if english / len(alpha) >= 0.5 else str(lang)


LANGUAGE_NAMES = {
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ru": "Russian", "ar": "Arabic", "hi": "Hindi",
    "pl": "Polish", "tr": "Turkish", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish",
    "el": "Greek", "he": "Hebrew", "uk": "Ukrainian", "cs": "Czech", "ca": "Catalan", "sw": "Swahili",
    "la": "Latin", "id": "Indonesian", "ms": "Malay", "vi": "Vietnamese", "th": "Thai", "ro": "Romanian",
    "hu": "Hungarian", "bg": "Bulgarian", "hr": "Croatian", "sk": "Slovak", "fa": "Persian", "bn": "Bengali",
    "ta": "Tamil", "ur": "Urdu", "tl": "Tagalog", "et": "Estonian", "lt": "Lithuanian", "lv": "Latvian",
}  # fmt: skip


def language_name(code: str) -> str:
    """English name of a language code; a code without one reads "a language other than English"."""
    return LANGUAGE_NAMES.get(code, "a language other than English")
