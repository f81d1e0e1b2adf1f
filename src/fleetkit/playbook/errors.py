"""Errors of the playbook runner (subtree of :class:`fleetkit.errors.PlaybookError`).

::

    PlaybookError
    ├── PlaybookSyntaxError (also UsageError, exit 4)   bad YAML / keyword / module, file:line
    │   │                                               (ansible-playbook's parser-error status)
    │   └── IncludeNotFound                             a missing task file or role (at run time
    │                                                   a per-host failure of the include)
    ├── InventoryError (also UsageError, exit 2)        bad inventory source
    ├── TemplateError                                   undefined variable, bad expression
    └── ModuleError                                     bad module parameters (a per-host result)
"""

from __future__ import annotations

import re

from fleetkit.errors import PlaybookError, UsageError

__all__ = [
    "PlaybookError",
    "PlaybookSyntaxError",
    "IncludeNotFound",
    "InventoryError",
    "TemplateError",
    "ModuleError",
]


class PlaybookSyntaxError(PlaybookError, UsageError):
    """A playbook that cannot be loaded; carries ``file:line``. Exits 4 as ansible-playbook does."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        source: str | None = None,
        origin: tuple[str, int, int] | None = None,
    ) -> None:
        UsageError.__init__(self, message, hint=hint, source=source)
        self.detail = message
        # (path, line, column) for ansible's "Origin:" excerpt (column 0: unknown)
        self.origin = origin or _parse_source(source)


def _parse_source(source: str | None) -> tuple[str, int, int] | None:
    """(path, line, column) of a ``path:line[:column]`` source."""
    m = re.match(r"^(.+?):(\d+)(?::(\d+))?$", source or "")
    if m is None:
        return None
    return (m.group(1), int(m.group(2)), int(m.group(3) or 0))


class IncludeNotFound(PlaybookSyntaxError):
    """A task file or role that does not exist; ``detail`` is the message without file:line."""

    def __init__(
        self, message: str, hint: str | None = None, source: str | None = None, path: str = ""
    ) -> None:
        super().__init__(message, hint=hint, source=source)
        self.detail = message
        self.path = path


class InventoryError(PlaybookError, UsageError):
    """An inventory source that cannot be parsed."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, source: str | None = None) -> None:
        UsageError.__init__(self, message, hint=hint, source=source)


class TemplateError(PlaybookError):
    """A Jinja2 expression that cannot be evaluated (undefined variable, syntax error)."""


class BrokenConditional(TemplateError):
    """An empty conditional expression (ansible's AnsibleBrokenConditionalError)."""

    help = (
        "Broken conditionals can be temporarily allowed with the `ALLOW_BROKEN_CONDITIONALS` "
        "configuration option."
    )

    def __init__(self) -> None:
        super().__init__("Empty conditional expressions are not allowed.")


class UntrustedTemplate(TemplateError):
    """A template or expression from data (module results, facts): never evaluated."""

    help = (
        "Templates and expressions must be defined by trusted sources such as playbooks or "
        "roles, not untrusted sources such as module results."
    )

    def __init__(self, origin: tuple[str, int, int] | None = None) -> None:
        super().__init__("Encountered untrusted template or expression.")
        self.origin = origin


class TemplateUndefined(TemplateError):
    """A template used an undefined variable or attribute (ansible's AnsibleUndefinedVariable)."""


class ModuleError(PlaybookError):
    """A module refused its arguments; reported as a failed result for the host."""
