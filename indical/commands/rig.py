"""`indical rig check` and `indical rig discover`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from indical.cli import console
from indical.atomic import atomic_file
from indical.errors import IndicalError
from indical.plugins import load_driver
from indical.rig import load_rig, open_rig


@click.group(short_help="Check a rig file, or write one for an indiserver.")
def rig() -> None:
    """Rig files: check that every device answers, or write one for an indiserver's
    devices."""


@rig.command("check", short_help="Connect every role of a rig and say what each device can do.")
@click.argument("rig_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def rig_check(rig_file: Path | None) -> None:
    """Connect every role of RIG_FILE and say what each device is and can do; exit status 2
    naming the roles that can't be reached. RIG_FILE is a path or the name of an example rig
    (indical rig check relay-panel-mock.toml); without it, the built-in simulated
    observatory."""
    spec = load_rig(rig_file)
    console.print(f"rig: {escape(spec.source)}")
    table = Table("role", "driver", "device", "what it can do")
    failed: list[str] = []
    memo: dict = {}   # a server that failed for one role is not tried again for the next
    for role in spec.roles:
        try:
            with open_rig(spec, roles=(role,), memo=memo) as one:
                device = one.devices[role]
                facts = ", ".join(f"{k}: {v}" for k, v in device.describe().items())
                table.add_row(role, spec.driver_of(role), escape(device.name), escape(facts))
        except IndicalError as exc:
            failed.append(f"{role}: {exc}")
            table.add_row(role, spec.driver_of(role), "[red]unreachable[/]", escape(str(exc)))
    console.print(table)
    if spec.site:
        s = spec.site
        console.print(f"site: {s.latitude_deg:g} N, {s.longitude_deg:g} E, {s.elevation_m:g} m")
    if failed:
        raise IndicalError("some roles could not be reached:\n  " + "\n  ".join(failed))
    console.print("[green]all roles reachable[/]")


@rig.command("discover", short_help="List an indiserver's devices and write a rig file for them.")
@click.argument("server")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rig file here (default: print it).")
@click.option("--connect", is_flag=True,
              help="Connect devices that are not connected, to see what they are (they are "
                   "disconnected again at the end).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def rig_discover(server: str, output: Path | None, connect: bool, force: bool) -> None:
    """List the devices on the indiserver at SERVER (host:port) by what they can do, and write
    a rig file for them. Changes nothing on the server."""
    plugin = load_driver("indi")
    rows, text = plugin.discover(server, connect=connect)
    table = Table("device", "driver", "what it can do", "connected")
    for name, driver, what, connected in rows:
        table.add_row(escape(name), escape(driver), escape(what or "-"),
                      "yes" if connected else "[yellow]no[/]")
    console.print(table)
    if any(not connected for *_, connected in rows) and not connect:
        console.print("Devices that are not connected may not show all they can do: connect "
                      "them in your imaging program, or run again with --connect.")
    if output is None:
        console.print(text, markup=False, highlight=False)
        return
    try:
        with atomic_file(output, text=True, overwrite=force) as fh:
            fh.write(text)
    except FileExistsError:
        raise IndicalError(f"{output}: exists; choose another name or add --force") from None
    console.print(f"rig file written: {escape(str(output))}")
