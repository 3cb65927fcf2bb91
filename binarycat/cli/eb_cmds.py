"""``binarycat eb train | eb predict``: the eclipsing-binary classifier (CALNet) on TESS light curves."""

from __future__ import annotations

import json
from typing import Optional

import typer

from binarycat.cli.app import _open, app
from binarycat.cli.render import Bars, console, err_console

eb_app = typer.Typer(help="Eclipsing binaries in TESS light curves: train and run CALNet.",
                     no_args_is_help=True)
app.add_typer(eb_app, name="eb")


def _print_failures(failures) -> None:
    for lid, reason in failures.items[:10]:
        err_console.print(f"[yellow]skipped[/] {lid}: {reason}", highlight=False)
    if len(failures.items) > 10:
        err_console.print(f"[yellow]… and {len(failures.items) - 10} more light curves skipped[/]")


@eb_app.command("train")
def eb_train(
    ctx: typer.Context,
    epochs: int = typer.Option(30, min=1, help="Most epochs; early stopping on validation F1 of EBs."),
    batch_size: int = typer.Option(32, min=1),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    patience: int = typer.Option(15, help="Stop after this many epochs without a better validation F1."),
    target_recall: float = typer.Option(0.99, min=0.5, max=1.0,
                                        help="Validation recall of EBs the decision threshold must reach."),
    width: int = typer.Option(16, min=4, help="Channels of the first convolution (the rest scale with it)."),
    amplitude: bool = typer.Option(True, "--amplitude/--no-amplitude",
                                   help="Fuse the curve's depth and rise with the two branches "
                                        "(--no-amplitude: the published CALNet)."),
    seed: int = typer.Option(0, help="Torch seed."),
    split_seed: int = typer.Option(0, help="Seed of the 70/15/15 split by TIC."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Train CALNet on the labelled light curves (labels from `label import` of a tic_id,label file).

    Every sector of a star stays in one of the train/validation/test splits. The report is
    measured on the test split with the threshold chosen on the validation split.

    Example: [cyan]binarycat eb train --epochs 30[/]
    """
    from binarycat.eb_pipeline import train_eb
    from binarycat.model.eb_train import EBTrainConfig
    from binarycat.model.metrics import format_report

    config = EBTrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                           patience=patience, target_recall=target_recall, width=width, amplitude=amplitude,
                           seed=seed,
                           split_seed=split_seed)
    with _open(ctx) as cat, Bars() as bars:
        res, failures = train_eb(cat, config, device=device, progress=bars.factory("train"),
                                 prepare_progress=bars.factory("prepare"))
    _print_failures(failures)
    if fmt == "json":
        print(json.dumps({"model_id": res.model_id, "test": res.report, "threshold": res.threshold,
                          "seconds": res.seconds}, indent=1))
        return
    console.print(f"Model [bold]{res.model_id}[/] trained in {res.seconds:.0f}s ({res.n_train} train / "
                  f"{res.n_validation} validation / {res.n_test} test light curves), threshold "
                  f"{res.threshold:.3f}.")
    console.print(format_report(res.report), highlight=False)


@eb_app.command("predict")
def eb_predict(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model id \\[default: the newest CALNet]."),
    threshold: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                              help="P(EB) at or above which a star is flagged \\[default: the model's]."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
):
    """Predict every stored light curve; results go to eb_predictions and the TESS rows of binary_flags.

    Example: [cyan]binarycat eb predict && binarycat query candidate_triples[/]
    """
    from binarycat.eb_pipeline import predict_eb

    with _open(ctx) as cat, Bars() as bars:
        res, failures = predict_eb(cat, model, threshold=threshold, device=device,
                                   progress=bars.factory("prepare"))
    _print_failures(failures)
    console.print(f"{res.n_lightcurves} light curves predicted with {res.model_id} in {res.seconds:.1f}s: "
                  f"{res.n_eclipsing} eclipsing binaries.")


@eb_app.command("evaluate")
def eb_evaluate(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model id \\[default: the newest CALNet]."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda \\[default: cuda when present]."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
):
    """Measure CALNet on every labelled light curve outside its training and validation stars.

    That is its test split plus everything labelled since: a freshly simulated set, new
    sectors, a catalogue of known eclipsing binaries. Predictions are stored as by `eb predict`.

    Example: [cyan]binarycat label import new_truth.csv && binarycat eb evaluate[/]
    """
    from binarycat.eb_pipeline import evaluate_eb
    from binarycat.model.metrics import format_report

    with _open(ctx) as cat, Bars() as bars:
        ev = evaluate_eb(cat, model, device=device, progress=bars.factory("prepare"))
    if fmt == "json":
        print(json.dumps({"model_id": ev.model_id, "threshold": ev.threshold, "report": ev.report}, indent=1))
        return
    console.print(f"[bold]{ev.model_id}[/] on {len(ev.lightcurve_id)} held-out labelled light curves "
                  f"(threshold {ev.threshold:.3f}):")
    console.print(format_report(ev.report), highlight=False)
