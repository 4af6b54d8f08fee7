"""Screenshots of the viewer with the napari-miro widgets at each step of the demo workflow.

Needs a display with OpenGL: run it under Xvfb (Debian: xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0
libxcb-cursor0), e.g.

    xvfb-run -a -s "-screen 0 1800x1100x24" python scripts/screenshots.py --out docs/images --minutes 1.5

Writes 1_opened.png, 2_annotated.png, 3_trained.png, 4_clustered.png, 5_statistics.png, 6_rois.png,
7_ripley.png and 8_batch.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.spatial import ConvexHull


def _wait(app, done, seconds: float) -> None:
    start = time.monotonic()
    while not done() and time.monotonic() - start < seconds:
        app.processEvents()
        time.sleep(0.02)


def _lasso(layer, label: int, margin: float = 40.0) -> np.ndarray:
    yx = np.asarray(layer.data)[layer.features["gt_cluster"].to_numpy() == label]
    hull = yx[ConvexHull(yx).vertices]
    centre = hull.mean(axis=0)
    return centre + (hull - centre) * (1 + margin / np.linalg.norm(hull - centre, axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--sample", default="rings")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_miro._napari.annotate_widget import AnnotateWidget
    from napari_miro._napari.cluster_widget import ClusterWidget
    from napari_miro._napari.statistics_widget import StatisticsWidget
    from napari_miro._napari.train_widget import TrainWidget
    from napari_miro.cli import sample_file

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1750, 1050)
    app = QApplication.instance()
    viewer.open(str(sample_file(args.sample)), plugin="napari-miro")
    layer = viewer.layers[-1]
    viewer.reset_view()
    annotate = AnnotateWidget(viewer)
    train = TrainWidget(viewer)
    viewer.window.add_dock_widget(annotate, name="2. Annotate clusters", area="right")
    viewer.window.add_dock_widget(train, name="3. Train", area="right")
    _wait(app, lambda: False, 1.0)

    def shot(name: str) -> None:
        _wait(app, lambda: False, 0.5)
        viewer.screenshot(str(args.out / name), canvas_only=False)
        print("wrote", args.out / name)

    shot("1_opened.png")
    truth = layer.features["gt_cluster"].to_numpy()
    centres = {k: np.asarray(layer.data)[truth == k].mean(0) for k in np.unique(truth[truth > 0])}
    # the user lassos a structure that stands apart from the others
    chosen = max(centres, key=lambda k: min(np.linalg.norm(centres[k] - c) for j, c in centres.items() if j != k))
    shapes = annotate.start_annotating()
    shapes.add_polygons([_lasso(layer, chosen)])
    annotate.update_summary()
    shot("2_annotated.png")

    train.minutes.setValue(args.minutes)
    train.start()
    _wait(app, lambda: train.worker is None, args.minutes * 60 + 240)
    train.draw_loss()
    shot("3_trained.png")

    cluster = ClusterWidget(viewer)
    statistics = StatisticsWidget(viewer)
    viewer.window.add_dock_widget(cluster, name="4. Cluster", area="right")
    cluster.run()
    _wait(app, lambda: cluster.worker is None, 300)
    viewer.layers["annotations" if "annotations" in viewer.layers else shapes.name].visible = False
    viewer.layers[layer.name].visible = False
    shot("4_clustered.png")
    viewer.window.add_dock_widget(statistics, name="5. Statistics", area="right", tabify=True)
    statistics.show_run(statistics.run)
    shot("5_statistics.png")

    # two areas of interest drawn on the field: a summary per ROI, and Ripley's H of each
    from napari_miro._napari.regions_widget import RegionsWidget
    from napari_miro._napari.ripley_widget import RipleyWidget

    (y0, x0), (y1, x1) = np.asarray(layer.data).min(0), np.asarray(layer.data).max(0)
    middle = (x0 + x1) / 2
    rois = RegionsWidget(viewer)
    viewer.window.add_dock_widget(rois, name="7. ROI summary", area="right", tabify=True)
    roi_layer = rois.draw()
    roi_layer.add_rectangles([[[y0, x0], [y1, middle - 50]], [[y0, middle + 50], [y1, x1]]])
    roi_layer.mode = "pan_zoom"
    rois.roi_choice.setCurrentText(roi_layer.name)
    rois.summarise()
    shot("6_rois.png")
    ripley_widget = RipleyWidget(viewer)
    viewer.window.add_dock_widget(ripley_widget, name="8. Ripley's functions", area="right", tabify=True)
    ripley_widget.layer_choice.setCurrentText(layer.name)
    ripley_widget.roi_choice.setCurrentText(roi_layer.name)
    ripley_widget.compute()
    _wait(app, lambda: ripley_widget.worker is None, 120)
    shot("7_ripley.png")

    # a batch of simulated cells in two conditions, clustered with the model trained above
    import tempfile

    from napari_miro import simulate
    from napari_miro._napari.batch_widget import BatchWidget
    from napari_miro.io import write_thunderstorm

    folder = Path(tempfile.mkdtemp()) / "cells"
    for index in range(8):
        condition = "control" if index % 2 == 0 else "treated"
        field = simulate.rings(n_clusters=(10, 16), radius_nm=250 if condition == "control" else 200, seed=index)
        (folder / condition).mkdir(parents=True, exist_ok=True)
        write_thunderstorm(field, folder / condition / f"cell_{index:02d}.csv")
    batch = BatchWidget(viewer)
    viewer.window.add_dock_widget(batch, name="6. Batch", area="right", tabify=True)
    batch.add_inputs([folder])
    batch.workers.setValue(2)
    batch.start()
    _wait(app, lambda: batch.worker is None, 300)
    shot("8_batch.png")
    viewer.close()


if __name__ == "__main__":
    main()
