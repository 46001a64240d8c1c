"""The one exception a bad configuration raises, and the exit code that goes with it.

Every problem is a line that starts with the setting's path (``slurm.ssh.address: ...``) and says
what was expected. Messages never repeat the value of a secret setting, so a ``ConfigError`` can be
printed or logged as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The exit code of every command that loads a configuration and finds it bad.
EXIT_BAD_CONFIG = 2


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason found, one per line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems) or "invalid configuration")

    def render(self) -> str:
        """The text an operator reads: a header line, then one indented line per problem."""
        count = len(self.problems)
        header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  {problem}" for problem in self.problems)])
