"""Shared fixtures. Unit tests need no hardware and no servers; tests under tests/system start
real processes (indiserver, drivers) and are marked `system`."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """INDI drivers and indical write under $HOME: keep every test away from the real one."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    # compiled helpers (the C combine kernel, the loopback shim) are built once per session,
    # not once per test (each build takes a second or two)
    # (made here: astropy warns about an XDG_CACHE_HOME that does not exist yet)
    cache = tmp_path_factory.getbasetemp() / "cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    yield


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/system" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server for the session (see postgres_server.py)."""
    from postgres_server import PostgresServer
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def library_target(request, tmp_path, monkeypatch):
    """A new calibration library on each backend: an SQLite file under tmp_path/lib, or an
    empty PostgreSQL database whose files go under tmp_path/lib."""
    if request.param == "sqlite":
        return tmp_path / "lib" / "library.sqlite"
    monkeypatch.setenv("INDICAL_LIBRARY_ROOT", str(tmp_path / "lib"))
    return request.getfixturevalue("postgres").new_database()
