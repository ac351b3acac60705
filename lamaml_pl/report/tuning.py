"""The report of a tuning run (``sweep=tune``): ``tuning.md`` and ``tuning.png`` beside its ``tune.json``.

The grid's validation scores as a table and, per pair of axes, a heatmap of the best validation RA
over the other axes; the chosen values beside the composed (published) ones; the test RA ± sample
std of the chosen values beside the published values' row and the paper's number.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lamaml_pl.plots import set_title
from lamaml_pl.report.aggregate import mean_std
from lamaml_pl.report.paper import published as paper_numbers
from lamaml_pl.report.write import pm


def seeds_stat(values: list) -> tuple[float | None, float | None, int]:
    """Mean and sample std (:func:`mean_std`) of the seeds that completed, and their count."""
    return (*mean_std(values), sum(v is not None for v in values))


def values_text(values: dict) -> str:
    return ", ".join(f"{axis}={value}" for axis, value in values.items())


def test_rows(record: dict) -> list[tuple[str, dict | None, tuple, tuple]]:
    """(label, values, (RA mean, std, n), (BTI mean, std, n)) of each test stage run."""
    stages = record.get("test", {})
    rows = []
    for stage, label, values in (("test", "chosen", record["chosen"]), ("published", "composed", record["published"])):
        if stage in stages:
            rows.append((label, values, seeds_stat(stages[stage]["ra"]), seeds_stat(stages[stage]["bti"])))
    if rows and "published" not in stages and record["chosen"] == record["published"]:  # one row is both
        rows[0] = ("chosen = composed", *rows[0][1:])
    return rows


def paper_row(record: dict) -> tuple | None:
    """The paper's numbers, where the test stage followed its protocol."""
    if not record.get("paper_protocol"):
        return None
    return paper_numbers(record["algo"], record["data"], record.get("epochs_per_task"))


def markdown(record: dict) -> str:
    grid, chosen, published = record["grid"], record["chosen"], record["published"]
    lines = [
        f"# Tuning {record['algo']} on {record['data']}",
        "",
        f"Grid: {' x '.join(f'{a} {v}' for a, v in grid.items())}; search seed(s) {record['search_seeds']}, "
        f"scored on the validation split ({record['validation']:g} of the training data held out).",
        f"Rule: {record['rule']}.",
        "",
        "| axis | chosen | composed (published where a preset applies) |",
        "|---|---|---|",
        *(f"| {axis} | {chosen[axis]} | {published[axis]} |" for axis in grid),
    ]
    if "test" in record:
        paper = paper_row(record)
        lines += [
            "",
            f"## Test split, seeds {record['test_seeds']}",
            "",
            "RA and BTI in percent, mean ± sample std (ddof = 1) over the seeds that completed.",
            "",
            "| values | n | RA | BTI |",
            "|---|---|---|---|",
        ]
        for label, values, ra, bti in test_rows(record):
            lines.append(f"| {label}: {values_text(values)} | {ra[2]} | {pm(*ra[:2])} | {pm(*bti[:2])} |")
        if paper is not None:
            lines.append(f"| the paper | | {pm(*paper[:2])} | {pm(*paper[2:])} |")
    lines += ["", "## Grid on the validation split", "", f"| {' | '.join(grid)} | seeds | val RA | val BTI |"]
    lines.append("|" + "---|" * (len(grid) + 3))
    for row in sorted(record["scores"], key=lambda r: -1e9 if r["ra"] is None else -r["ra"]):
        mark = " (chosen)" if row["values"] == chosen else ""
        cells = [str(row["values"][axis]) for axis in grid]
        ra = "diverged" if row["ra"] is None else f"{row['ra']:.2f}{mark}"
        bti = "—" if row["bti"] is None else f"{row['bti']:.2f}"
        lines.append(f"| {' | '.join(cells)} | {row['seeds']} | {ra} | {bti} |")
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in record["stages"].items())
    lines += ["", f"Wall time: {stages}.", ""]
    return "\n".join(lines)


def best_over_others(record: dict, axes: tuple[str, ...]) -> dict[tuple, float]:
    """Per combination of ``axes``' values: the best validation RA over the other axes."""
    best: dict[tuple, float] = {}
    for row in record["scores"]:
        if row["ra"] is not None:
            key = tuple(row["values"][a] for a in axes)
            best[key] = max(best.get(key, float("-inf")), row["ra"])
    return best


def plot(record: dict, path: Path) -> None:
    """A heatmap per pair of axes (a curve for a one-axis grid) and the test rows as bars."""
    grid = record["grid"]
    varied = [axis for axis, values in grid.items() if len(values) > 1] or list(grid)[:1]
    pairs = list(itertools.combinations(varied, 2)) or [tuple(varied)]
    panels = len(pairs) + ("test" in record)
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        best = best_over_others(record, pair)
        if len(pair) == 1:
            xs = grid[pair[0]]
            ax.plot(range(len(xs)), [best.get((x,), float("nan")) for x in xs], marker="o")
            ax.set_xticks(range(len(xs)), [str(x) for x in xs])
            ax.set_xlabel(pair[0])
            ax.set_ylabel("validation RA (%)")
            set_title(ax, "validation RA")
            continue
        rows, cols = grid[pair[0]], grid[pair[1]]
        cells = [[best.get((r, c), float("nan")) for c in cols] for r in rows]
        image = ax.imshow(cells, cmap="viridis", aspect="auto")
        finite = [v for row in cells for v in row if v == v]
        middle = (min(finite) + max(finite)) / 2 if finite else 0
        for i, j in itertools.product(range(len(rows)), range(len(cols))):
            value = cells[i][j]
            text = "—" if value != value else f"{value:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if value > middle else "white")
        ax.set_xticks(range(len(cols)), [str(c) for c in cols])
        ax.set_yticks(range(len(rows)), [str(r) for r in rows])
        ax.set_xlabel(pair[1])
        ax.set_ylabel(pair[0])
        chosen = record["chosen"]
        ax.scatter(
            [cols.index(chosen[pair[1]])],
            [rows.index(chosen[pair[0]])],
            marker="s",
            s=600,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
        )
        fig.colorbar(image, ax=ax, fraction=0.046)
        others = " (best over the other axes)" if len(varied) > 2 else ""
        set_title(ax, f"validation RA{others}; chosen: red")
    if "test" in record:
        ax = axes[0][-1]
        rows = test_rows(record)
        labels = [label for label, *_ in rows]
        means = [ra[0] for _, _, ra, _ in rows]
        stds = [ra[1] or 0 for _, _, ra, _ in rows]
        paper = paper_row(record)
        if paper is not None:
            labels.append("the paper")
            means.append(paper[0])
            stds.append(paper[1] or 0)
        ax.bar(
            range(len(labels)),
            [m if m is not None else 0 for m in means],
            yerr=stds,
            capsize=4,
            color=["tab:green", "tab:blue", "tab:gray"][: len(labels)],
        )
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        low = min((m - s for m, s in zip(means, stds) if m is not None), default=0)
        ax.set_ylim(bottom=max(0.0, low - 5))
        ax.set_ylabel("test RA (%)")
        set_title(ax, f"test split, seeds {record['test_seeds']} (mean ± sample std)")
    fig.suptitle(f"Tuning {record['algo']} on {record['data']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tuning_report(out_dir: Path, record: dict, name: str = "tuning") -> str:
    """Write ``<name>.md`` and ``<name>.png`` into ``out_dir``; returns the Markdown."""
    text = markdown(record)
    (out_dir / f"{name}.md").write_text(text)
    plot(record, out_dir / f"{name}.png")
    return text
