"""The curves behind the table, one panel per curve metric and one line per method (mean over the images)."""

from __future__ import annotations

from matplotlib.figure import Figure

from cnnlab.explain.metrics.settings import METRICS

PANELS = {"deletion": ("Deletion: most relevant pixels removed first", "share of pixels deleted", "area"),
          "insertion": ("Insertion: most relevant pixels restored first", "share of pixels inserted", "area"),
          "road-morf": ("ROAD, most relevant first (imputed)", "share of pixels removed", "mean"),
          "road-lerf": ("ROAD, least relevant first (imputed)", "share of pixels removed", "mean")}


def curves_figure(table, panels=tuple(PANELS)) -> Figure:
    """Mean target probability against the share of pixels changed, per method, one panel per curve metric in
    `panels` that the table has; the legend gives each method's score."""
    shown = [name for name in PANELS if name in panels and any(name in table.curves[m] for m in table.methods)]
    columns = 2 if len(shown) > 2 else len(shown)
    rows = -(-len(shown) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), dpi=110, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    order = table.order()
    for axis, name in zip(axes, shown):
        title, xlabel, kind = PANELS[name]
        for method in order:
            curve = table.curves[method].get(name)
            if curve is None:
                continue
            score = table.statistics(method, name)[0]
            axis.plot(curve.fractions, curve.probabilities.mean(axis=0), marker="." if len(curve.fractions) < 12
                      else None, label=f"{method} ({kind} {score:.3f})")
        better = "higher" if METRICS[name].higher_is_better else "lower"
        axis.set_title(f"{title}\n({kind} under the curve: {better} is better)" if kind == "area"
                       else f"{title}\n(mean: {better} is better)", fontsize=9)
        axis.set_xlabel(xlabel, fontsize=9)
        axis.set_ylabel("target probability (mean over images)", fontsize=9)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
        axis.legend(fontsize=7, loc="best")
    figure.suptitle(f"{len(table.images)} images; {table.settings.describe(shown)}", fontsize=8)
    return figure
