"""MLflow "model from code" for a sessionflow bundle (loaded by mlflow.pyfunc; see flows/mlflow_model.py).

MLflow executes this file when it logs or loads the model; ``set_model`` registers the instance.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

OUTPUT_COLUMNS = ["request", "rank", "item_id", "title", "score"]
DEFAULT_K = 10


class BundleModel(PythonModel):
    def load_context(self, context: Any) -> None:
        from components.bundle import Predictor

        self.predictor = Predictor.load(context.artifacts["bundle"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if "items" not in model_input.columns:
            raise ValueError(
                f"input needs a column 'items' (lists of item ids); got {list(model_input.columns)}"
            )
        default_k = int((params or {}).get("k", DEFAULT_K))
        ks = model_input["k"] if "k" in model_input.columns else pd.Series([default_k] * len(model_input))
        sessions = [[str(i) for i in _as_list(items)] for items in model_input["items"]]
        k_values = [default_k if pd.isna(k) else int(k) for k in ks]
        rows: list[dict[str, Any]] = []
        # one batched scoring call at the largest k; each request is cut to its own k
        results = self.predictor.recommend_batch(sessions, k=max(k_values, default=default_k))
        for req, (result, k) in enumerate(zip(results, k_values, strict=True)):
            for rank, rec in enumerate(result.items[:k], start=1):
                rows.append(
                    {
                        "request": req,
                        "rank": rank,
                        "item_id": rec.item_id,
                        "title": rec.title,
                        "score": rec.score,
                    }
                )
        out = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
        return out.astype({"request": "int64", "rank": "int64", "score": "float64"})


def _as_list(items: Any) -> list[Any]:
    if items is None:
        return []
    if isinstance(items, str):
        return [items]
    return list(items)


mlflow.models.set_model(BundleModel())
