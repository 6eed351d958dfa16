"""`sessionflow items`: change the catalogue of a running service (add, retire, list) and snapshot those
changes for retraining (export)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

items_app = typer.Typer(
    help="Catalogue changes between retrains: add or retire items in a running service, list them, export "
    "them for the next retrain.",
    no_args_is_help=True,
)
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="The running service (default: localhost at serve.port).")
]
ParamsOpt = Annotated[Path, typer.Option("--params", help="Settings file.")]
RootOpt = Annotated[Path, typer.Option("--root", help="Project folder (data/, artifacts/, mlflow.db).")]


def _url(url: str | None, params: Path, root: Path) -> str:
    from cli.main import _settings

    return url or f"http://localhost:{_settings(params, root, {}).serve.port}"


def _report(totals) -> None:  # noqa: ANN001 - sessionflow.items.Totals
    typer.echo(json.dumps(totals.summary(), indent=2))
    if totals.rejected:
        typer.secho(
            f"{len(totals.rejected)} rejected (row, field and reason above; the service keeps them in its "
            "catalogue folder's rejected.jsonl); the other changes are stored and served",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(1)


@items_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="Items: .csv/.tsv, .json, .jsonl or .parquet.")],
    url: UrlOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Add items to a running service's catalogue (recommendable at once, kept across restarts and picked
    up by the next retrain). Columns: item_id, title, text, categories ('|'-separated), year, and
    attributes.<key> for the catalogue's other facets (GET /catalogue lists their columns). An id the
    catalogue has is re-described; a retired one is served again. Exit code 1 when any row is refused."""
    from cli.main import _fail
    from sessionflow.items import ItemsFileError, ServiceError, read_items_file, send_items

    try:
        rows = read_items_file(file)
        if not rows:
            raise ItemsFileError(f"{file}: no items in it")
        totals = send_items(_url(url, params, root), rows)
    except (ItemsFileError, ServiceError) as exc:
        _fail(exc)
    _report(totals)


@items_app.command("retire")
def retire(
    item_ids: Annotated[list[str] | None, typer.Argument(help="Item ids to retire.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A file of ids, one per line.")] = None,
    url: UrlOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Retire items: a running service never recommends them again (across reloads and restarts, until
    they are added again) and the next retrain drops them. Exit code 1 when an id is unknown."""
    from cli.main import _fail
    from sessionflow.items import ServiceError, retire_items

    ids = list(item_ids or [])
    if file is not None:
        try:
            ids += [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            _fail(ValueError(f"{file}: cannot be read ({exc})"))
    if not ids:
        _fail(ValueError("give item ids, or --file with one id per line"))
    try:
        totals = retire_items(_url(url, params, root), ids)
    except ServiceError as exc:
        _fail(exc)
    _report(totals)


@items_app.command("list")
def list_command(
    url: UrlOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """The catalogue changes a running service holds: added rows, retired ids, revision, what it serves."""
    from cli.main import _fail
    from sessionflow.items import ServiceError, list_items

    try:
        typer.echo(json.dumps(list_items(_url(url, params, root)), indent=2))
    except ServiceError as exc:
        _fail(exc)


@items_app.command("export")
def export(
    dataset: Annotated[str | None, typer.Option("--dataset", help="Built-in dataset name.")] = None,
    dataset_spec: Annotated[Path | None, typer.Option("--dataset-spec", help="YAML dataset spec.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Snapshot the catalogue changes ($SESSIONFLOW_CATALOGUE_OVERLAY, else data/catalogue/overlay.json)
    into data/catalogue/<dataset>/changes.parquet (always written; the next ingest folds it in)."""
    from cli.main import _stage

    typer.echo(_stage("catalogue", dataset, dataset_spec, params, root).model_dump_json(indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(items_app, name="items")
