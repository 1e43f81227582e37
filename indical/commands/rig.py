"""`indical rig check`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from indical.cli import console
from indical.errors import IndicalError
from indical.rig import load_rig, open_rig


@click.group()
def rig() -> None:
    """Inspect rig files."""


@rig.command("check")
@click.argument("rig_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def rig_check(rig_file: Path | None) -> None:
    """Connect every role of RIG_FILE and say what each device is and can do."""
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
