"""A pane's own subtitle, or the time of its figures while no engine keeps them live."""

from __future__ import annotations


class Dated:
    """Mixed into each bordered pane (a Textual widget).

    The pane says what it wants in its subtitle with `set_subtitle`; the screen calls
    `set_as_of` with a note ("as of 14:30:02 · engine stopped") while the figures are an
    engine's last rather than live ones, and with "" once an engine writes again. The note
    replaces the subtitle and the pane takes the class -stale (dimmed by the cockpit's css).
    """

    _subtitle = ""
    _as_of = ""

    def set_subtitle(self, text: str) -> None:
        self._subtitle = text
        self._show_subtitle()

    def set_as_of(self, note: str) -> None:
        self._as_of = note
        self.set_class(bool(note), "-stale")  # type: ignore[attr-defined]
        self._show_subtitle()

    def _show_subtitle(self) -> None:
        text = self._as_of or self._subtitle
        if (self.border_subtitle or "") != text:  # type: ignore[attr-defined]
            # only when it changed: setting it repaints the whole pane
            self.border_subtitle = text
