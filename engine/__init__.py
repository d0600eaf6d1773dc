"""denpo: an async SMS dispatch engine for the Japanese carriers."""

import os as _os
import sys as _sys

__version__ = "0.1.0"


def _stale_native() -> str | None:
    """The first compiled module's source newer than the native build (setup.py), or None."""
    root = _os.path.dirname(__file__)
    built = [name for name in _os.listdir(root) if name.startswith("_native__mypyc")]
    if not built:
        return None  # no native build: pure Python
    # (the per-module .so files are stubs, rewritten only when added: the code is in this one)
    when = _os.path.getmtime(_os.path.join(root, built[0]))
    for folder, dirs, files in _os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith((".so", ".pyd")) and not name.startswith("_native__mypyc"):
                source = _os.path.join(folder, name.split(".", 1)[0] + ".py")
                try:
                    if _os.path.getmtime(source) > when:
                        return source
                except OSError:
                    continue
    return None


# DENPO_PURE_PYTHON=1: every engine.* module from its source, even with the native
# build in place; or a comma-separated list of modules (and packages) to take from source
# (measuring what compiling each one buys).
_pure_env = _os.environ.get("DENPO_PURE_PYTHON", "")
if _pure_env in ("", "0"):
    _pure: tuple[str, ...] = ()
elif _pure_env == "1":
    _pure = ("engine",)
else:
    _pure = tuple(m.strip() for m in _pure_env.split(",") if m.strip())
if not _pure and (_stale := _stale_native()) is not None:
    # compiled code older than its source would run what the source no longer says
    import warnings as _warnings

    _warnings.warn(f"denpo: the native build is older than {_stale}; running pure Python (rebuild: scripts/setup)", stacklevel=2)
    _pure = ("engine",)

if _pure:
    # The native build puts compiled modules next to their sources and Python imports
    # those first; this makes those engine.* imports read the source instead.
    import importlib.machinery as _machinery

    class _SourceFirst:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            if path is None or not any(name == m or name.startswith(m + ".") for m in _pure):
                return None
            loaders = [
                (_machinery.SourceFileLoader, _machinery.SOURCE_SUFFIXES),
                (_machinery.SourcelessFileLoader, _machinery.BYTECODE_SUFFIXES),
            ]
            for entry in path:  # type: ignore[attr-defined]
                spec = _machinery.FileFinder(entry, *loaders).find_spec(name)
                if spec is not None:
                    return spec
            return None

    _sys.meta_path.insert(0, _SourceFirst)  # type: ignore[arg-type]
