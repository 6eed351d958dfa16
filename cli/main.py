"""The `sessionflow` command line (Typer): the top layer. It calls the stage layer (sessionflow/) and the
Prefect flows (flows/); neither of those imports it. The loop's commands (promote, monitor, forget, deploy,
keys) are in cli/loop.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="sessionflow: session-based and conversational recommendation, end to end.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Datasets: pull built-in datasets into data/raw.", no_args_is_help=True)
app.add_typer(data_app, name="data")
feedback_app = typer.Typer(
    help="Feedback from the service: snapshot it for retraining, or count it.", no_args_is_help=True
)
app.add_typer(feedback_app, name="feedback")

DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", help="Built-in dataset name (default: params.yaml).")
]
SpecOpt = Annotated[Path | None, typer.Option("--dataset-spec", help="YAML dataset spec for your own data.")]
ParamsOpt = Annotated[Path, typer.Option("--params", help="Settings file.")]
RootOpt = Annotated[Path, typer.Option("--root", help="Project folder (data/, artifacts/, mlflow.db).")]


def _env_defaults(root: Path) -> None:
    """Embedded defaults for local runs: project-local Prefect/BentoML homes, no telemetry."""
    root = root.resolve()
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # the embedded server migrates a fresh database on its first start; Prefect's 20 s is too short on a
    # busy 2-core machine (a fresh clone's `sessionflow pipeline` timed out at 20 s under load)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("BENTOML_HOME", str(root / ".bentoml"))
    # absolute: a bento's server runs from the bento's own folder, where a relative store is not found and
    # every worker failed its start-up forever ("Model ... is not found in BentoML store .bentoml/models")
    os.environ["BENTOML_HOME"] = str(Path(os.environ["BENTOML_HOME"]).expanduser().resolve())
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _overrides(dataset: str | None, spec: Path | None, models: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dataset and spec:
        raise typer.BadParameter("give --dataset or --dataset-spec, not both")
    if dataset:
        out["data.dataset"] = dataset
        out["data.dataset_spec"] = None
    if spec:
        out["data.dataset_spec"] = str(spec.resolve())
    if models:
        out["train.models"] = [m.strip() for m in models.split(",") if m.strip()]
    return out


def _settings(params: Path, root: Path, overrides: dict[str, Any]):
    from components.config import load_settings

    path = params if params.is_absolute() else root / params
    return load_settings(path, overrides)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@data_app.command("pull")
def data_pull(name: str, root: RootOpt = Path(".")) -> None:
    """Copy a built-in dataset into data/raw/NAME (from $SESSIONFLOW_DATA_MIRROR, else the official URL)."""
    from components.datasets import pull

    try:
        path = pull(name, root / "data" / "raw")
    except _refusals() as exc:
        _fail(exc)
    typer.echo(f"{name}: verified files in {path}")


@feedback_app.command("export")
def feedback_export_command(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Snapshot the feedback log into data/feedback/<dataset>/events.parquet (always written; the next
    ingest merges its positive events). The log: $SESSIONFLOW_FEEDBACK_URL, $SESSIONFLOW_FEEDBACK_DB, else
    <root>/data/feedback/feedback.db."""
    typer.echo(_stage("feedback", dataset, dataset_spec, params, root).model_dump_json(indent=2))


