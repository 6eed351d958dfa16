"""Dataset specs and getting raw data.

A dataset spec (YAML) names a format and where its files are. Built-in datasets are specs embedded
here, with the sha256 of every file we read; users bring their own data by writing a spec file::

    name: my-shop
    format: interactions-csv
    path: clicks.csv            # relative to the spec file
    separator: ","
    columns: {user_id: visitor, item_id: sku, timestamp: ts, event: type}
    timestamp_unit: s           # s | ms | null (parse strings)
    items: {path: products.csv, columns: {item_id: sku, title: name, categories: cats}}

``pull`` copies a built-in dataset into data/raw/<name> from the mirror folder named by the environment
variable SESSIONFLOW_DATA_MIRROR, or downloads the official archive, and verifies sha256 of what it read.
data/raw is immutable: an existing copy is verified, never overwritten.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.facets import CatalogueSpec, FacetSpec

MIRROR_ENV = "SESSIONFLOW_DATA_MIRROR"
Format = Literal[
    "movielens-100k", "movielens-latest", "sequence-lines", "diginetica", "interactions-csv", "recbole-atomic"
]


class ItemsFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    separator: str = ","
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="canonical name (item_id, title, text, categories, year, or attributes.<key> for "
        "brand, price...) -> file column",
    )
    category_separator: str = "|"


class DatasetSpec(BaseModel):
    """Where a dataset's files are and how to read them."""

    model_config = ConfigDict(extra="forbid")
    name: str
    format: Format
    path: str = Field(
        description="File or folder, relative to the spec file (or data/raw/<name> for built-ins)."
    )
    separator: str = ","
    columns: dict[str, str] = Field(default_factory=dict, description="canonical column -> file column")
    timestamp_unit: Literal["s", "ms"] | None = None
    default_event: str = Field("view", description="Event name when the log has no event column.")
    synthetic_time_step_seconds: float = Field(
        60.0, gt=0, description="sequence-lines: seconds between consecutive items (the format has no times)."
    )
    items: ItemsFileSpec | None = None
    catalogue: CatalogueSpec | None = Field(
        None, description="Facets people can ask for and what items are called (components/facets.py)."
    )
    atomic_name: str | None = Field(
        None,
        description="recbole-atomic: the file stem (Scientific for Scientific.train.inter); default: the "
        "stem of the only *.test.inter file in the folder.",
    )
    base_dir: str | None = Field(None, description="Set when loaded: folder the relative paths start from.")

    def resolve(self, relative: str) -> Path:
        """A path from the spec: environment variables expanded, relative to the spec's folder. A variable
        that starts the path is a folder as the shell gave it: relative to the working directory
        (``SESSIONFLOW_DATA_MIRROR=../shared/datasets``), not to the spec's folder."""

        def value(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            if name not in os.environ:
                raise ValueError(
                    f"dataset spec {self.name!r}: path {relative!r} uses an unset environment variable {name}"
                )
            return str(Path(os.environ[name]).resolve()) if m.start() == 0 else os.environ[name]

        expanded = _ENV_VAR.sub(value, relative)
        p = Path(expanded)
        return p if p.is_absolute() else Path(self.base_dir or ".") / p


_ENV_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


class RawFile(BaseModel):
    mirror_path: str  # relative to the mirror folder
    dest: str  # relative to data/raw/<name>
    sha256: str


class BuiltinDataset(BaseModel):
    spec: DatasetSpec
    files: list[RawFile]
    url: str | None = None  # official archive (zip) when one exists
    archive_prefix: str = ""  # folder inside the archive holding the files


MOVIE_CATALOGUE = CatalogueSpec(
    item_noun=("film", "films"),
    facets=[
        FacetSpec(name="genre", kind="category", column="categories"),
        FacetSpec(name="year", kind="year", column="year"),
    ],
    vocabulary="movies",
    titles_describe_items=False,
)

# Amazon 'Industrial & Scientific' product texts read
# "<title>. Industrial & Scientific <category path>. <brand>."
SCIENTIFIC_CATALOGUE = CatalogueSpec(
    item_noun=("product", "products"),
    facets=[
        FacetSpec(
            name="category", kind="category", column="text", pattern=r"Industrial & Scientific (.+?)\.\s"
        ),
        FacetSpec(
            name="brand",
            kind="category",
            column="text",
            pattern=r"\.\s+(?!Industrial & Scientific)([^.]+?)\.\s*$",
            proper_names=True,
        ),
    ],
)

_ML100K_FILES = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
}

