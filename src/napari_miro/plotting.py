"""Figures: histograms of cluster statistics, the demo's overview, the batch's per-group summary, Ripley's H.

The only core module that draws with matplotlib (its Figure objects, never pyplot: safe beside a running viewer).
Imports neither Qt nor napari; of napari_miro only colours, stats and summaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from napari_miro.colours import label_colours
from napari_miro.stats import SUMMARY_STATISTICS
from napari_miro.summaries import REGION_SUMMARY_LABELS

__all__ = [
    "demo_figure",
    "draw_group_boxes",
    "draw_group_histograms",
    "draw_group_ripley",
    "draw_ripley",
    "legend_above",
    "overlay_histograms",
    "ripley_figure",
    "summary_figure",
]


def overlay_histograms(
    axis, series: list[tuple[str, np.ndarray, str]], bins: int = 20, fractions: bool = False, alpha: float = 0.6
) -> None:
    """Histograms of several methods' values (label, values, colour), drawn in order on shared bins on a
    matplotlib axis; with ``fractions`` each bar is a fraction of that method's clusters, so that methods
    with different cluster counts compare. The label gets the method's count."""
    values = [np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] for _, v, _ in series]
    joined = np.concatenate(values) if sum(len(v) for v in values) else np.array([0.0, 1.0])
    edges = np.histogram_bin_edges(joined, bins=bins)
    for (label, _, colour), value in zip(series, values, strict=True):
        weights = np.full(len(value), 1.0 / max(len(value), 1)) if fractions else None
        axis.hist(value, bins=edges, weights=weights, color=colour, alpha=alpha, label=f"{label} ({len(value)})")
    if fractions:
        axis.set_ylabel("fraction of clusters")
    # few ticks with SI prefixes: areas in nm^2 (200000, 400000, ...) would otherwise run together
    axis.xaxis.set_major_locator(MaxNLocator(nbins=4))
    axis.xaxis.set_major_formatter(EngFormatter(sep=""))


def legend_above(axis, fontsize: float = 6) -> None:
    """The legend in a row above the plot, where it covers no bar."""
    axis.legend(fontsize=fontsize, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False,
                borderaxespad=0.2, handlelength=1.0, columnspacing=0.8)  # fmt: skip


def draw_group_histograms(axes, statistics: pd.DataFrame) -> None:
    """Per-group histograms (fractions of each group's clusters) of the summary statistics, one axis each."""
    groups = sorted(statistics["group"].astype(str).unique())
    colours = colormaps["tab10"](np.arange(len(groups)) % 10)
    for axis, (column, label) in zip(axes, SUMMARY_STATISTICS, strict=False):
        series = [
            (group, statistics.loc[statistics["group"].astype(str) == group, column].to_numpy(float), colour)
            for group, colour in zip(groups, colours, strict=True)
        ]
        overlay_histograms(axis, series, bins=25, fractions=True, alpha=0.5 if len(groups) > 1 else 0.8)
        axis.set_xlabel(label)
        legend_above(axis, fontsize=7)


def summary_figure(
    statistics: pd.DataFrame, path: Path, regions: pd.DataFrame | None = None, ripley: pd.DataFrame | None = None
) -> Path:
    """A PNG of the per-group histograms of the batch's clusters; with ``regions`` (one row per ROI or file) box
    plots per group of the region summaries; with ``ripley`` (Ripley's functions per region) each region's H(r)
    coloured by group (no pyplot: safe beside a running viewer)."""
    rows = 1 + (regions is not None and len(regions) > 0) + (ripley is not None and len(ripley) > 0)
    columns = max(len(SUMMARY_STATISTICS), len(REGION_SUMMARY_LABELS) if rows > 1 else 0)
    figure = Figure(figsize=(5 * columns, 4 * rows), tight_layout=True)
    axes = np.atleast_2d(figure.subplots(rows, columns))
    draw_group_histograms(axes[0][: len(SUMMARY_STATISTICS)], statistics)
    for axis in axes[0][len(SUMMARY_STATISTICS) :]:
        axis.set_visible(False)
    row = 1
    if regions is not None and len(regions):
        draw_group_boxes(axes[row], regions)
        row += 1
    if ripley is not None and len(ripley):
        draw_group_ripley(axes[row][0], ripley)
        for axis in axes[row][1:]:
            axis.set_visible(False)
    figure.suptitle(f"{len(statistics)} clusters from {statistics['file'].nunique()} file(s)")
    figure.savefig(path, dpi=90)
    return path


def draw_group_ripley(axis, ripley: pd.DataFrame) -> None:
    """H(r) of every region (file and ROI) of a batch, one colour per group."""
    groups = sorted(ripley["group"].astype(str).unique())
    colours = colormaps["tab10"]
    for index, group in enumerate(groups):
        of_group = ripley[ripley["group"].astype(str) == group]
        for number, (_, curve) in enumerate(of_group.groupby(["file", "region"], sort=False)):
            axis.plot(curve["radius_nm"], curve["H_nm"], color=colours(index % 10), linewidth=1,
                      label=group if number == 0 else None)  # fmt: skip
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xlabel("r (nm)")
    axis.set_ylabel("Ripley's H(r) (nm)")
    axis.legend(fontsize=8, frameon=False)


