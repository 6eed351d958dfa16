"""What people can ask a catalogue for: facets, their words, and what the items are called.

A dataset spec's ``catalogue`` section (``CatalogueSpec``) declares the facets of the item table::

    catalogue:
      item_noun: [product, products]
      facets:
        - {name: category, kind: category, column: categories}
        - {name: brand, kind: category, column: attributes.brand}
        - {name: price, kind: number, column: attributes.price, unit: "$"}
      vocabulary: movies           # a built-in vocabulary (components/vocabularies/<name>.yaml) or a file

Facet kinds: ``category`` (one or many string values per item: genres, brand, tags), ``year`` (a release
year), ``number`` (a price, a duration...), ``text`` (searchable free text, e.g. a description; already part
of the item text). The index adds ``audience`` facets itself, from the interaction log rather than the item
table (``column: interactions``): ``popularity`` (an item's percentile of the popularity prior) and, where
the log holds explicit ratings, ``rating`` (mean rating, shrunk towards the catalogue's mean) and ``ratings``
(how many). A vocabulary is data: phrases people say for a facet value ("funny" -> Comedy), phrases
naming several values ("rom-com"), and moods (what "lighter" / "darker" prefer). Nothing domain-specific
lives in the engine.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

FacetKind = Literal["category", "year", "number", "text", "audience"]
COLUMNS = ("title", "text", "categories", "year")  # canonical item columns; others are attributes.<key>
AUDIENCE_COLUMN = "interactions"  # audience facets are derived from the interaction log


class FacetSpec(BaseModel):
    """One facet of the catalogue."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="How the facet is called in queries and replies: genre, brand, price.")
    kind: FacetKind
    column: str = Field(description="Item column: categories | year | title | text | attributes.<key>.")
    unit: str | None = Field(None, description="number facets: the unit people write ('$', 'min').")
    max_values: int = Field(
        5000, ge=1, description="category facets: keep the most frequent values (tags can be many)."
    )
    pattern: str | None = Field(
        None,
        description="A regular expression with one group that extracts the value from the column's text "
        "('Industrial & Scientific (.+?)\\. ' on product texts); items without a match have no value.",
    )
    proper_names: bool = Field(
        False,
        description="Values are names (brands, people): one that is also a common English word "
        "('Inland', 'Small Parts') counts only when written with capitals, and one written beside other "
        "capitalised words still counts ('Titebond Glue'); a value of a facet without this flag inside a "
        "longer capitalised name is part of that name ('Avengers Infinity War' asks for no War genre).",
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled = re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a regular expression: {exc}") from None
            if compiled.groups != 1:
                raise ValueError(f"pattern {value!r} must have exactly one group, has {compiled.groups}")
        return value

    @field_validator("column")
    @classmethod
    def _column(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "audience":
            if value != AUDIENCE_COLUMN:
                raise ValueError(f"an audience facet reads column {AUDIENCE_COLUMN!r}, got {value!r}")
            return value
        if value not in COLUMNS and not (value.startswith("attributes.") and len(value) > len("attributes.")):
            raise ValueError(f"column must be one of {COLUMNS} or attributes.<key>, got {value!r}")
        return value


class Vocabulary(BaseModel):
    """Phrases people use for facet values; data, loaded from YAML."""

    model_config = ConfigDict(extra="forbid")
    values: dict[str, list[str]] = Field(
        default_factory=dict, description="facet value -> phrases meaning it ('Comedy': [funny, hilarious])"
    )
    combos: dict[str, list[str]] = Field(
        default_factory=dict, description="phrase -> several values ('rom-com': [Comedy, Romance])"
    )
    excludes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="phrase -> values it rules out ('for adults': [Children]): asking for it excludes them",
    )
    prefers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="phrase -> values it leans to without requiring them ('date night': [Romance, Comedy])",
    )
    moods: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="'lighter' / 'darker' -> value -> weight (+ preferred, - avoided)",
    )

    def merged(self, other: Vocabulary) -> Vocabulary:
        values = {k: list(v) for k, v in self.values.items()}
        for k, v in other.values.items():
            values[k] = list(dict.fromkeys([*values.get(k, []), *v]))
        return Vocabulary(
            values=values,
            combos={**self.combos, **other.combos},
            excludes={**self.excludes, **other.excludes},
            prefers={**self.prefers, **other.prefers},
            moods={**self.moods, **other.moods},
        )


class CatalogueSpec(BaseModel):
    """The catalogue section of a dataset spec."""

    model_config = ConfigDict(extra="forbid")
    item_noun: tuple[str, str] = Field(("item", "items"), description="(singular, plural) used in replies.")
    facets: list[FacetSpec] = Field(default_factory=list)
    vocabulary: str | None = Field(None, description="Built-in vocabulary name or a YAML file path.")
    words: Vocabulary = Field(default_factory=Vocabulary, description="Inline vocabulary (merged on top).")
    titles_describe_items: bool = Field(
        True,
        description="Product titles describe the item ('Waterproof Wood Glue'): their words are searched. "
        "Film or book titles are names ('Date Night', 'Saw'): only the title linker reads them.",
    )
    base_dir: str | None = Field(
        None, description="Set when loaded: where a relative vocabulary path starts."
    )

    @field_validator("item_noun", mode="before")
    @classmethod
    def _noun(cls, value: object) -> object:
        if isinstance(value, str):
            return (value, value + "s")
        return value

    @field_validator("facets")
    @classmethod
    def _unique(cls, value: list[FacetSpec]) -> list[FacetSpec]:
        names = [f.name for f in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"facet names must be unique, repeated: {dupes}")
        return value

    def load_vocabulary(self) -> Vocabulary:
        """The named or file vocabulary merged with the inline words."""
        base = Vocabulary()
        if self.vocabulary:
            base = load_vocabulary(self.vocabulary, Path(self.base_dir) if self.base_dir else None)
        return base.merged(self.words)


def default_catalogue(has_categories: bool, has_year: bool) -> CatalogueSpec:
    """Facets every catalogue gets when its spec declares none: its categories and its year."""
    facets = []
    if has_categories:
        facets.append(FacetSpec(name="category", kind="category", column="categories"))
    if has_year:
        facets.append(FacetSpec(name="year", kind="year", column="year"))
    return CatalogueSpec(facets=facets)


def builtin_vocabularies() -> list[str]:
    folder = resources.files("components") / "vocabularies"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_vocabulary(name_or_path: str, base_dir: Path | None = None) -> Vocabulary:
    """A built-in vocabulary by name (``movies``) or a YAML file (relative to ``base_dir``)."""
    if name_or_path in builtin_vocabularies():
        text = (resources.files("components") / "vocabularies" / f"{name_or_path}.yaml").read_text()
        where = f"built-in vocabulary {name_or_path!r}"
    else:
        path = Path(name_or_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise FileNotFoundError(
                f"vocabulary {name_or_path!r} is neither a built-in one ({builtin_vocabularies()}) nor a file"
            )
        text, where = path.read_text(), str(path)
    raw = yaml.safe_load(text) or {}
    try:
        return Vocabulary.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid vocabulary {where}:\n{exc}") from exc
