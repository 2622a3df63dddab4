"""Errors that name the thing: the spec key path, the op, the position."""


class InputError(Exception):
    """Unusable command-line input; printed as one line, exit code 2.

    Defined here, not in ``cli``: under ``python -m derive.cli`` that module runs as ``__main__``,
    and a class defined there would not be the one the subcommands raise."""


class SpecError(ValueError):
    """Bad user input, reported as one line: ``key.path: what was expected``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)
