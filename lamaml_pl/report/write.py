"""The report's tables (Markdown, CSV) and figures."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from lamaml_pl.metrics import AccuracyLog
from lamaml_pl.plots import plot_accuracy_matrix, plot_task_curves, scenario_words, seen_task_mean
from lamaml_pl.report.aggregate import Group
from lamaml_pl.report.collect import Run

STD_NOTE = "± is the sample standard deviation (ddof = 1) over seeds; paper values are mean ± std as published."
COLUMNS = [
    "benchmark",
    "tasks",
    "source",
    "method",
    "n",
    "failed",
    "ra_mean",
    "ra_std",
    "paper_ra",
    "delta_ra",
    "bti_mean",
    "bti_std",
    "paper_bti",
    "delta_bti",
    "la_mean",
    "la_std",
    "task_il_ra_mean",
    "task_il_ra_std",
    "task_il_bti_mean",
    "task_il_bti_std",
    "wall_s_mean",
    "wall_s_std",
]


def table_rows(groups: list[Group]) -> list[dict]:
    rows = []
    for g in groups:
        (ra, ra_sd), (bti, bti_sd), (la, la_sd), (til_ra, til_ra_sd), (til_bti, til_bti_sd), (wall, wall_sd) = (
            g.stat(k) for k in ("ra", "bti", "la", "task_il.ra", "task_il.bti", "wall_time_s")
        )
        paper = g.paper
        info = g.runs[0].results.get("data_info") or {}
        rows.append(
            {
                "benchmark": g.data,
                "method": g.label,
                "tasks": info.get("n_tasks"),
                "source": str(g.runs[0].results.get("data_source", "?")).split(":", 1)[0],
                "n": len(g.completed),
                "failed": len(g.runs) - len(g.completed),
                "ra_mean": ra,
                "ra_std": ra_sd,
                "paper_ra": paper[0] if paper else None,
                "delta_ra": _delta(ra, paper[0] if paper else None),
                "bti_mean": bti,
                "bti_std": bti_sd,
                "paper_bti": paper[2] if paper else None,
                "delta_bti": _delta(bti, paper[2] if paper else None),
                "la_mean": la,
                "la_std": la_sd,
                "task_il_ra_mean": til_ra,
                "task_il_ra_std": til_ra_sd,
                "task_il_bti_mean": til_bti,
                "task_il_bti_std": til_bti_sd,
                "wall_s_mean": wall,
                "wall_s_std": wall_sd,
            }
        )
    return rows


def _delta(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None else ours - theirs


def pm(mean, std) -> str:
    """``mean ± std`` to two decimals; "—" where there is no mean."""
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _num(value, signed=False) -> str:
    return "—" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


def markdown(groups: list[Group], refused: list[Run] | None = None) -> str:
    """The table, then the runs left out of it and why (``refused``: runs that failed before
    training, a setting refused: no row of their own)."""
    rows = table_rows(groups)
    # class-incremental runs: their task-IL view (each task's classes only) beside the class-IL numbers
    task_il = any(row["task_il_ra_mean"] is not None for row in rows)
    extra_head, extra_rule = (" task-IL RA | task-IL BTI |", "---|---|") if task_il else ("", "")
    lines = [
        f"RA, BTI, LA in percent. {STD_NOTE}"
        + (" Task-IL: a class-incremental run's test sets scored among each task's classes only." if task_il else ""),
        "",
        f"| benchmark | tasks | data | method | n | RA | paper RA | Δ RA | BTI | paper BTI | Δ BTI | LA |{extra_head}"
        " wall (s) |",
        f"|---|---|---|---|---|---|---|---|---|---|---|---|{extra_rule}---|",
    ]
    for row, g in zip(rows, groups):
        paper = g.paper
        n = f"{row['n']}" + (f" ({row['failed']} not completed)" if row["failed"] else "")
        til_ra, til_bti = (
            pm(row["task_il_ra_mean"], row["task_il_ra_std"]),
            pm(row["task_il_bti_mean"], row["task_il_bti_std"]),
        )
        extra = f" {til_ra} | {til_bti} |" if task_il else ""
        lines.append(
            f"| {row['benchmark']} | {row['tasks'] or '?'} | {row['source']} | {row['method']} | {n} "
            f"| {pm(row['ra_mean'], row['ra_std'])} "
            f"| {pm(paper[0], paper[1]) if paper else '—'} | {_num(row['delta_ra'], True)} "
            f"| {pm(row['bti_mean'], row['bti_std'])} | {pm(paper[2], paper[3]) if paper else '—'} "
            f"| {_num(row['delta_bti'], True)} | {pm(row['la_mean'], row['la_std'])} |{extra}"
            f" {pm(row['wall_s_mean'], row['wall_s_std'])} |"
        )
    if any("population" in r.results for g in groups for r in g.runs):
        lines += ["", "A population member's wall time is the population's divided among its members."]
    duplicates = [r for g in groups for r in g.duplicates]
    if duplicates:
        lines += ["", "Runs left out as duplicates (the same settings and seed as a run kept, the newest completed):"]
        lines += ["", *(f"- `{r.folder}`" for r in duplicates)]
    failed = [r for g in groups for r in g.runs if r.failed]
    if failed:
        lines += ["", "Runs left out of the means (failed, diverged or interrupted):", ""]
        lines += [f"- `{r.folder}`: {r.why_not_completed}" for r in failed]
    if refused:
        lines += ["", f"{len(refused)} runs failed before training (a setting refused), no row of their own:", ""]
        lines += [f"- `{r.folder}`: {r.why_not_completed}" for r in refused]
    return "\n".join(lines) + "\n"


def write_csv(groups: list[Group], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table_rows(groups))


def slug(text: str) -> str:
    """A file name for ``text``: its safe characters, at most SLUG_LENGTH of them (then a short hash
    of the whole, so that long labels stay apart)."""
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")
    if len(name) <= SLUG_LENGTH:
        return name
    return f"{name[: SLUG_LENGTH - 9]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


SLUG_LENGTH = 60


def plot_group_matrices(groups: list[Group], out_dir: Path) -> None:
    """Per group: the mean accuracy matrix and the mean per-task accuracy over the stream."""
    for g in groups:
        done = [r for r in g.completed if "acc_matrix" in r.results]
        if not done:
            continue
        name = slug(f"{g.data}_{g.label}")
        ra, bti = (g.stat(key) for key in ("ra", "bti"))
        title = (
            f"{g.label} on {g.data}{scenario_words(done[0].results.get('data_info'))}, mean of {len(done)}: "
            f"RA {pm(*ra)}, BTI {pm(*bti)}\ndata: {done[0].results.get('data_source', 'unknown')}"
        )
        R = as_tensor([r.results["acc_matrix"] for r in done]).mean(0) / 100
        plot_accuracy_matrix(R, out_dir / f"matrix_{name}.png", title)
        rows = as_tensor([r.results["eval_rows"]["rows"] for r in done]).mean(0) / 100
        log = AccuracyLog(rows.shape[1])
        for row, tag in zip(rows, done[0].results["eval_rows"]["tags"]):
            log.append(row, tag)
        plot_task_curves(log, out_dir / f"tasks_{name}.png", title)


def plot_methods(groups: list[Group], out_dir: Path) -> list[Path]:
    """Per benchmark (and scenario), the methods side by side: RA as mean ± sample std over
    seeds, and the mean accuracy over the tasks seen so far after each task (each group's mean
    matrix). Returns the figures written (``methods_<benchmark>.png``)."""
    by_benchmark: dict[str, list[Group]] = {}
    for g in groups:
        if g.stat("ra")[0] is not None:
            info = next((r.results.get("data_info") for r in g.completed), None)
            by_benchmark.setdefault(f"{g.data}{scenario_words(info)}", []).append(g)
    written = []
    for benchmark, members in sorted(by_benchmark.items()):
        fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 1.3]})
        means, stds = zip(*(g.stat("ra") for g in members))
        colours = plt.cm.tab10(range(len(members)))
        bars.bar(range(len(members)), means, yerr=[s or 0 for s in stds], capsize=3, color=colours)
        bars.set_xticks(range(len(members)), [g.label for g in members], rotation=40, ha="right", fontsize=7)
        bars.set_ylabel("RA (%)")
        bars.set_title("retained accuracy (mean ± sample std over seeds)", fontsize=9)
        for g, colour in zip(members, colours):
            matrices = [r.results["acc_matrix"] for r in g.completed if r.results.get("acc_matrix")]
            if not matrices or len(matrices[0]) < 2:  # the joint IID oracle has one row: a bar only
                continue
            log = AccuracyLog(len(matrices[0][0]))
            for k, row in enumerate(as_tensor(matrices).nanmean(0) / 100):
                log.append(row, k)
            seen = [mean for _, mean in seen_task_mean(log)]
            curves.plot(range(1, len(seen) + 1), seen, marker="o", markersize=3, color=colour, label=g.label)
        curves.set_xlabel("after training task")
        curves.set_ylabel("mean accuracy over the tasks seen (%)")
        curves.xaxis.set_major_locator(MaxNLocator(integer=True))
        curves.set_title("learning curve (mean matrix of the seeds)", fontsize=9)
        if curves.get_legend_handles_labels()[0]:
            curves.legend(fontsize=7)
        fig.suptitle(benchmark, fontsize=10)
        fig.tight_layout()
        path = out_dir / f"methods_{slug(benchmark)}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def plot_wall_time(groups: list[Group], path: Path) -> None:
    """Wall time per method and benchmark (the paper's MER vs La-MAML timing comparison)."""
    stats = [(f"{g.label}\n{g.data}", *g.stat("wall_time_s")) for g in groups if g.stat("wall_time_s")[0] is not None]
    if not stats:
        return
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(stats)), 4))
    labels, means, stds = zip(*stats)
    ax.bar(range(len(stats)), means, yerr=[s or 0 for s in stds], capsize=3, color="tab:blue")
    ax.set_xticks(range(len(stats)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("wall time per run (s)")
    ax.set_title("Wall time (mean ± sample std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_lr_robustness(groups: list[Group], path: Path, key: str = "algo.alpha_init") -> bool:
    """RA against the initial inner learning rate α₀, one line per method and benchmark."""
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for g in groups:
        if key not in g.varying or g.stat("ra")[0] is None:
            continue
        others = ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in sorted(g.varying.items()) if k != key)
        name = f"{g.algo} on {g.data}" + (f" ({others})" if others else "")
        mean, std = g.stat("ra")
        lines.setdefault(name, []).append((float(g.varying[key]), mean, std or 0.0))
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in sorted(lines.items()):
        xs, ys, errs = zip(*sorted(points))
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("alpha_init (α₀)")
    ax.set_ylabel("RA (%)")
    ax.set_title("Learning-rate robustness (mean ± sample std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def as_tensor(nested: list) -> torch.Tensor:
    """Matrices from results.json, entries not evaluated (null) as NaN."""

    def entry(v):
        return [entry(u) for u in v] if isinstance(v, list) else (float("nan") if v is None else v)

    return torch.tensor(entry(nested), dtype=torch.float64)