@feedback_app.command("stats")
def feedback_stats_command(
    url: Annotated[
        str | None, typer.Option(help="Feedback log URL (default: the environment, else the project's).")
    ] = None,
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Counts of the live feedback log (events, negatives, users, sessions) and of the dataset's snapshot."""
    import pandas as pd

    from components.feedback_log import default_feedback_url, feedback_stats, read_feedback, redact_url
    from sessionflow import stages

    source = url or default_feedback_url(root.resolve())
    try:
        live = feedback_stats(read_feedback(source))
        settings = _settings(params, root, _overrides(dataset, dataset_spec))
        snapshot_path = stages.paths_for(settings, root.resolve()).feedback_snapshot
    except (ValueError, RuntimeError, OSError) as exc:
        _fail(exc)
    snapshot = (
        {"path": str(snapshot_path), **feedback_stats(pd.read_parquet(snapshot_path))}
        if snapshot_path.is_file()
        else {"path": str(snapshot_path), "exists": False}
    )
    typer.echo(json.dumps({"log": {"url": redact_url(source), **live}, "snapshot": snapshot}, indent=2))


def _stage(stage: str, dataset: str | None, spec: Path | None, params: Path, root: Path) -> Any:
    from sessionflow import stages

    _env_defaults(root)
    settings = _settings(params, root, _overrides(dataset, spec))
    runner = {
        "pull": stages.run_pull,
        "feedback": stages.run_feedback_export,
        "catalogue": stages.run_catalogue_export,
        "ingest": stages.run_ingest,
        "validate": stages.run_validate,
        "featurize": stages.run_featurize,
    }[stage]
    try:
        return runner(settings, root.resolve())
    except Exception as exc:  # noqa: BLE001 - report any refusal in one line, never a traceback
        if isinstance(exc, _refusals()):
            _fail(exc)
        raise


def _refusals() -> tuple[type[Exception], ...]:
    """Errors that mean "this input is refused" (bad data, wrong checksum, missing file): one line each."""
    from components.datasets import DataUnavailableError
    from components.validate import DataValidationError

    return (
        DataValidationError,
        DataUnavailableError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        OSError,
    )


@app.command()
def ingest(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Read the raw dataset into canonical tables (data/interim/<dataset>)."""
    _stage("pull", dataset, dataset_spec, params, root)
    typer.echo(_stage("ingest", dataset, dataset_spec, params, root).model_dump_json(indent=2))


@app.command()
def validate(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Validate with Great Expectations; rejected rows go to data/quarantine; stops when over threshold."""
    from sessionflow import stages

    settings = _settings(params, root, _overrides(dataset, dataset_spec))
    _stage("pull", dataset, dataset_spec, params, root)
    try:
        current = stages.ingest_is_current(settings, root.resolve())
    except _refusals() as exc:
        _fail(exc)
    if not current:  # the source files, the settings or the ingest code changed since the last ingest
        _stage("ingest", dataset, dataset_spec, params, root)
    info = _stage("validate", dataset, dataset_spec, params, root)
    typer.echo(info.summary)


@app.command()
def featurize(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Splits, item vocabulary, sequences and item text embeddings (data/processed/<dataset>/features)."""
    typer.echo(_stage("featurize", dataset, dataset_spec, params, root).model_dump_json(indent=2))


@app.command()
def pipeline(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated candidates.")] = None,
    package: Annotated[bool, typer.Option(help="Import the champion and build a bento.")] = True,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """The whole chain as a Prefect flow: data -> validation -> features -> candidates -> MLflow -> bento."""
    _env_defaults(root)
    from flows.pipeline import training_pipeline

    summary = training_pipeline(
        params_file=str(params),
        root=str(root.resolve()),
        overrides=_overrides(dataset, dataset_spec, models),
        package=package,
    )
    typer.echo(summary.model_dump_json(indent=2))


@app.command()
def search(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    model: Annotated[str | None, typer.Option(help="Model to search (default: search.model).")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Trials (default: search.n_trials).")] = None,
    runner: Annotated[
        str | None, typer.Option(help="serial | threads | dask (default: search.runner).")
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Threads / Dask workers.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Hyperparameter search (Optuna TPE on the validation metric): trials on the configured task runner
    (a local Dask cluster by default), each an MLflow run under one search run."""
    _env_defaults(root)
    from flows.search import run_search

    overrides = _overrides(dataset, dataset_spec)
    for key, value in (("model", model), ("n_trials", trials), ("runner", runner), ("workers", workers)):
        if value is not None:
            overrides[f"search.{key}"] = value
    result = run_search(params_file=str(params), root=str(root.resolve()), overrides=overrides)
    typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def train(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated candidates.")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
    output: Annotated[Path, typer.Option(help="Metrics JSON.")] = Path("artifacts/metrics.json"),
) -> None:
    """Train and evaluate candidates on the featurized data; write bundles to artifacts/models/<model>."""
    from sessionflow.benchmark import run_candidates

    _env_defaults(root)
    settings = _settings(params, root, _overrides(dataset, dataset_spec, models))
    try:
        results = run_candidates(settings, root.resolve(), bundles_dir=root / "artifacts" / "models")
    except FileNotFoundError as exc:  # no features yet: one line, never a traceback
        _fail(exc)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    typer.echo(json.dumps(results, indent=2))


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A model bundle directory.")],
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Evaluate a saved bundle on the current test split (full ranking)."""
    from sessionflow import stages

    settings = _settings(params, root, _overrides(dataset, dataset_spec))
    typer.echo(json.dumps(stages.evaluate_bundle(settings, root.resolve(), bundle), indent=2))


@app.command()
def benchmark(
    dataset: DatasetOpt = None,
    dataset_spec: SpecOpt = None,
    models: Annotated[str, typer.Option(help="Comma-separated models.")] = "popularity,itemknn,ease,sasrec",
    output: Annotated[Path, typer.Option(help="Results JSON.")] = Path("results/benchmark.json"),
    repeat: Annotated[
        int, typer.Option(min=1, help="Train each model this many times; reports whether metrics repeat.")
    ] = 1,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Train and evaluate models under the configured protocol; write per-model metrics, timings and peak
    memory (RSS; max allocated on GPU)."""
    from sessionflow.benchmark import benchmark as run_benchmark

    _env_defaults(root)
    settings = _settings(params, root, _overrides(dataset, dataset_spec, models))
    try:
        result = run_benchmark(settings, root.resolve(), repeat=repeat)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    typer.echo(json.dumps(result, indent=2))


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="HTTP port (default: params.yaml serve.port).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Serve the built champion bento (exact tag recorded by the last pipeline run).

    Checks first, in seconds: the model's files against the checksums written at packaging, and the
    deployment settings in the environment (SESSIONFLOW_API_KEY, ...); either problem is one line and exit
    code 1. Then this process becomes the server (exec), so a SIGTERM to it stops everything."""
    from components.catalogue_overlay import OVERLAY_ENV, default_overlay_path
    from components.integrity import BundleIntegrityError
    from components.serving_settings import API_KEY_ENV, GuardSettings, service_workers
    from flows.package import recorded_bento, serve_command, verify_packaged_model

    _env_defaults(root)
    settings = _settings(params, root, {})
    try:
        record = recorded_bento(root.resolve())
        tag, model_tag = record["bento_tag"], record["model_tag"]
    except (FileNotFoundError, KeyError) as exc:
        _fail(RuntimeError(f"no built bento recorded ({exc}); run `sessionflow pipeline` first"))
    try:
        verify_packaged_model(model_tag)
        guard = GuardSettings.from_env()
        workers = service_workers()
    except (BundleIntegrityError, LookupError) as exc:
        _fail(RuntimeError(f"model {model_tag} refused: {exc}"))
    except ValueError as exc:
        _fail(exc)
    # feedback and catalogue changes from the served bento land where the retraining flow reads them
    os.environ.setdefault(
        "SESSIONFLOW_FEEDBACK_DB", str(root.resolve() / "data" / "feedback" / "feedback.db")
    )
    os.environ.setdefault(OVERLAY_ENV, str(default_overlay_path(root.resolve())))
    # one BLAS/torch thread per worker: a chat turn is 10-40x slower with contended threads (docs/results)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    cmd = serve_command(tag, port or settings.serve.port)
    typer.echo(f"serving {tag}: {' '.join(cmd)}")
    typer.echo(f"settings: {guard.describe()}; {workers} HTTP worker(s)")
    if guard.api_key is None:
        typer.secho(
            f"warning: {API_KEY_ENV} is not set: /feedback and /reset are open to anyone who can reach "
            "this port",
            fg=typer.colors.YELLOW,
            err=True,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, os.environ.copy())  # this process becomes `bentoml serve`: signals reach it


def main() -> None:  # pragma: no cover
    sys.exit(app())


@app.command()
def schedule(
    cron: Annotated[str | None, typer.Option(help="Retraining cron (default: prefect.yaml).")] = None,
    monitor_cron: Annotated[str | None, typer.Option(help="Monitoring cron (default: prefect.yaml).")] = None,
    root: RootOpt = Path("."),
) -> None:
    """Run retraining and monitoring on their cron schedules (long-lived process; Ctrl-C stops)."""
    from flows.schedule import serve_schedules

    _env_defaults(root)
    serve_schedules(str(root.resolve()), cron, monitor_cron)


@app.command()
def package(params: ParamsOpt = Path("params.yaml"), root: RootOpt = Path(".")) -> None:
    """Import the MLflow champion into the BentoML store (exact tag), build its bento with params.yaml's
    serve and conversation sections, and release it (running services switch to it)."""
    _env_defaults(root)
    from components.integrity import BundleIntegrityError
    from flows.package import package_champion
    from flows.tracking import configure_tracking

    settings = _settings(params, root, {})
    configure_tracking(root.resolve())
    try:
        release = package_champion(settings, root.resolve())
    except (BundleIntegrityError, LookupError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc)
    typer.echo(release.model_dump_json(indent=2))


@app.command()
def chat(
    url: Annotated[
        str | None, typer.Option(help="A running service (default: localhost at serve.port).")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="A model bundle folder: chat in process, no server.")
    ] = None,
    k: Annotated[int, typer.Option(min=1, max=100, help="Items per answer.")] = 10,
    session_id: Annotated[str | None, typer.Option(help="Session id (default: a new one).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Talk to the recommender in the terminal, against a running service or a model bundle."""
    from sessionflow.chat import run_chat

    _env_defaults(root)
    settings = _settings(params, root, {})
    if url is None and bundle is None:
        url = f"http://localhost:{settings.serve.port}"
    code = run_chat(
        url=url,
        bundle_dir=bundle,
        session_id=session_id,
        k=k,
        config=settings.conversation,
        embedding_cache=root.resolve() / ".cache" / "embeddings",
    )
    raise typer.Exit(code)


@app.command("evaluate-chat")
def evaluate_chat_command(
    bundle: Annotated[Path | None, typer.Argument(help="A model bundle folder (in process).")] = None,
    url: Annotated[str | None, typer.Option(help="Or a running service: POST {url}/chat.")] = None,
    corpus: Annotated[str, typer.Option(help="Dialogue corpus in the data mirror.")] = "inspired",
    split: Annotated[str, typer.Option(help="dev (tune on it) or test (report it).")] = "test",
    dialogues_file: Annotated[Path | None, typer.Option(help="An INSPIRED-format tsv instead.")] = None,
    ks: Annotated[str, typer.Option(help="Comma-separated K of Recall@K.")] = "1,10,50",
    output: Annotated[Path, typer.Option(help="JSON report.")] = Path("results/chat_eval.json"),
    params: ParamsOpt = Path("params.yaml"),
    root: RootOpt = Path("."),
) -> None:
    """Recall@K of the conversation on real dialogues: the history before each recommender turn goes in,
    the movie that turn names must come out (titles mapped to the catalogue; the mapping rate is reported)."""
    from sessionflow.chat_eval import evaluate_chat

    _env_defaults(root)
    settings = _settings(params, root, {})
    try:
        k_values = [int(k) for k in ks.split(",") if k.strip()]
        report = evaluate_chat(
            bundle, url, corpus, split, dialogues_file, k_values, settings.conversation, output=output
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(exc)
    summary = {
        k: report[k] for k in ("source", "dialogues", "recall", "n_targets", "mapping_rate", "seconds")
    }
    typer.echo(json.dumps(summary, indent=2))


from cli.items import register as register_items  # noqa: E402 - `sessionflow items ...`
from cli.loop import register  # noqa: E402 - the loop's commands attach to this app

register(app)
register_items(app)
