"""Small Qt helpers shared by the widgets: a layer chooser, a themed matplotlib canvas, notifications."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QComboBox, QSizePolicy


class LayerChooser(QComboBox):
    """A combo box of the viewer's layers of one kind, kept up to date as layers come and go (training
    previews are left out: they are replaced while training goes on)."""

    def __init__(self, viewer, kind: type, parent=None, exclude: Callable[[object], bool] | None = None) -> None:
        from .session import PREVIEW_KEY

        super().__init__(parent)
        self.viewer = viewer
        self.kind = kind
        extra = exclude or (lambda layer: False)
        self.exclude = lambda layer: PREVIEW_KEY in getattr(layer, "metadata", {}) or extra(layer)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.reordered):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_) -> None:
        current = self.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, self.kind) and not self.exclude(layer)]
        self.blockSignals(True)
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)
        elif names:
            self.setCurrentIndex(len(names) - 1)
        self.blockSignals(False)
        self.currentTextChanged.emit(self.currentText())

    def layer(self):
        """The chosen layer, or None."""
        name = self.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None


def method_chooser(tooltip: str) -> QComboBox:
    """A combo box of the clustering that follows MIRO: "DBSCAN" or "HDBSCAN" shown, "dbscan" / "hdbscan" as data
    (napari_miro.inference.CLUSTERING_METHODS)."""
    chooser = QComboBox()
    chooser.addItem("DBSCAN", "dbscan")
    chooser.addItem("HDBSCAN", "hdbscan")
    chooser.setToolTip(tooltip)
    return chooser


def themed_canvas(viewer, rows: int = 1, columns: int = 1, height: float = 2.5):
    """A matplotlib figure canvas (Qt) whose colours follow napari's theme; returns (canvas, figure, axes)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, height), tight_layout=True)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    apply_theme(viewer, figure, axes)
    return canvas, figure, axes


def in_scroll_area(widget, min_height: int):
    """``widget`` (e.g. a tall figure canvas) inside a scroll area that may shrink to ``min_height`` pixels, so
    that several docked widgets fit a laptop screen and their buttons stay visible."""
    from qtpy.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setMinimumHeight(min_height)
    return area


def theme_colours(viewer) -> dict[str, str]:
    """Background, panel and text colours of the viewer's theme (as hex)."""
    from napari.utils.theme import get_theme

    try:
        theme = get_theme(viewer.theme)
        return {
            "background": theme.background.as_hex(),
            "panel": theme.foreground.as_hex(),
            "text": theme.text.as_hex(),
        }
    except Exception:  # a theme napari does not know: fall back to the dark one's colours
        return {"background": "#262930", "panel": "#414851", "text": "#f0f1f2"}


def apply_theme(viewer, figure, axes) -> None:
    colours = theme_colours(viewer)
    figure.set_facecolor(colours["background"])
    for axis in axes:
        axis.set_facecolor(colours["background"])
        axis.tick_params(colors=colours["text"], labelsize=7)
        axis.xaxis.label.set_color(colours["text"])
        axis.yaxis.label.set_color(colours["text"])
        axis.title.set_color(colours["text"])
        for spine in axis.spines.values():
            spine.set_color(colours["text"])
        if (legend := axis.get_legend()) is not None:
            for text in legend.get_texts():
                text.set_color(colours["text"])
        for text in axis.texts:
            text.set_color(colours["text"])


def ask_save_path(parent, path: str | None, title: str, default_name: str, file_filter: str) -> str | None:
    """``path`` when given (scripts, tests), else the file the user picks in a save dialog (None: cancelled)."""
    if path:
        return path
    from qtpy.QtWidgets import QFileDialog

    chosen, _ = QFileDialog.getSaveFileName(parent, title, default_name, file_filter)
    return chosen or None


def notify_error(message: str) -> None:
    """A napari error notification (a message, never a traceback)."""
    from napari.utils.notifications import show_error

    show_error(message)


def write_or_notify(write: Callable[[], str], failure: str) -> str | None:
    """``write()`` (returns what it wrote); a place that cannot be written to (refused before writing) or a
    failed write becomes one error notification (``failure``: error) and None."""
    from napari_miro.io import LocalizationFileError
    from napari_miro.output_files import OutputPathError

    try:
        return write()
    except OutputPathError as error:
        notify_error(str(error))
    except (OSError, LocalizationFileError) as error:
        notify_error(f"{failure}: {error}")
    return None


def notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def notify_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)


def describe_error(error: BaseException, doing: str) -> str:
    """One sentence for the user: our own errors say what to do already; others get their context."""
    from napari_miro.devices import DeviceOutOfMemory
    from napari_miro.io import LocalizationFileError
    from napari_miro.model_file import ModelFileError
    from napari_miro.training import TrainingCancelled

    own = (ModelFileError, DeviceOutOfMemory, LocalizationFileError, TrainingCancelled, ValueError, InterruptedError)
    if isinstance(error, own):
        return str(error)
    return f"{doing} failed: {type(error).__name__}: {error}"


class _Failure:
    """A worker's exception, carried back as a value so that napari shows our message and no traceback."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _guarded(function: Callable, *args):
    try:
        return function(*args)
    except Exception as error:  # every failure becomes one clear notification on the main thread
        return _Failure(error)


def start_worker(
    function: Callable,
    *args,
    on_result: Callable,
    doing: str,
    on_finished: Callable | None = None,
    progress_desc: str | None = None,
):
    """Run ``function(*args)`` in a napari worker thread. ``on_result`` gets its result on the main thread;
    an exception becomes a notification (``doing`` failed: ...), never a traceback."""
    from napari.qt.threading import create_worker

    def returned(value) -> None:
        if isinstance(value, _Failure) and isinstance(value.error, InterruptedError):  # the user's own Stop
            notify_info(str(value.error))
        elif isinstance(value, _Failure):
            notify_error(describe_error(value.error, doing))
        else:
            on_result(value)

    connect = {"returned": returned, "errored": lambda error: notify_error(describe_error(error, doing))}
    if on_finished is not None:
        connect["finished"] = on_finished
    options = {"_progress": {"desc": progress_desc}} if progress_desc else {}
    return create_worker(_guarded, function, *args, _connect=connect, _start_thread=True, **options)
