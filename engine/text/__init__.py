"""denpo text layer: GSM 03.38 / UCS-2 encoding, segmentation, per-carrier limits and billing.

Pure: no I/O, no event loop, no clock. One entry point, :func:`plan`, turns
a text and a carrier profile into an immutable :class:`TextPlan` — encoding,
data_coding, the exact wire payloads (UDH included), SPEC's character
count, billing units and byte accounting — or raises :class:`TextError`
(never truncates, never substitutes). The receive-side helpers
(:func:`decode_wire`, :func:`count_characters`, :func:`parse_concat_udh`)
let the SMSC simulators count what arrives the same way.

Decisions are documented in the private modules: ``_gsm`` (0x09 = 'Ç',
escapes, packing), ``_profiles`` (why the Japanese carriers are UCS-2 with
udh8 / udh16 / message_payload), ``_plan`` (newline rule, counting,
splitting, billing).
"""

from engine.text._cli import add_text_arguments, cli_main, run_text_command
from engine.text._errors import TextError
from engine.text._gsm import (
    EXTENSION,
    GSM_CHARS,
    decode_gsm7,
    encode_gsm7,
    gsm7_fits,
    pack_gsm7,
    septet_length,
    unpack_gsm7,
)
from engine.text._plan import (
    ConcatInfo,
    TextPlan,
    count_characters,
    decode_wire,
    parse_concat_udh,
    plan,
    wire_form,
)
from engine.text._profiles import PROFILES, TextProfile, resolve_profile

__all__ = [
    "EXTENSION",
    "GSM_CHARS",
    "PROFILES",
    "ConcatInfo",
    "TextError",
    "TextPlan",
    "TextProfile",
    "add_text_arguments",
    "cli_main",
    "count_characters",
    "decode_gsm7",
    "decode_wire",
    "encode_gsm7",
    "gsm7_fits",
    "pack_gsm7",
    "parse_concat_udh",
    "plan",
    "resolve_profile",
    "run_text_command",
    "septet_length",
    "unpack_gsm7",
    "wire_form",
]
