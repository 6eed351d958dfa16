"""Text helpers shared by the conversation layer: one ``fold`` for every comparison of words, tokens with
character spans, and how informative an English word is (``informativeness``, from the wordfreq corpus
frequencies: "saw", "date" or "paris" are common words and weigh little; "zombie" or "kubrick" weigh a lot).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)*(?:[-/][a-z0-9]+)*|[$€£]|[,.;:!?()\"]")


def fold(text: str) -> str:
    """Lower-case, accents removed, every run of non-alphanumerics one space."""
    if not text.isascii():  # ASCII has no accents to remove: skip the per-character pass (index builds)
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def normalise(message: str) -> str:
    """Lower-case, quotes unified, accents removed; SAME LENGTH as the input so character spans align."""
    out = []
    for ch in message:
        if ch in "’‘`´":
            out.append("'")
        elif ch in "“”„":
            out.append('"')
        else:
            base = unicodedata.normalize("NFKD", ch)
            base = "".join(c for c in base if not unicodedata.combining(c))
            out.append(base.lower() if len(base) == 1 else ch.lower() if len(ch.lower()) == 1 else ch)
    s = "".join(out)
    s = re.sub(r"'(\d)", r" \1", s)  # '90s -> 90s (same length)
    return re.sub(r"(\d)'s\b", r"\1s ", s)  # 90's -> 90s


@dataclass(frozen=True)
class Token:
    text: str  # normalised (lower-case) token
    start: int  # character span in the message
    end: int
    capitalised: bool  # as typed: "Mirrors", "IT"
    has_upper: bool = False  # any capital letter as typed: "3M", "eSUN"


def tokenize(message: str) -> list[Token]:
    """Word and punctuation tokens of ``message`` with their character spans."""
    s = normalise(message)
    out = []
    for m in _TOKEN.finditer(s):
        raw = message[m.start() : m.end()]
        out.append(
            Token(
                m.group().replace("’", "'"),
                m.start(),
                m.end(),
                raw[:1].isupper(),
                any(c.isupper() for c in raw),
            )
        )
    return out


@lru_cache(maxsize=200_000)
def zipf(word: str, lang: str = "en") -> float:
    """wordfreq's Zipf frequency (0 = unseen, 7 = 'the')."""
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, lang))


def informativeness(word: str) -> float:
    """How much a matching English word says, in [0.05, 1]: 1 for rare words (Zipf <= 3), falling to 0.05 for
    the most common ones (Zipf >= 6); digits and unknown tokens count as rare."""
    z = zipf(word)
    return float(min(1.0, max(0.05, (6.0 - z) / 3.0)))


def is_known_word(word: str) -> bool:
    """A word English speakers use (Zipf >= 1.5), or a number."""
    return word.isdigit() or zipf(word) >= 1.5
