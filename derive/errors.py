"""Errors that name the thing: the spec key path, the op, the position."""


class SpecError(ValueError):
    """Bad user input, reported as one line: ``key.path: what was expected``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
