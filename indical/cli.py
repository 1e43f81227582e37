"""indical's command line."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from indical import __version__
from indical.errors import IndicalError

# Output for people and for other programs: lines are never broken by rich (soft wrap: a
# terminal folds long lines itself, and a path stays whole when copied), and when the output is
# not a terminal (`indical ... | cat`, a log file) tables get their natural width instead of 80
# columns, unless COLUMNS says otherwise.
_PIPE_WIDTH = 1000


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = _PIPE_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return Console(stderr=stderr, soft_wrap=True, width=width)


console = _console()
err_console = _console(stderr=True)


# Each subcommand lives in indical/commands/ and is imported only when it runs (or when help
# lists them all): `indical master` should not pay for the INDI client or astropy. Add new
# commands here.
_COMMANDS = {
    "bpm": "indical.commands.bpm:bpm",
    "calibrate": "indical.commands.calibrate:calibrate",
    "demo": "indical.commands.demo:demo",
    "library": "indical.commands.library:library",
    "master": "indical.commands.master:master",
    "needs": "indical.commands.needs:needs",
    "report": "indical.commands.report:report",
    "rig": "indical.commands.rig:rig",
    "run": "indical.commands.run:run",
}


class _Group(click.Group):
    """Loads subcommands on demand, and turns indical's own errors into one clear line and
    exit status 2, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in _COMMANDS:
            module, attr = _COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return self.commands.get(name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IndicalError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; devices were left safe")
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="indical")
def main() -> None:
    """Flat-field calibration for INDI observatories."""


RIG_OPTION = click.option("--rig", "rig_path", type=click.Path(dir_okay=False, path_type=Path),
                          default=None,
                          help="Rig file (TOML). Default: the built-in simulated observatory.")


# At exit the interpreter sweeps every object for cycles; where astropy is loaded
# they make hundreds of thousands (a quarter of a second, measured). Frozen objects are
# skipped. Python never promised finalizers at exit; indical closes its files explicitly.
atexit.register(gc.freeze)
