"""What a run leaves in its output folder and prints at the end."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import resource
import sys
import traceback
from pathlib import Path

import torch

from lamaml_pl import __version__
from lamaml_pl.metrics import AccuracyLog
from lamaml_pl.plots import plot_accuracy_matrix, plot_task_curves, scenario_words

PRINT_MATRIX_UP_TO = 20  # tasks; larger matrices are only written to accuracy_matrix.csv

RESULTS_FILE = "results.json"
MATRIX_FILE = "accuracy_matrix.csv"
HEATMAP_FILE = "accuracy_matrix.png"
CURVES_FILE = "task_accuracy.png"
POPULATION_MANIFEST = "population.json"  # a population's folder: its members and their RA/BTI
TUNE_MANIFEST = "tune.json"  # a tuning run's folder (sweep=tune): its grid, scores, choice and test rows
MEMBERS_DIR = "members"  # a population's folder: one run folder per member


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def versions() -> dict[str, str]:
    import hydra
    import pytorch_lightning
    import torchmetrics

    return {
        "lamaml_pl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pytorch_lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "hydra": hydra.__version__,
    }


def float32_math() -> dict[str, str]:
    """How a GPU computes this process's float32 matmuls and convolutions (``trainer.tf32``):
    ieee, tf32 or bf16 (the CPU computes IEEE float32 either way)."""
    matmul = torch.backends.cuda.matmul.fp32_precision
    if matmul == "none":  # not set through the new API: torch's legacy setting decides
        matmul = {"highest": "ieee", "high": "tf32", "medium": "bf16"}[torch.get_float32_matmul_precision()]
    return {"matmul": matmul, "conv": torch.backends.cudnn.conv.fp32_precision}


def percent_rows(fractions: torch.Tensor) -> list:
    """Accuracies in percent, 4 decimals; entries not evaluated (NaN) become null in JSON."""
    percent = (100 * fractions).round(decimals=4)
    return (
        [None if v != v else v for v in percent.tolist()]
        if percent.dim() == 1
        else [[None if v != v else v for v in row] for row in percent.tolist()]
    )


def collect_results(
    algo: str,
    data: dict,
    seed: int,
    log: AccuracyLog,
    wall_time_s: float,
    device: str,
    status: str = "completed",
    val_log: AccuracyLog | None = None,
    task_il_log: AccuracyLog | None = None,
    class_il_loss: str | None = None,
) -> dict:
    """Everything results.json holds; accuracies in percent. The top-level metrics and matrix
    come from the test sets; ``validation`` holds the held-out split's, where there is one; a
    class-incremental run's ``task_il`` holds the same test sets scored among each task's
    classes only, and ``class_il_loss`` the outputs its cross-entropy ran over."""
    results = {
        "status": status,
        "algo": algo,
        "data": data["name"],
        "seed": seed,
        **rounded_metrics(log),
        "acc_matrix": percent_rows(log.matrix()),
        "baseline_row": percent_rows(log.baseline()),
        "eval_rows": {"tags": log.tags, "rows": percent_rows(torch.tensor(log.rows, dtype=torch.float64))},
        "units": "percent",
        "wall_time_s": round(wall_time_s, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "device": device,
        "num_threads": torch.get_num_threads(),
        "float32_math": float32_math(),
        "data_source": data["data_source"],
        "data_info": data,
        "versions": versions(),
        "matrix_from": "test",
    }
    if val_log is not None and val_log.rows:
        results["validation"] = {**rounded_metrics(val_log), "acc_matrix": percent_rows(val_log.matrix())}
    if task_il_log is not None and task_il_log.rows:  # class-incremental
        results["task_il"] = {**rounded_metrics(task_il_log), "acc_matrix": percent_rows(task_il_log.matrix())}
        results["class_il_loss"] = class_il_loss
        # FWT is undefined: a later task's classes cannot be predicted before they are trained
        for metrics in (results, results.get("validation", {})):
            metrics["fwt"] = None
    return results


def rounded_metrics(log: AccuracyLog) -> dict[str, float | None]:
    return {key: None if value is None else round(value, 4) for key, value in log.metrics().items()}


def write_atomically(path: Path, text: str) -> None:
    """Write under a temporary name, then rename: a crash never leaves a half-written file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_outputs(out_dir: Path, results: dict, log: AccuracyLog, plots: bool = True) -> None:
    """results.json, accuracy_matrix.csv and (``plots``) the heat map and task curves."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    R = log.matrix()
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["after_task"] + [f"task_{j}" for j in range(R.shape[1])])
    for i, row in enumerate(R.tolist()):
        writer.writerow([i] + [f"{100 * a:.2f}" for a in row])
    write_atomically(out_dir / MATRIX_FILE, table.getvalue())
    if not plots:
        return
    on = f"{results['algo']} on {results['data']}{scenario_words(results.get('data_info'))}"
    title = f"{on}, seed {results['seed']}: {metrics_line(results)}\ndata: {results['data_source']}"
    if len(R):
        plot_accuracy_matrix(R, out_dir / HEATMAP_FILE, title)
    plot_task_curves(log, out_dir / CURVES_FILE, title)


def metrics_line(results: dict, keys: tuple[str, ...] = ("ra", "bti")) -> str:
    """``RA 88.94  BTI 1.63``: the metrics in percent, n/a where a run has none (IID's BTI)."""
    return "  ".join(f"{key.upper()} {'n/a' if results[key] is None else format(results[key], '.2f')}" for key in keys)


def write_failure(out_dir: Path, err: BaseException) -> None:
    """results.json of a run that raised: its status and error, so a sweep's report can list it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    failure = {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
    }
    write_atomically(out_dir / RESULTS_FILE, json.dumps(failure, indent=2) + "\n")


def interrupted_line(out_dir: Path) -> str:
    """What an interrupted run prints, and the report lists beside it: the command that continues it."""
    return f"interrupted: continue with  python train.py resume=auto hydra.run.dir={out_dir}"


def format_summary(results: dict, out_dir: Path) -> str:
    """The accuracy matrix (small streams) and RA / BTI / LA / FWT, as printed after a run."""
    R = results["acc_matrix"]
    lines = [f"\n{results['algo']} on {results['data']}, seed {results['seed']} ({results['data_source']})"]
    if results["status"] != "completed":
        reason = results.get("error") or "stopped (Ctrl-C or a signal) before its last task"
        lines.append(f"{results['status'].upper()}: {reason}")
    if not R:
        lines.append("no task finished")
    elif len(R) <= PRINT_MATRIX_UP_TO:
        lines.append("accuracy matrix (%): row i = after task i, column j = task j")
        lines.append("      " + "".join(f"{j:>6d}" for j in range(len(R[0]))))
        lines += [
            f"{i:>4d}  " + "".join("     ." if a is None else f"{a:6.1f}" for a in row) for i, row in enumerate(R)
        ]
    else:
        lines.append(f"accuracy matrix: {len(R)}x{len(R[0])}, see {out_dir / MATRIX_FILE}")
    metrics = metrics_line(results, ("ra", "bti", "la", "fwt"))
    lines.append(
        f"{metrics}   ({results['wall_time_s']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB, {results['device']})"
    )
    if "ra_trained" in results:
        trained, total = results["tasks_trained"], len(results["acc_matrix"][0])
        mean = results["ra_trained"]
        lines.append(f"after task {trained} of {total}: mean accuracy over the {trained} tasks trained {mean:.2f}")
    if "task_il" in results:
        lines.append(
            f"task-IL view (each task's classes only): {metrics_line(results['task_il'], ('ra', 'bti', 'la'))}   "
            f"(class-IL loss over {'every output' if results['class_il_loss'] == 'all' else 'the seen classes'})"
        )
    lines.append(f"outputs: {out_dir}")
    return "\n".join(lines)


def format_population(summary: dict, out_dir: Path) -> str:
    """One line per member of a population: its values and RA / BTI."""
    lines = [f"\n{summary['algo']} on {summary['data']}: population of {len(summary['members'])}"]
    for m in summary["members"]:
        values = "  ".join(f"{k}={v}" for k, v in m["values"].items())
        metrics = metrics_line(m)
        lines.append(f"  {values:<40s} {metrics}  {'' if m['status'] == 'completed' else m['status'].upper()}")
    lines.append(f"({summary['wall_time_s']:.0f} s, peak RSS {summary['peak_rss_mb']:.0f} MB, {summary['device']})")
    lines.append(f"outputs: {out_dir / MEMBERS_DIR}/, {out_dir / POPULATION_MANIFEST}")
    return "\n".join(lines)
