"""The MLflow model format of a sessionflow bundle ("models from code": no pickled classes).

An MLflow model logged by ``log_bundle_model`` holds the bundle directory (components/bundle.py) as the
pyfunc artifact ``bundle``; ``fetch_bundle`` downloads any model URI (``models:/name@champion``,
``models:/m-...``, ``runs:/...``) and returns the local bundle directory.

The pyfunc ``predict`` takes a DataFrame with a column ``items`` (a list of raw item ids per request,
oldest first) and an optional integer column ``k`` (default 10); it returns one row per recommendation:
``request`` (row number of the input), ``rank`` (1-based), ``item_id``, ``title``, ``score``.
The model code imports ``components`` and ``models``: load it where the sessionflow package is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature

BUNDLE_ARTIFACT = "bundle"
BUNDLE_META = "meta.json"
_CODE_PATH = Path(__file__).with_name("mlflow_pyfunc.py")
_CORE_PACKAGES = ("torch", "transformers", "numpy", "pandas", "pyarrow", "pydantic", "pyyaml")


def log_bundle_model(bundle_dir: str | Path, name: str = "model", **kwargs: Any) -> ModelInfo:
    """Log ``bundle_dir`` as an MLflow pyfunc model in the active run; returns mlflow's ModelInfo.

    ``kwargs`` go to ``mlflow.pyfunc.log_model`` (e.g. ``tags``, ``params``, ``registered_model_name``).
    ``ModelInfo.model_uri`` is the LoggedModel URI (``models:/m-...``).
    """
    import mlflow

    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / BUNDLE_META).is_file():
        raise ValueError(
            f"{bundle_dir} is not a sessionflow model bundle (no {BUNDLE_META}); "
            "write one with components.bundle.save_bundle first"
        )
    example = kwargs.pop("input_example", None)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(_CODE_PATH),
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        pip_requirements=kwargs.pop("pip_requirements", None) or _requirements(),
        signature=kwargs.pop("signature", None) or bundle_signature(),
        input_example=_input_example(bundle_dir) if example is None else example,
        **kwargs,
    )


def fetch_bundle(model_uri: str, dst: str | Path) -> Path:
    """Download ``model_uri`` into ``dst`` and return the path of the bundle directory inside it."""
    import mlflow
    import yaml

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    mlmodel_path = local / "MLmodel"
    if not mlmodel_path.is_file():
        raise ValueError(f"{model_uri} is not an MLflow model: no MLmodel file in {local}")
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    try:
        rel = mlmodel["flavors"]["python_function"]["artifacts"][BUNDLE_ARTIFACT]["path"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{model_uri} is not a sessionflow model: its MLmodel has no pyfunc artifact '{BUNDLE_ARTIFACT}'"
        ) from exc
    bundle = local / rel
    if not (bundle / BUNDLE_META).is_file():
        raise ValueError(f"{model_uri}: downloaded bundle at {bundle} has no {BUNDLE_META}")
    return bundle


def bundle_signature() -> ModelSignature:
    """Input: ``items`` (list of str), optional ``k`` (long); param ``k`` (default for rows without one).

    Output: one row per recommendation (request, rank, item_id, title, score).
    """
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

    inputs = Schema(
        [
            ColSpec(Array(DataType.string), "items"),
            ColSpec(DataType.long, "k", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.long, "request"),
            ColSpec(DataType.long, "rank"),
            ColSpec(DataType.string, "item_id"),
            ColSpec(DataType.string, "title"),
            ColSpec(DataType.double, "score"),
        ]
    )
    params = ParamSchema([ParamSpec("k", DataType.long, 10)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _input_example(bundle_dir: Path) -> pd.DataFrame:
    """Two known item ids of the bundle's vocabulary as one request (shown in the UI and serving docs)."""
    import json

    import pandas as pd

    ids = json.loads((bundle_dir / "vocab.json").read_text()).get("item_ids", [])[:2]
    return pd.DataFrame({"items": [[str(i) for i in ids]], "k": [10]})


def _requirements() -> list[str]:
    """Pins of the training core (local build tags like ``+cpu`` dropped so CUDA builds also satisfy them)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in _CORE_PACKAGES:
        try:
            pins.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(pkg)
    return pins
