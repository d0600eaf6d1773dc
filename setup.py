"""Optional native build: the hot modules compiled with mypyc (scripts/setup builds it).

Without ``DENPO_NATIVE_BUILD=1`` this adds nothing and denpo installs as pure
Python.  With it, the modules listed in pyproject.toml (``[tool.denpo]
native-modules``) become C extensions next to their ``.py`` sources
(``DENPO_NATIVE_BUILD=1 python setup.py build_ext --inplace``, which is what
scripts/build-native runs).  Python imports an extension before the source of the
same name; engine/__init__.py falls back to the sources when they are newer than
the build, and when ``DENPO_PURE_PYTHON=1``.
"""

from __future__ import annotations

import os
import tomllib

from setuptools import setup


def native_modules() -> list[str]:
    """The modules to compile: ``[tool.denpo] native-modules`` in pyproject.toml."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["denpo"]["native-modules"]


ext_modules = []
if os.environ.get("DENPO_NATIVE_BUILD") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(native_modules(), opt_level="3", group_name="engine._native")

setup(ext_modules=ext_modules)
