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
