"""Rich progress bars shared by the calibration commands."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from indical.cli import err_console


def progress_bar() -> Progress:
    """A progress bar on stderr that disappears when the work is done."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=True)


def masters_on_cluster(cluster, orders, *, rows_per_task: int | None = None):
    """Build MasterOrders on an indical.calib.cluster.Cluster with a bar each (rows combined,
    as a local build shows them); yields (order, MasterWritten or IndicalError) in order."""
    from datetime import datetime, timezone

    from rich.markup import escape
    now = datetime.now(timezone.utc)   # every master's DATE: a task run twice writes the same
    with progress_bar() as bar:
        bars = [bar.add_task(f"combining {len(o.spec.paths)} frames -> {escape(o.out.name)}",
                             total=None) for o in orders]

        def show(p) -> None:
            bar.update(bars[p.index], completed=p.done,
                       **({} if p.total is None else {"total": p.total}))

        built_all = cluster.build_masters(orders, now=now, rows_per_task=rows_per_task,
                                          progress=show)
        for n, (order, built) in enumerate(built_all):
            bar.update(bars[n], visible=False)   # done: its bar goes, as a local build's does
            yield order, built
