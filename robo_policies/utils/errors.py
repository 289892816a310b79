"""The project's error types: problems a user can fix, told in one line.

``robo`` prints an error of these types as one line naming the file, key or value and exits
with status 2; any other exception is a bug and keeps its traceback. Raise them where bad
input is detected (a config value, a dataset, a checkpoint, a robot that does not answer),
never for broken invariants inside the code. Each also derives from the builtin a caller
would catch without knowing the project (``ValueError``, ``KeyError``, ``RuntimeError``).
"""

from __future__ import annotations


class RoboError(Exception):
    """Base of every error caused by input: a setting, a file, a device."""


class ConfigError(RoboError, ValueError):
    """A setting that is missing, out of range or inconsistent with another."""


class CheckpointError(RoboError, ValueError):
    """A saved policy or agent that is missing, damaged or of another kind than expected."""


class DatasetError(RoboError, ValueError):
    """A dataset that cannot be read, or whose content is inconsistent."""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry knows (a task, head, algorithm, robot); the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class DatasetKeyError(DatasetError, KeyError):
    """A key a dataset does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


class DeviceFault(RoboError, RuntimeError):
    """A robot, motor bus or camera that failed or answered wrongly."""


class ObservationKeyError(RoboError, KeyError):
    """An observation key a policy reads that the dataset, env or robot does not provide."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def one_line(err: BaseException) -> str:
    """The error's message with its notes (a cleanup that failed after it, say), in one line."""
    return "; ".join([str(err), *getattr(err, "__notes__", ())])


def missing_observation_keys(missing: list[str], expected: list[str], provided: list[str],
                             source: str) -> ObservationKeyError:
    """The error for observation keys a policy needs and ``source`` does not provide."""
    return ObservationKeyError(
        f"observation key(s) {missing} missing from {source}: the policy reads {sorted(expected)}, "
        f"{source} provides {sorted(provided)}"
    )
