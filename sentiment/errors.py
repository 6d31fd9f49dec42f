"""Errors a user can cause and fix: entry points print them as one line, no traceback."""


def first_line(error: BaseException, limit: int = 300) -> str:
    """Return the first line of an exception's message (or its type name), for one-line messages."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def printable(text: str) -> str:
    """``text`` as a terminal or a log may show it: control characters (escape codes, line breaks) as visible escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class SentimentError(Exception):
    """Base class for user-facing errors: bad input, config, data or model."""


class ConfigError(SentimentError):
    """A setting is invalid (unknown model, impossible value)."""


class DataError(SentimentError):
    """A data source is missing, unreadable, malformed or too small."""


class ModelError(SentimentError):
    """A saved model or run directory is missing or corrupt."""


class WriteError(SentimentError):
    """The disk refused a write (full, over quota, failing): nothing half-written is left, the same command resumes."""


class ClusterError(SentimentError):
    """A multi-worker run lost a worker: every survivor stops with one line; relaunching all of them resumes."""
