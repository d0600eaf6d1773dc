"""Fuzzing the decoder (and the encoder with garbage values).

Properties, for any input octets:

* the only exception ``decode`` and ``PduDecoder`` raise is SmppProtocolError;
* after a non-fatal error the stream decoder goes on with the next frame, and
  every PDU or non-fatal error consumes at least one header's worth of octets,
  so the loop always ends ("nothing hangs": next_pdu calls are bounded);
* after a fatal error every later call raises again;
* feeding the same octets whole or in random chunks gives the same PDUs and
  errors in the same order;
* a PDU that decodes and re-encodes decodes again to the same PDU.

The mutation fuzzer is seeded (``random.Random(SEED)``): a failure names the
input index, and re-running reproduces it.
"""

from __future__ import annotations

import random
import struct
import time
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp.codec import TLV_KINDS, PduDecoder, decode, encode
from engine.smpp.constants import CommandId, Tag
from engine.smpp.errors import SmppEncodeError, SmppProtocolError
from engine.smpp.pdu import (
    PDU_TYPES,
    CStr,
    DestAddresses,
    DistributionList,
    Int,
    NetworkErrorCode,
    ShortMessage,
    SmeAddress,
    Time,
    UnsuccessSme,
    UnsuccessSmes,
)

from .strategies import PROPERTY_SETTINGS, expected_after_roundtrip, wire_fields

SEED = 0x5EED_D3B0
N_INPUTS = 100_000  # mutated / truncated / concatenated inputs (each holds 1-4 frames)
COMMAND_IDS = [int(c) for c in CommandId]
INTERESTING_U32 = [0, 1, 15, 16, 17, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 65_536, 65_537, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
INTERESTING_U8 = [0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF]


# --- corpus: valid encodings of every PDU type -----------------------------------


def _rand_text(rng: random.Random, max_chars: int) -> str:
    n = rng.choice((0, 0, 1, max_chars, rng.randint(0, max_chars)))
    return bytes(rng.randint(1, 255) for _ in range(n)).decode("latin-1")


def _rand_value(rng: random.Random, kind: object) -> object:
    if isinstance(kind, CStr):
        return _rand_text(rng, min(kind.size - 1, 24))
    if isinstance(kind, Time):
        return rng.choice(("", "250101120000036+", "000001000000000R"))
    if isinstance(kind, Int):
        return rng.choice(INTERESTING_U8) if kind.size == 1 else rng.choice(INTERESTING_U32)
    if isinstance(kind, ShortMessage):
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 5, 40, 160, 254))))
    if isinstance(kind, DestAddresses):
        return tuple(
            SmeAddress(_rand_text(rng, 20), rng.randrange(256), rng.randrange(256))
            if rng.random() < 0.6
            else DistributionList(_rand_text(rng, 20))
            for _ in range(rng.choice((0, 1, 2, 5)))
        )
    if isinstance(kind, UnsuccessSmes):
        return tuple(
            UnsuccessSme(_rand_text(rng, 20), rng.choice(INTERESTING_U32), rng.randrange(256), rng.randrange(256))
            for _ in range(rng.choice((0, 1, 3)))
        )
    raise TypeError(kind)


_TLV_SAMPLES = {
    "u8": lambda rng: rng.randrange(256),
    "u16": lambda rng: rng.randrange(65536),
    "u32": lambda rng: rng.choice(INTERESTING_U32),
    "cstr": lambda rng: _rand_text(rng, 20),
    "octets": lambda rng: bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 3, 30)))),
    "nec": lambda rng: NetworkErrorCode(rng.randrange(256), rng.randrange(65536)),
}


def _rand_tlvs(rng: random.Random) -> dict:
    tlvs: dict = {}
    for _ in range(rng.choice((0, 0, 1, 2, 4))):
        if rng.random() < 0.8:
            tag = rng.choice(list(TLV_KINDS))
            tlvs[tag] = _TLV_SAMPLES[TLV_KINDS[tag]](rng)
        else:
            tlvs[rng.randrange(0x1400, 0x4000)] = bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    return tlvs


def build_corpus(rng: random.Random, per_type: int = 12) -> list[bytes]:
    corpus = []
    for cls in PDU_TYPES:
        fields = wire_fields(cls)
        for _ in range(per_type):
            values = {name: _rand_value(rng, kind) for name, kind in fields}
            pdu = cls(sequence_number=rng.randint(1, 0x7FFFFFFF), tlvs=_rand_tlvs(rng), **values)
            if cls.command_id & 0x80000000 and rng.random() < 0.2:
                pdu.command_status = rng.choice((0x08, 0x0E, 0x58))
            corpus.append(encode(pdu))
    return corpus


# --- mutations --------------------------------------------------------------------


def _bit_flips(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)


def _replace_bytes(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 3)):
        b[rng.randrange(len(b))] = rng.choice(INTERESTING_U8) if rng.random() < 0.5 else rng.randrange(256)


def _insert(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(len(b) + 1)
    b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))


