"""Writing the conversation's catalogue index into a bundle (at packaging) and reading the catalogue spec
the bundle was trained with (``catalogue.json``, written by ``components.bundle.save_bundle``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from components.bundle import AUDIENCE_FILE, CATALOGUE_FILE, PRIOR_FILE
from components.dialogue.index import CatalogueIndex, build_index
from components.facets import CatalogueSpec

if TYPE_CHECKING:
    from components.bundle import Predictor


def bundle_catalogue(bundle_dir: str | Path) -> CatalogueSpec | None:
    """The catalogue spec saved with the bundle, or None (older bundles: facets default from the table)."""
    path = Path(bundle_dir) / CATALOGUE_FILE
    return CatalogueSpec.model_validate_json(path.read_text()) if path.is_file() else None


def index_for_bundle(
    bundle_dir: str | Path, predictor: Predictor | None = None, cache_dir: str | Path | None = None
) -> CatalogueIndex:
    """Build the index of a bundle from its own items table and catalogue spec."""
    from components.bundle import ITEMS_FILE, Predictor

    bundle_dir = Path(bundle_dir)
    predictor = predictor or Predictor.load(bundle_dir)
    items_path = bundle_dir / ITEMS_FILE
    items = (
        pd.read_parquet(items_path)
        if items_path.is_file()
        else pd.DataFrame({"item_id": list(predictor.titles), "title": list(predictor.titles.values())})
    )
    prior_path = bundle_dir / PRIOR_FILE
    prior = np.load(prior_path) if prior_path.is_file() else None
    audience_path = bundle_dir / AUDIENCE_FILE
    audience = np.load(audience_path) if audience_path.is_file() else None
    return build_index(
        predictor, items, bundle_catalogue(bundle_dir), cache_dir=cache_dir, prior=prior, audience=audience
    )


def write_index(bundle_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Build the bundle's conversation index and save it inside the bundle (``<bundle>/conversation``)."""
    index = index_for_bundle(bundle_dir, cache_dir=cache_dir)
    folder = index.save(bundle_dir)
    info = {
        "n_items": len(index),
        "facets": [f.name for f in index.spec.facets],
        "phrases": len(index.phrases),
    }
    (folder / "summary.json").write_text(json.dumps(info, indent=2))
    return folder
