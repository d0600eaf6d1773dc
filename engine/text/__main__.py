"""``python -m engine.text --carrier C [--ref N] TEXT`` (same as ``denpo text``)."""

from engine.text._cli import cli_main

raise SystemExit(cli_main())