def draw_group_boxes(axes, regions: pd.DataFrame) -> None:
    """Box plots per group of the region summaries (REGION_SUMMARY_LABELS), one axis each; each ROI (or file
    without ROIs) is one observation, drawn as a point over its group's box."""
    groups = sorted(regions["group"].astype(str).unique())
    for axis, (column, label) in zip(axes, REGION_SUMMARY_LABELS, strict=False):
        values = [regions.loc[regions["group"].astype(str) == g, column].dropna().to_numpy(float) for g in groups]
        axis.boxplot(values, showfliers=False)
        axis.set_xticks(range(1, len(groups) + 1), groups)
        for position, group_values in enumerate(values, start=1):
            jitter = np.linspace(-0.12, 0.12, len(group_values)) if len(group_values) > 1 else np.zeros(1)
            axis.scatter(position + jitter[: len(group_values)], group_values, s=10, color="tab:orange", zorder=3)
        axis.set_ylabel(label)
        axis.tick_params(axis="x", labelrotation=20)


def demo_figure(
    positions, truth, miro, baseline, statistics, baseline_statistics, path: Path, annotated=None, baseline_title=""
) -> None:
    """Points coloured by ground truth / MIRO / DBSCAN, the collapsed points, and statistic histograms; the
    annotated structure (indices ``annotated``) outlined in the panels of original positions."""
    from scipy.spatial import ConvexHull, QhullError

    figure = Figure(figsize=(18, 9))
    axes = figure.subplots(2, 4)
    panels = [
        (positions, truth, "ground truth"),
        (miro.collapsed.positions, miro.labels, "MIRO: collapsed points"),
        (positions, miro.labels, "MIRO + DBSCAN"),
        (positions, baseline, f"DBSCAN alone{baseline_title}"),
    ]
    outline = None
    if annotated is not None and len(annotated) >= 3:
        try:
            ring = positions[annotated][ConvexHull(positions[annotated]).vertices]
            outline = np.vstack([ring, ring[:1]])
        except QhullError:
            outline = None
    for axis, (points, labels, title) in zip(axes[0], panels, strict=True):
        colours = label_colours(labels, points[:, ::-1])
        axis.scatter(points[:, 0], points[:, 1], s=2, c=colours, linewidths=0)
        if outline is not None and points is positions:
            axis.plot(outline[:, 0], outline[:, 1], color="black", linewidth=1.2, linestyle="--", label="annotated")
            axis.legend(loc="upper right", fontsize=8)
        axis.set_title(f"{title} ({int(labels.max())} clusters)")
        axis.set_aspect("equal")
        axis.invert_yaxis()  # ThunderSTORM's y grows downwards
        axis.set_xlabel("x (nm)")
    for axis, column, label in zip(
        axes[1],
        ["n_localizations", "radius_of_gyration_nm", "convex_hull_area_nm2", "nearest_neighbour_nm"],
        ["localizations per cluster", "radius of gyration (nm)", "convex hull area (nm²)", "nearest neighbour (nm)"],
        strict=True,
    ):
        overlay_histograms(
            axis,
            [
                ("DBSCAN alone", baseline_statistics[column], "tab:green"),
                ("MIRO + DBSCAN", statistics[column], "tab:orange"),
            ],
        )
        axis.set_xlabel(label)
        legend_above(axis, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def draw_ripley(
    axis, result, marks: dict[str, float] | None = None, colour: str = "tab:orange", label: str = "H(r) = L(r) - r"
) -> None:
    """Ripley's H(r) of a :class:`napari_miro.ripley_functions.RipleyResult` with its CSR envelope (grey band) on an
    axis; ``marks`` (label -> radius in nm, e.g. the model's delta and DBSCAN eps) as dashed vertical lines."""
    if result.envelope_low is not None:
        axis.fill_between(result.radii, result.envelope_low, result.envelope_high, color="grey", alpha=0.35,
                          linewidth=0, label=f"random ({result.n_simulations} simulations)")  # fmt: skip
    axis.plot(result.radii, result.h, color=colour, linewidth=1.5, label=label)
    axis.axhline(0.0, color="grey", linewidth=0.8)
    peak = result.peak_radius_nm
    if np.isfinite(peak):
        axis.axvline(peak, color=colour, linewidth=0.8, linestyle=":", label=f"peak {peak:.0f} nm")
    for (label, radius), style in zip((marks or {}).items(), ("--", "-.", (0, (1, 3))), strict=False):
        axis.axvline(radius, color="tab:blue", linewidth=0.9, linestyle=style, label=f"{label} {radius:.0f} nm")
    axis.set_xlabel("r (nm)")
    axis.set_ylabel("H(r) (nm)")
    axis.xaxis.set_major_locator(MaxNLocator(nbins=5))


def ripley_figure(results: list, path: Path, marks: dict[str, float] | None = None) -> Path:
    """A PNG of :func:`draw_ripley`, one panel per (region, result) pair (no pyplot: safe beside a viewer)."""
    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure = Figure(figsize=(5 * columns, 3.6 * rows), tight_layout=True)
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axis, (region, result) in zip(axes, results, strict=False):
        draw_ripley(axis, result, marks)
        axis.legend(fontsize=7, frameon=False)
        axis.set_title(f"{region.name}: {result.n_total:,} localizations ({result.correction} correction)", fontsize=9)
    for axis in axes[len(results) :]:
        axis.set_visible(False)
    figure.savefig(path, dpi=100, format="png")
    return path
