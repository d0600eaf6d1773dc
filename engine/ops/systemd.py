"""systemd's notify protocol (``Type=notify``), without a dependency.

``sd_notify`` is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket
named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written ``@name``).
:class:`SystemdNotifier` reads (and, like ``sd_notify(unset_environment=1)``,
removes) the variables, so child processes such as the simulators do not
inherit them.  Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

What ``denpo serve`` sends:

* ``READY=1`` once the store is open and HTTP serves (carriers bind in the
  background: one carrier's outage must not block the start);
* ``WATCHDOG=1`` every ``WatchdogSec/2`` from a timer on the event loop, when
  ``$WATCHDOG_USEC`` is set (and ``$WATCHDOG_PID``, if set, is this process):
  a loop that is stuck stops pinging and systemd restarts the service;
* ``STATUS=…`` every few seconds: throughput, backlog, binds up per carrier
  (``systemctl status denpo`` shows the last one);
* ``STOPPING=1`` when shutdown begins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, MutableMapping

__all__ = ["SystemdNotifier", "Heartbeat"]

log = logging.getLogger("denpo.systemd")


class SystemdNotifier:
    """``SystemdNotifier()`` reads the environment once; :meth:`notify` sends."""

    def __init__(self, environ: MutableMapping[str, str] | None = None, *, unset: bool = True) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or ""
        usec = env.get("WATCHDOG_USEC") or ""
        pid = env.get("WATCHDOG_PID") or ""
        if unset:
            for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(key, None)
        self.address: str | bytes | None = None
        if address.startswith("@"):
            self.address = b"\0" + address[1:].encode()  # abstract namespace
        elif address.startswith("/"):
            self.address = address
        elif address:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: not notifying", address)
        self.watchdog_usec = 0
        if usec.isdigit() and int(usec) > 0 and (not pid or (pid.isdigit() and int(pid) == os.getpid())):
            self.watchdog_usec = int(usec)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None."""
        return self.watchdog_usec / 2e6 if self.enabled and self.watchdog_usec else None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; False (logged once) when it could not be sent."""
        if self.address is None:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self.address)
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()), f"MAINPID={os.getpid()}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Heartbeat:
    """Timers on the running loop: WATCHDOG=1 every ``watchdog_interval`` and
    ``STATUS=<status()>`` every ``status_interval`` seconds.  Being loop timers,
    they stop when the loop is stuck, which is the point of the watchdog."""

    def __init__(self, notifier: SystemdNotifier, status: Callable[[], str], *, status_interval: float = 2.0) -> None:
        self.notifier = notifier
        self.status = status
        self.status_interval = status_interval
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if not self.notifier.enabled:
            return
        self._loop = asyncio.get_running_loop()
        if self.notifier.watchdog_interval:
            self._watchdog()
        self._handles["status"] = self._loop.call_later(self.status_interval, self._status)

    def _watchdog(self) -> None:
        assert self._loop is not None and self.notifier.watchdog_interval
        self.notifier.watchdog()
        self._handles["watchdog"] = self._loop.call_later(self.notifier.watchdog_interval, self._watchdog)

    def _status(self) -> None:
        assert self._loop is not None
        try:
            self.notifier.status(self.status())
        except Exception:  # noqa: BLE001 - a status line must not stop the heartbeat
            log.exception("STATUS line failed")
        self._handles["status"] = self._loop.call_later(self.status_interval, self._status)

    def stop_status(self) -> None:
        """No further STATUS lines (the watchdog goes on until :meth:`stop`)."""
        handle = self._handles.pop("status", None)
        if handle is not None:
            handle.cancel()

    def stop(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