def _delete(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(len(b))
    del b[i : i + rng.randint(1, 8)]


def _corrupt_command_length(rng: random.Random, b: bytearray) -> None:
    n = len(b)
    b[0:4] = struct.pack(">I", rng.choice([*INTERESTING_U32, n + 1, n + 4, max(0, n - 1), max(0, n - 4), rng.randrange(n + 64)]))


def _corrupt_inner_length(rng: random.Random, b: bytearray) -> None:
    """A u16 (TLV tag/length) or u8 (sm_length, number_of_dests, …) somewhere in the body."""
    if len(b) < 18:
        return
    i = rng.randrange(16, len(b) - 1)
    if rng.random() < 0.5:
        b[i : i + 2] = struct.pack(">H", rng.choice((0, 1, 2, 3, 4, 0xFF, 0x100, 0xFFFF, rng.randrange(64))))
    else:
        b[i] = rng.choice(INTERESTING_U8)


def _swap_command_id(rng: random.Random, b: bytearray) -> None:
    b[4:8] = struct.pack(">I", rng.choice(COMMAND_IDS) if rng.random() < 0.9 else rng.randrange(1 << 32))


def _truncate(rng: random.Random, b: bytearray) -> None:
    del b[rng.randrange(len(b)) :]


MUTATIONS = (
    _bit_flips,
    _replace_bytes,
    _insert,
    _delete,
    _corrupt_command_length,
    _corrupt_inner_length,
    _swap_command_id,
    _truncate,
)


def mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not b:
            break
        rng.choice(MUTATIONS)(rng, b)
    # Half the time make command_length consistent again, so the body decoders
    # (not just framing) see the damage.
    if len(b) >= 16 and rng.random() < 0.5:
        b[0:4] = struct.pack(">I", len(b))
    return bytes(b)


def make_input(rng: random.Random, corpus: list[bytes]) -> tuple[bytes, int]:
    """(octets, number of frames that went into them)."""
    if rng.random() < 0.25:  # concatenation: several frames, some mutated
        parts = [rng.choice(corpus) for _ in range(rng.randint(2, 4))]
        parts = [mutate(rng, p) if rng.random() < 0.5 else p for p in parts]
        return b"".join(parts), len(parts)
    return mutate(rng, rng.choice(corpus)), 1


# --- the checks -------------------------------------------------------------------


def _outcome(exc: SmppProtocolError) -> tuple:
    return ("error", exc.status, exc.fatal)


def run_stream(data: bytes, chunks: list[bytes], n_frames: int) -> tuple[list, int]:
    """Feed ``chunks``, draining after each; return (outcomes, octets left buffered).

    Asserts on the way: only SmppProtocolError, progress per PDU/error, fatal is sticky,
    and a bound on next_pdu calls.
    """
    dec = PduDecoder()
    outcomes: list = []
    budget = n_frames + len(data) + 2
    calls = 0
    for chunk in chunks:
        dec.feed(chunk)
        while True:
            calls += 1
            assert calls <= budget, f"next_pdu called {calls} times for {len(data)} octets: hang"
            before = dec.buffered
            try:
                pdu = dec.next_pdu()
            except SmppProtocolError as exc:
                outcomes.append(_outcome(exc))
                if exc.fatal:
                    with pytest.raises(SmppProtocolError) as again:
                        dec.next_pdu()
                    assert again.value.fatal
                    return outcomes, -1
                assert dec.buffered <= before - 16  # the bad frame was consumed
                continue
            if pdu is None:
                assert dec.buffered == before
                break
            assert dec.buffered <= before - 16
            outcomes.append(("pdu", pdu))
    return outcomes, dec.buffered


def check_reencode(pdu) -> None:
    try:
        again = encode(pdu)
    except SmppEncodeError:
        return  # lenient decoding accepted something the strict encoder refuses (e.g. a 17-char time)
    assert decode(again) == expected_after_roundtrip(pdu)


def check_input(rng: random.Random, data: bytes, n_frames: int) -> tuple[int, int]:
    """All properties for one input; returns (PDUs decoded, protocol errors)."""
    pdus = errors = 0
    try:
        pdu = decode(data)
    except SmppProtocolError:
        errors += 1
    else:
        pdus += 1
        check_reencode(pdu)

    whole, left_whole = run_stream(data, [data], n_frames)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6)))) if len(data) > 1 else []
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    chunked, left_chunked = run_stream(data, chunks, n_frames)
    # however the bytes are split over reads, the outcome is the same
    assert chunked == whole, (whole, chunked)
    assert left_chunked == left_whole
    for kind, *rest in whole:
        if kind == "pdu":
            pdus += 1
            check_reencode(rest[0])
        else:
            errors += 1
    return pdus, errors


def test_mutation_fuzz() -> None:
    rng = random.Random(SEED)
    corpus = build_corpus(rng)
    assert len(corpus) == 12 * len(PDU_TYPES)
    for frame in corpus:  # sanity: the corpus itself is valid
        decode(frame)

    started = time.perf_counter()
    frames = pdus = errors = 0
    for index in range(N_INPUTS):
        data, n = make_input(rng, corpus)
        frames += n
        try:
            p, e = check_input(rng, data, n)
        except Exception as exc:  # name the input, for reproduction
            raise AssertionError(f"input #{index} (seed {SEED:#x}): {data.hex()}") from exc
        pdus += p
        errors += e
    elapsed = time.perf_counter() - started

    assert frames >= 100_000
    # the fuzzer must reach both outcomes in quantity, or it tests nothing
    assert pdus > 20_000 and errors > 20_000, (pdus, errors)
    print(f"\nfuzz: {N_INPUTS} inputs, {frames} frames, {pdus} PDUs, {errors} errors in {elapsed:.1f} s")


