"""Everything that imports napari or Qt: reader, writer, sample data, widgets. The core never imports this."""
