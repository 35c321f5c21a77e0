"""Errors users see. Each says what was wrong and where (file, column, field), never a bare trace."""


class ChurnError(Exception):
    """Base of every error the command line reports as a one-line message with exit status 1."""

    exit_code = 1


class ConfigError(ChurnError):
    """A setting is missing or malformed."""

    exit_code = 2


class InputError(ChurnError):
    """Input data (a raw drop, a spec, a CSV) is missing or not what was declared."""


class ValidationFailed(ChurnError):
    """A critical data expectation failed; nothing downstream was written."""


class SetupError(ChurnError):
    """The installation is incomplete (jars not fetched, Java missing, ...)."""

    exit_code = 3
