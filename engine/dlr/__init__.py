"""Delivery receipts: parsing, id correlation (hex/decimal, receipt before response),
multi-part aggregation into the one status model (engine.model.MessageStatus).

Pure: no I/O, no event loop, no clock reads (``now`` is passed in)."""

from engine.dlr.correlate import Correlator, CorrelatorConfig, Orphan
from engine.dlr.ids import IdForm, IdScheme, id_key
from engine.dlr.outcome import (
    Outcome,
    PartResult,
    late_update,
    merge_part,
    message_outcome,
    part_result,
)
from engine.dlr.receipt import (
    FINAL_STATES,
    JST,
    Receipt,
    parse_receipt,
    receipt_datetime,
    stat_for_state,
    state_for_stat,
)

__all__ = [
    "FINAL_STATES",
    "JST",
    "Correlator",
    "CorrelatorConfig",
    "IdForm",
    "IdScheme",
    "Orphan",
    "Outcome",
    "PartResult",
    "Receipt",
    "id_key",
    "late_update",
    "merge_part",
    "message_outcome",
    "parse_receipt",
    "part_result",
    "receipt_datetime",
    "stat_for_state",
    "state_for_stat",
]
