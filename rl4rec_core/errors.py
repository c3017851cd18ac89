"""User-facing errors: each message names the problem and the fix."""


class Rl4recError(Exception):
    """Base class for errors caused by user input or missing prerequisites.

    The CLI prints these without a traceback; everything else is a bug and keeps its traceback.
    """


class ConfigError(Rl4recError, ValueError):
    """A configuration value (flag, flow parameter, dataclass field) cannot work."""


class DataError(Rl4recError, ValueError):
    """Input data is malformed, empty or inconsistent."""


class MissingArtifactError(Rl4recError, FileNotFoundError):
    """A file the step needs (prepared data, embeddings, checkpoint) does not exist yet."""
