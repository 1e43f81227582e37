"""indical's command line."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sqlite3
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from indical import __version__
from indical.errors import IndicalError, describe_os_error

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
    "autopilot": "indical.commands.autopilot:autopilot",
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


def _say_error(text: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)


class _Group(click.Group):
    """Loads subcommands on demand, and turns errors into one clear line and exit status 2, not
    a traceback (unless --debug): indical's own errors as they are, errors of the operating
    system and of SQLite with the file and what to do, anything else as an internal error."""

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
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; devices were left safe")
            sys.exit(130)
        except Exception as exc:
            if ctx.meta.get(DEBUG_KEY):
                raise
            _say_error(_describe(exc))
            sys.exit(2)


DEBUG_KEY = "indical.debug"


def _sql_errors() -> tuple[type[BaseException], ...]:
    """The database errors a command can meet (SQLAlchemy's only if a command loaded it)."""
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        errors += (sqlalchemy_exc.SQLAlchemyError,)
    return errors


def _describe(exc: Exception) -> str:
    if isinstance(exc, IndicalError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    sql_errors = _sql_errors()
    if isinstance(exc, sql_errors):
        detail = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        return (f"calibration library: {str(detail).strip()}; if the disk is full free some "
                "space, otherwise check the library (indical library sweep)")
    if isinstance(exc, MemoryError):
        return "out of memory; lower --memory-limit or close other programs"
    return (f"internal error ({type(exc).__name__}: {exc}); run again with --debug for the "
            "traceback and report it")


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="indical")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Flat-field calibration for INDI observatories."""
    ctx.meta[DEBUG_KEY] = debug


RIG_OPTION = click.option("--rig", "rig_path", type=click.Path(dir_okay=False, path_type=Path),
                          default=None,
                          help="Rig file (TOML). Default: the built-in simulated observatory.")


# At exit the interpreter sweeps every object for cycles; where astropy is loaded
# they make hundreds of thousands (a quarter of a second, measured). Frozen objects are
# skipped. Python never promised finalizers at exit; indical closes its files explicitly.
atexit.register(gc.freeze)
