"""Fixtures shared by the viewer tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def messages(monkeypatch):
    """Every napari notification the widgets raise, by kind."""
    caught = {"error": [], "info": [], "warning": []}
    for kind in caught:
        monkeypatch.setattr(f"napari.utils.notifications.show_{kind}", caught[kind].append)
    return caught
