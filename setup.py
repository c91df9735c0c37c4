"""All of the package's metadata is in pyproject.toml; this adds one step.

The wheel ships copies of policies/ and deploy/ as accord/_data/policies and
accord/_data/deploy, so that an installed accord finds its default policies
and federation file (accord.workdir) outside a checkout. The folders stay at
the top of the repository, where the design names them. An editable install
copies nothing: accord.workdir then reads them from the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("policies", "deploy")  # read by accord.workdir.shipped()


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED:
            target = Path(self.build_lib) / "accord" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(HERE / name, target, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithData})
