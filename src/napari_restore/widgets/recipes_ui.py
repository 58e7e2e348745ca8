"""Recipe buttons for any panel: Save recipe…, Load recipe…, Copy as Python."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_error, show_info

from ..recipes import Recipe
from ._layers import META_KEY
from ._section import Section

if TYPE_CHECKING:
    from .panel import ProcessorPanel


def python_snippet(recipe: Recipe) -> str:
    """Python that replays ``recipe`` with :func:`napari_restore.apply_recipe`."""
    return (
        "from napari_restore import Recipe, apply_recipe\n\n"
        f"recipe = Recipe({recipe.processor!r}, {recipe.params!r}, "
        f"channel_axis={recipe.channel_axis!r}, source_dtype={recipe.source_dtype!r})\n"
        "result = apply_recipe(recipe, image)  # image: your numpy array\n"
    )


class RecipeButtons:
    """A row of recipe buttons attached to ``panel``."""

    def __init__(self, panel: ProcessorPanel) -> None:
        self.panel = panel
        self.save_button = PushButton(text="Save…", name="save_recipe",
                                      tooltip="Save the selected result layer's recipe (or the "
                                              "panel's current parameters) as JSON.")
        self.load_button = PushButton(text="Load…", name="load_recipe",
                                      tooltip="Fill this panel's parameters from a recipe JSON.")
        self.copy_button = PushButton(text="Copy Python", name="copy_python",
                                      tooltip="Put an apply_recipe(...) snippet on the clipboard.")
        row = Container(widgets=[self.save_button, self.load_button, self.copy_button],
                        layout="horizontal", labels=False, name="recipe_buttons", label="")
        row.margins = (0, 0, 0, 0)
        self.container = Section("Recipe", [row], name="recipes",
                                 tooltip="Save or load this panel's parameters, or copy them "
                                         "as Python.")
        self.save_button.changed.connect(lambda *_: self.save())
        self.load_button.changed.connect(lambda *_: self.load())
        self.copy_button.changed.connect(lambda *_: self.copy_python())

    def current_recipe(self) -> Recipe:
        """The active layer's recipe when it is a result of this processor, else the panel's."""
        active = self.panel.viewer.layers.selection.active
        meta = getattr(active, "metadata", {}).get(META_KEY) if active is not None else None
        if meta and meta.get("processor") == self.panel.spec.name and not meta.get("preview"):
            return Recipe.from_layer(active)
        layer = self.panel.layer_widget.value
        cax = -1 if layer is not None and layer.rgb else None
        dtype = str(layer.data.dtype) if layer is not None else None
        return Recipe(self.panel.spec.name, self.panel.params, channel_axis=cax,
                      source_dtype=dtype)

    def save(self, path: str | Path | None = None) -> Path | None:
        try:
            recipe = self.current_recipe()
            if path is None:
                path = _ask_path(save=True, name=f"{self.panel.spec.name}.json")
                if path is None:
                    return None
            out = recipe.save(path)
        except (OSError, TypeError, ValueError) as exc:
            show_error(f"Save recipe: {exc}")
            return None
        show_info(f"Saved recipe to {out}")
        return out

    def load(self, path: str | Path | None = None) -> Recipe | None:
        try:
            if path is None:
                path = _ask_path(save=False)
                if path is None:
                    return None
            recipe = Recipe.load(path)
            if recipe.processor != self.panel.spec.name:
                raise ValueError(f"the recipe is for {recipe.processor!r}, not {self.panel.spec.name!r}")
            self.panel.set_params(recipe.params)
        except (OSError, TypeError, ValueError) as exc:
            show_error(f"Load recipe: {exc}")
            return None
        return recipe

    def copy_python(self) -> str:
        from qtpy.QtWidgets import QApplication

        text = python_snippet(self.current_recipe())
        QApplication.clipboard().setText(text)
        show_info("Copied an apply_recipe(...) snippet to the clipboard.")
        return text


def _ask_path(save: bool, name: str = "") -> Path | None:  # pragma: no cover - dialog
    from qtpy.QtWidgets import QFileDialog

    if save:
        path, _ = QFileDialog.getSaveFileName(None, "Save recipe", name, "Recipe (*.json)")
    else:
        path, _ = QFileDialog.getOpenFileName(None, "Load recipe", "", "Recipe (*.json)")
    return Path(path) if path else None
