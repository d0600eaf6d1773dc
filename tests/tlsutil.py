"""Self-signed TLS contexts for 127.0.0.1 in tests (trustme when installed, else the openssl CLI)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

__all__ = ["can_make_certificates", "self_signed"]


def self_signed(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """(server context, client context) for 127.0.0.1: trustme, else the openssl CLI."""
    try:
        import trustme  # type: ignore[import-not-found]
    except ImportError:
        trustme = None
    server_ctx, client_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), ssl.create_default_context()
    if trustme is not None:
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        ca.configure_trust(client_ctx)
        return server_ctx, client_ctx
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    server_ctx.load_cert_chain(cert, key)
    client_ctx.load_verify_locations(cert)
    return server_ctx, client_ctx


def can_make_certificates() -> bool:
    try:
        import trustme  # noqa: F401
    except ImportError:
        return shutil.which("openssl") is not None
    return True