def test_mutation_fuzz_reaches_every_error_status() -> None:
    """The mutations must produce every status the decoder knows, or the fuzzer is too weak."""
    rng = random.Random(SEED + 1)
    corpus = build_corpus(rng, per_type=3)
    statuses = set()
    fatal = nonfatal = 0
    for _ in range(5000):
        data, _n = make_input(rng, corpus)
        try:
            decode(data)
        except SmppProtocolError as exc:
            statuses.add(exc.status)
            fatal += exc.fatal
            nonfatal += not exc.fatal
    assert {0x02, 0x03, 0xC0} <= statuses
    assert fatal > 100 and nonfatal > 100


# --- hypothesis: arbitrary octets ---------------------------------------------------


def _check_arbitrary(data: bytes, cut_seed: int) -> None:
    check_input(random.Random(cut_seed), data, n_frames=max(1, len(data) // 16))


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(data=st.binary(max_size=400), cut_seed=st.integers(0, 2**32))
def test_arbitrary_bytes(data: bytes, cut_seed: int) -> None:
    _check_arbitrary(data, cut_seed)


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(
    command_id=st.one_of(st.sampled_from(COMMAND_IDS), st.integers(0, 2**32 - 1)),
    status=st.sampled_from([0, 0, 1, 0x45]),
    body=st.binary(max_size=300),
    tail=st.binary(max_size=40),
    cut_seed=st.integers(0, 2**32),
)
def test_valid_header_arbitrary_body(command_id: int, status: int, body: bytes, tail: bytes, cut_seed: int) -> None:
    data = struct.pack(">IIII", 16 + len(body), command_id, status, 7) + body + tail
    _check_arbitrary(data, cut_seed)


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(
    prefix=st.sampled_from(list(range(0, 60))),
    cls=st.sampled_from(PDU_TYPES),
    raw_tlvs=st.lists(st.tuples(st.sampled_from([*TLV_KINDS, 0x1400, 0xFFFF]), st.binary(max_size=12)), max_size=5),
    junk=st.binary(max_size=6),
)
def test_body_prefix_plus_arbitrary_tlvs(prefix: int, cls, raw_tlvs: list, junk: bytes) -> None:
    """A real body (cut anywhere), then a TLV stream of any sizes, then junk."""
    body = encode(cls())[16:][:prefix]
    body += b"".join(struct.pack(">HH", t, len(v)) + v for t, v in raw_tlvs) + junk
    data = struct.pack(">IIII", 16 + len(body), cls.command_id, 0, 9) + body
    _check_arbitrary(data, prefix)


# --- the encoder with garbage values ---------------------------------------------------

_GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=300),
    st.lists(st.integers(-2, 300), max_size=4),
    st.tuples(st.integers(-1, 70000), st.integers(-1, 70000)),
    st.just((SmeAddress("1"), DistributionList("d"))),
    st.just((UnsuccessSme("1", 5),)),
)


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(data=st.data(), cls=st.sampled_from(PDU_TYPES))
def test_encoder_raises_only_smpp_encode_error(data: st.DataObject, cls) -> None:
    """Garbage in any field: encode() either raises SmppEncodeError or produces a frame that decodes."""
    names = [name for name, _kind in wire_fields(cls)] + ["sequence_number", "command_status"]
    chosen = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []
    values = {name: data.draw(_GARBAGE, label=name) for name in chosen}
    tlvs = data.draw(
        st.one_of(
            st.just({}),
            st.dictionaries(st.sampled_from([*TLV_KINDS, 0x1400, 0x10000, -1]), _GARBAGE, max_size=3),
            _GARBAGE,
        ),
        label="tlvs",
    )
    pdu = cls(tlvs=tlvs, **values)
    try:
        wire = encode(pdu)
    except SmppEncodeError:
        return
    assert isinstance(wire, bytes)
    back = decode(wire)  # whatever was accepted went out as a valid frame
    assert type(back) is cls
    assert struct.unpack_from(">I", wire)[0] == len(wire)


def test_corpus_covers_every_kind() -> None:
    """The corpus builder knows every wire kind and TLV kind (a new one must be added here)."""
    kinds = {type(k) for cls in PDU_TYPES for _n, k in wire_fields(cls)}
    assert kinds == {CStr, Time, Int, ShortMessage, DestAddresses, UnsuccessSmes}
    assert all("tlvs" in typing.get_type_hints(cls) for cls in PDU_TYPES)
    assert set(_TLV_SAMPLES) == set(TLV_KINDS.values())
    assert TLV_KINDS[Tag.MESSAGE_PAYLOAD] == "octets"