BUILTIN: dict[str, BuiltinDataset] = {
    "ml-100k": BuiltinDataset(
        spec=DatasetSpec(name="ml-100k", format="movielens-100k", path=".", catalogue=MOVIE_CATALOGUE),
        files=[RawFile(mirror_path=f"ml-100k/{n}", dest=n, sha256=s) for n, s in _ML100K_FILES.items()],
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        archive_prefix="ml-100k/",
    ),
    "ml-latest-small": BuiltinDataset(
        spec=DatasetSpec(
            name="ml-latest-small",
            format="movielens-latest",
            path="ml-latest-small.zip",
            catalogue=MOVIE_CATALOGUE,
        ),
        files=[
            RawFile(
                mirror_path="ml-latest-small.zip",
                dest="ml-latest-small.zip",
                sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            )
        ],
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
    ),
    "amazon-beauty": BuiltinDataset(
        spec=DatasetSpec(name="amazon-beauty", format="sequence-lines", path="Beauty.txt"),
        files=[
            RawFile(
                mirror_path="amazon-beauty/Beauty.txt",
                dest="Beauty.txt",
                sha256="226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
            )
        ],
    ),
    "amazon-scientific": BuiltinDataset(
        spec=DatasetSpec(
            name="amazon-scientific",
            format="recbole-atomic",
            path=".",
            atomic_name="Scientific",
            catalogue=SCIENTIFIC_CATALOGUE,
        ),
        files=[
            RawFile(mirror_path=f"amazon-scientific/Scientific.{ext}", dest=f"Scientific.{ext}", sha256=sha)
            for ext, sha in {
                "item2index": "e689059637092e6dfaf6161ab71c5a3e54d96dc6a401a285c534cfc41516c022",
                "user2index": "417271f5886f37761b9e7e0da8e80e189aac034922491ade408101bc31270642",
                "text": "2989b83daab4624c7adc289d17baea0d09f85c20545e1635f7614926ae489167",
                "train.inter": "ad7a8cc23499cdbc3a0ba3650a438f946da433131e786b4ce4dfeae1c5590c5f",
                "valid.inter": "46b3f988b4f12ed05de4ba518e48744d7680eda42146138ffb416445d191cafb",
                "test.inter": "46077666a7e26f6f3a0b8929c15b66af83b4a21859fb0a6c25692403fd703611",
            }.items()
        ],
    ),
    "diginetica-sample": BuiltinDataset(
        spec=DatasetSpec(name="diginetica-sample", format="diginetica", path="sample_train-item-views.csv"),
        files=[
            RawFile(
                mirror_path="diginetica-sample/sample_train-item-views.csv",
                dest="sample_train-item-views.csv",
                sha256="98da96e05c87ef12b739e4bfd9bc7b4864106ee77371f1db9eb4413e3f78d37e",
            )
        ],
    ),
}


class DataUnavailableError(RuntimeError):
    """The dataset could not be found locally, in the mirror, or downloaded."""


