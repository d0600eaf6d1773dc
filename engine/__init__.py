"""denpo: an async SMS dispatch engine for the Japanese carriers."""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("DENPO_PURE_PYTHON"):
    # The native build (setup.py) puts compiled modules next to their sources and
    # Python imports those first; this makes every engine.* import read the source.
    import importlib.machinery as _machinery
    import sys as _sys

    class _SourceFirst:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            if not name.startswith("engine.") or path is None:
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
