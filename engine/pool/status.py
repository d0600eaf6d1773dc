"""What a submit response's command_status means for the message: the one table.

SMPP 3.4 does not say which codes are transient; this follows what real
stacks do (shared/DOMAIN.md §1.8: Kannel, Jasmin, naz) and keeps the
carrier-specific range (0x400-0x4FF) overridable per carrier.

=============  ===========================================================
class          the pool's action
=============  ===========================================================
``OK``         record the carrier's message id
``THROTTLE``   back-pressure, not the message's fault: lower the sending
               rate and send the message again
``TRANSIENT``  the SMSC's trouble: send again after a backoff, a few times
``SESSION``    the bind is in a bad state: send again (on another bind)
``PERMANENT``  the message itself is refused: final failure, status kept
=============  ===========================================================
"""

from __future__ import annotations

import enum
from typing import Mapping

from engine.smpp.constants import Status

__all__ = ["Outcome", "classify", "DEFAULT_TABLE"]


class Outcome(enum.Enum):
    OK = "ok"
    THROTTLE = "throttle"
    TRANSIENT = "transient"
    SESSION = "session"
    PERMANENT = "permanent"


S = Status
DEFAULT_TABLE: Mapping[int, Outcome] = {
    S.ESME_ROK: Outcome.OK,
    S.ESME_RTHROTTLED: Outcome.THROTTLE,
    S.ESME_RMSGQFUL: Outcome.THROTTLE,
    S.ESME_RSYSERR: Outcome.TRANSIENT,
    S.ESME_RX_T_APPN: Outcome.TRANSIENT,
    S.ESME_RUNKNOWNERR: Outcome.TRANSIENT,
    S.ESME_RINVBNDSTS: Outcome.SESSION,
    S.ESME_RINVCMDID: Outcome.SESSION,  # our PDU was not understood as a command: not the message's fault
    S.ESME_RINVCMDLEN: Outcome.SESSION,
}
"""Codes not listed here are permanent: invalid destination or source,
message too long, bad parameters, ESME_RSUBMITFAIL, the vendor range."""


def classify(status: int, overrides: Mapping[int, Outcome] | None = None) -> Outcome:
    """The outcome class of a submit response status; ``overrides`` (per carrier) win."""
    if overrides:
        outcome = overrides.get(status)
        if outcome is not None:
            return outcome
    return DEFAULT_TABLE.get(status, Outcome.PERMANENT)