def load_spec(path: str | Path) -> DatasetSpec:
    """Read a YAML dataset spec; relative paths in it start from the spec's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset spec {path} does not exist")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a dataset spec is a YAML mapping (name, format, path, ...)")
    try:
        spec = DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid dataset spec {path}:\n{exc}") from exc
    if spec.base_dir is None:
        spec = spec.model_copy(update={"base_dir": str(path.parent.resolve())})
    if spec.catalogue is not None and spec.catalogue.base_dir is None:
        catalogue = spec.catalogue.model_copy(update={"base_dir": str(path.parent.resolve())})
        spec = spec.model_copy(update={"catalogue": catalogue})
    return spec


def builtin_spec(name: str, raw_root: str | Path) -> DatasetSpec:
    """The spec of a built-in dataset, pointing at its pulled copy under ``raw_root/<name>``."""
    if name not in BUILTIN:
        raise ValueError(
            f"unknown dataset {name!r}; built-in datasets: {sorted(BUILTIN)} (or use a dataset spec)"
        )
    return BUILTIN[name].spec.model_copy(update={"base_dir": str(Path(raw_root) / name)})


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_hash(paths: list[Path]) -> str:
    """One sha256 over the given files (names and contents), order-independent."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda x: x.name):
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def spec_files(spec: DatasetSpec) -> list[Path]:
    """The files a spec reads (for hashing and DVC dependencies)."""
    root = spec.resolve(spec.path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    if spec.items is not None:
        files.append(spec.resolve(spec.items.path))
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise FileNotFoundError(f"dataset {spec.name!r}: missing files {missing or [str(root)]}")
    return files


def pull(name: str, raw_root: str | Path, mirror: str | None = None) -> Path:
    """Make data/raw/<name> hold the verified files of a built-in dataset; return that folder."""
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; built-in datasets: {sorted(BUILTIN)}")
    ds = BUILTIN[name]
    dest_dir = Path(raw_root) / name
    if dest_dir.is_dir() and all((dest_dir / f.dest).is_file() for f in ds.files):
        _verify(ds, dest_dir, where=f"existing copy {dest_dir}")
        return dest_dir
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    with tempfile.TemporaryDirectory(
        dir=Path(raw_root).parent if Path(raw_root).parent.exists() else None
    ) as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        if mirror:
            _copy_from_mirror(ds, Path(mirror), staging)
        elif ds.url:
            _download(ds, staging)
        else:
            raise DataUnavailableError(
                f"dataset {name!r} has no official download in this exact form; set {MIRROR_ENV} to a folder "
                f"holding {', '.join(f.mirror_path for f in ds.files)}"
            )
        _verify(ds, staging, where=f"mirror {mirror}" if mirror else f"download {ds.url}")
        if dest_dir.exists():
            raise FileExistsError(
                f"{dest_dir} exists but is incomplete; data/raw is immutable: remove it by hand"
            )
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), dest_dir)
    return dest_dir


def _copy_from_mirror(ds: BuiltinDataset, mirror: Path, staging: Path) -> None:
    missing = [f.mirror_path for f in ds.files if not (mirror / f.mirror_path).is_file()]
    if missing:
        raise DataUnavailableError(
            f"mirror {mirror} ({MIRROR_ENV}) lacks {missing} for dataset {ds.spec.name!r}"
        )
    for f in ds.files:
        shutil.copyfile(mirror / f.mirror_path, staging / f.dest)


def _download(ds: BuiltinDataset, staging: Path) -> None:
    assert ds.url is not None
    try:
        with urllib.request.urlopen(ds.url, timeout=60) as resp:  # noqa: S310 - fixed https URL
            payload = resp.read()
    except OSError as exc:
        raise DataUnavailableError(
            f"could not download {ds.url} ({exc}); offline? set {MIRROR_ENV} to a folder holding "
            f"{', '.join(f.mirror_path for f in ds.files)}"
        ) from exc
    if ds.url.endswith(".zip") and len(ds.files) == 1 and ds.files[0].dest.endswith(".zip"):
        (staging / ds.files[0].dest).write_bytes(payload)
        return
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        for f in ds.files:
            (staging / f.dest).write_bytes(zf.read(ds.archive_prefix + f.dest))


def _verify(ds: BuiltinDataset, folder: Path, where: str) -> None:
    for f in ds.files:
        got = sha256_file(folder / f.dest)
        if got != f.sha256:
            raise DataUnavailableError(
                f"{where}: {f.dest} has sha256 {got}, expected {f.sha256}; "
                "the file is not the published dataset"
            )
