"""The one exception type for mistakes a user can make (bad path, malformed file, wrong parameter)."""


class DrowsyError(Exception):
    """A user-facing error whose message is one line naming the file, record and field.

    The CLI prints it as `drowsy: error: <message>` and exits 2; in a notebook IPython shows only
    the message (via `_render_traceback_`), not a traceback from deep inside the package.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"DrowsyError: {self}"]
