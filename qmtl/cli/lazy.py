"""Commands that load on first use: ``qmtl --help`` lists every command without importing one.

Each command of ``qmtl`` lives in a module that imports the data and engine layers
(pyarrow, Bytewax, httpx, the world's policy...), about 0.7 s in all. The top-level group
(:class:`LazyGroup`) knows each command by a :class:`LazyCommand`: its name, where it lives
and its one-line help. Listing the commands (``qmtl --help``) reads only that table;
running one (``qmtl run ...``, ``qmtl world --help``) imports its module then.
``tests/qmtl/cli/test_startup.py`` keeps each line of the table equal to the command's own
help, so the two cannot drift.

>>> cmd = LazyCommand("hello", "click", "Command", "Say hello.")
>>> cmd.placeholder().short_help
'Say hello.'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """One command of a :class:`LazyGroup`: ``attr`` of ``module`` is a function (a single
    command) or a :class:`typer.Typer` (a group); ``also`` are modules that attach more
    commands to that group when imported; ``short_help`` is what ``--help`` lists.

    (Recent Typer releases carry their own copy of click, so the context and command types
    are Typer's, hence ``Any`` in the signatures below.)

    >>> LazyCommand("data", "qmtl.cli.data", "data_app", "The local bar catalog.").name
    'data'
    """

    name: str
    module: str
    attr: str
    short_help: str
    also: tuple[str, ...] = ()

    def placeholder(self) -> TyperCommand:
        """A command that only names itself, for the listing of ``--help``.

        >>> LazyCommand("x", "m", "a", "Does x.").placeholder().name
        'x'
        """
        return TyperCommand(self.name, short_help=self.short_help, help=self.short_help)

    def load(self, markup_mode: str) -> Any:
        """Import the command and turn it into the click command that runs it.

        >>> LazyCommand("data", "qmtl.cli.data", "data_app", "").load("markdown").name
        'data'
        """
        target = getattr(importlib.import_module(self.module), self.attr)
        for module in self.also:
            importlib.import_module(module)
        if isinstance(target, typer.Typer):  # a group, even of one command (qmtl feed)
            command = typer.main.get_group(target)
        else:
            single = typer.Typer(rich_markup_mode=markup_mode, add_completion=False)  # type: ignore[arg-type]
            single.command(self.name)(target)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


class LazyGroup(TyperGroup):
    """The top-level group: :attr:`lazy` commands load on first use, and the listing in
    ``--help`` shows their :attr:`LazyCommand.short_help` without loading them.

    Subclass it with the table: ``class Qmtl(LazyGroup): lazy = (LazyCommand(...), ...)``.

    >>> class Demo(LazyGroup):
    ...     lazy = (LazyCommand("data", "qmtl.cli.data", "data_app", "The catalog."),)
    >>> group = Demo(name="demo")
    >>> group.list_commands(group.context_class(group))
    ['data']
    """

    lazy: tuple[LazyCommand, ...] = ()
    _listing: bool = False

    def list_commands(self, ctx: Any) -> list[str]:
        """Eager commands first, then the lazy ones in the order of :attr:`lazy`."""
        eager = super().list_commands(ctx)
        return eager + [c.name for c in self.lazy if c.name not in eager]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command named ``cmd_name``: loaded (once) unless help is only listing."""
        spec = next((c for c in self.lazy if c.name == cmd_name), None)
        if spec is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return spec.placeholder()
        command = spec.load(self.rich_markup_mode or "markdown")
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The group's help, listing the lazy commands from their table."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
