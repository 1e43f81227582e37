"""`--scheduler ADDRESS`, shared by the commands that can run on a Dask cluster."""

from __future__ import annotations

from contextlib import nullcontext

import click

SCHEDULER_OPTION = click.option(
    "--scheduler", default=None, envvar="INDICAL_SCHEDULER", metavar="ADDRESS",
    help="Run the work on this Dask distributed scheduler (e.g. tcp://10.0.0.5:8786; default "
         "$INDICAL_SCHEDULER, else local processes). Workers must see the files at the same "
         "paths.")


def connect(address: str | None):
    """A context manager giving a connected indical.calib.cluster.Cluster, or None without an
    address (Dask is then never imported)."""
    if not address:
        return nullcontext(None)
    from indical.calib.cluster import Cluster
    return Cluster(address)
