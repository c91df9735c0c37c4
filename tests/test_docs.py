"""Every doctest in the packages runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import accord
import adapters
import app
import broker
import certs

MODULES = sorted(
    info.name
    for package in (accord, adapters, app, broker, certs)
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    if ".v1." not in info.name and not info.name.endswith(".protogen")
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
