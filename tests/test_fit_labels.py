"""Wrapped panel labels grow with their text: no line is cut when the text is set from code."""

from __future__ import annotations

import pytest

pytest.importorskip("qtpy")


def test_wrapped_label_refits_when_its_text_is_set_from_code(qtbot):
    from magicgui.widgets import Container, Label

    from napari_restore.widgets._fit import fit_width

    label = Label(value="short", label="model")
    panel = Container(widgets=[label])
    fit_width(panel, width=260)
    qtbot.addWidget(panel.native)
    panel.native.resize(260, 200)
    panel.show()
    qtbot.waitExposed(panel.native)
    q = label.native
    one_line = q.minimumHeight()
    # a magicgui Label emits no `changed` when set from code, and the label is not resized:
    # only the layout request its new text makes can refit it (this was cut to one line)
    label.value = "beads (20 photons): poisson-gaussian a=3.9±0.35, b=-380.4 · and some more"
    qtbot.waitUntil(lambda: q.minimumHeight() >= q.heightForWidth(q.width()) > one_line,
                    timeout=5_000)
    assert q.toolTip() == label.value
    label.value = "short"
    qtbot.waitUntil(lambda: q.minimumHeight() == q.heightForWidth(q.width()), timeout=5_000)
