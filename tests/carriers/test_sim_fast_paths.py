"""The simulator's hot-path shortcuts give what the general paths give.

The simulator encodes its submit_sm_resp and its receipts' deliver_sm bodies
by hand rather than through the engine's codec, and keeps a number's submit
times as a bare float until its second message; each is held equal here to
what the general path makes.
"""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carriers.smsc import SmscSimulator, _Receipt, _sample, _submit_sm_resp_body, _times
from engine.ops.config import simulator_settings
from engine.smpp.codec import encode
from engine.smpp.constants import CommandId, Status, Tag
from engine.smpp.pdu import DeliverSm, SubmitSm, SubmitSmResp

from .simkit import bind, running, sm

ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=64)
statuses = st.sampled_from([0, int(Status.ESME_RTHROTTLED), int(Status.ESME_RMSGQFUL), int(Status.ESME_RINVMSGLEN), 0x45])


@given(status=statuses, message_id=ids)
def test_submit_sm_resp_body_is_the_codecs(status, message_id):
    # the simulator answers an error without a message id
    mid = "" if status else message_id
    assert _submit_sm_resp_body(status, mid) == encode(SubmitSmResp(sequence_number=7, command_status=status, message_id=mid))[16:]


@pytest.mark.parametrize("status, message_id", [(0, "1"), (0, "ff"), (0, "1735689615000001"), (0x58, ""), (0x14, "")])
def test_submit_sm_resp_body_table(status, message_id):
    assert _submit_sm_resp_body(status, message_id) == encode(SubmitSmResp(command_status=status, message_id=message_id))[16:]


@pytest.mark.parametrize("messages", [1, 2, 3, 64, 65, 200])
def test_submit_times_float_then_deque_keeps_the_last_64(messages):
    sim = SmscSimulator(simulator_settings(carrier="docomo", port=0))
    times = [1000.0 + 0.25 * k for k in range(messages)]
    for t in times:
        sim._track("819012345678", t)
    assert sim.submit_times("819012345678") == times[-64:]
    assert sim.stats(numbers=True)["submit_times"] == {"819012345678": times[-64:]}
    assert sim.submit_times("819000000000") == []


def test_track_numbers_bound_counts_single_and_repeated_numbers():
    sim = SmscSimulator(simulator_settings(carrier="docomo", port=0, track_numbers=2))
    for number in ("a", "b", "a", "c"):
        sim._track(number, 5.0)
    assert sim.stats(numbers=True)["submit_times"] == {"a": [5.0, 5.0], "b": [5.0]}
    assert _times(5.0) == [5.0]


@pytest.mark.looptime
async def test_response_delay_path_answers_as_the_hot_path():
    """With response_delay_ms the simulator still builds SubmitSmResp objects;
    both paths give the client the same responses, accepted and refused."""
    answers = {}
    for delay in (0, 1):
        async with running("docomo", message_id_base=100, response_delay_ms=delay) as sim:
            esme = await bind(sim)
            ok = await esme.request(sm("819012345678", rd=0), timeout=5)
            sim.update(reject_rate=1.0)
            refused = await esme.request(sm("819012345678", rd=0), timeout=5)
            answers[delay] = [(r.command_id, r.command_status, r.message_id, r.tlvs) for r in (ok, refused)]
            await esme.close()
    assert answers[0] == answers[1]
    assert [a[:3] for a in answers[0]] == [(CommandId.SUBMIT_SM_RESP, 0, "101"), (CommandId.SUBMIT_SM_RESP, answers[0][1][1], "")]
    assert answers[0][1][1] != 0


@given(
    base=st.integers(0, 10**6),
    styles=st.lists(st.booleans(), min_size=1, max_size=300),
    window=st.integers(1, 120),
    extra=st.lists(st.text(alphabet="0123456789abcdefABCDEF_x -", max_size=8), max_size=10),
)
def test_recent_receipt_finds_what_a_dict_of_the_window_finds(base, styles, window, extra):
    """_recent_receipt (the receipt's place from its number) against the plain
    way: a dict of the last ``window`` receipts by id, the latest one winning.
    ``styles`` switches between decimal and hex ids as update() may."""
    sim = SmscSimulator(simulator_settings(carrier="docomo", port=0))
    sim._recent = collections.deque(maxlen=window)
    issued = []
    for k, hex_ids in enumerate(styles):
        n = base + k
        mid = f"{n:x}" if hex_ids else str(n)
        sim._recent.append(_Receipt("denpo", None, message_id=mid, n=n))
        issued.append(mid)
    by_id = {r.message_id: r for r in sim._recent}
    for query in issued + extra + [str(base - 1), str(base + len(styles))]:
        assert sim._recent_receipt(query) is by_id.get(query)


_STATES = [(2, "DELIVRD"), (3, "EXPIRED"), (4, "DELETED"), (5, "UNDELIV"), (8, "REJECTD")]


@pytest.mark.parametrize("state, stat", _STATES)
@pytest.mark.parametrize("err", [0, 1, 6, 12, 999, 1234])
@pytest.mark.parametrize(
    "data_coding, text",
    [(0, b"Hello world, this is longer than twenty"), (0, b"\x1b<esc"), (8, "Hi there".encode("utf-16-be")), (8, "こんにちは".encode("utf-16-be")), (0, b"")],
)
@pytest.mark.parametrize("message_id, text_id", [("1735689615000001", None), ("ff3a", None), ("ff3a", b"65338"), ("42", b"2a")])
def test_receipt_body_is_the_codecs_deliver_sm(state, stat, err, data_coding, text, message_id, text_id):
    submit = SubmitSm(
        source_addr_ton=5, source_addr_npi=0, source_addr="DENPO", dest_addr_ton=1, dest_addr_npi=1,
        destination_addr="819012345678", data_coding=data_coding, short_message=text,
    )
    receipt = _Receipt("denpo", None, message_id=message_id, n=7, submit=submit, text=text, state=state, err=err)
    failed = stat != "DELIVRD"
    shown_id = message_id if text_id is None else text_id.decode()
    expected_text = (
        f"id:{shown_id} sub:001 dlvrd:{'000' if failed else '001'} submit date:2501010900 done date:2501010901"
        f" stat:{stat} err:{err:03d} text:"
    ).encode() + _sample(text, data_coding)
    tlvs: dict[int, object] = {Tag.RECEIPTED_MESSAGE_ID: message_id, Tag.MESSAGE_STATE: state}
    if failed:
        tlvs[Tag.NETWORK_ERROR_CODE] = bytes([3]) + err.to_bytes(2, "big")
    expected = DeliverSm(
        source_addr_ton=1, source_addr_npi=1, source_addr="819012345678", dest_addr_ton=5, dest_addr_npi=0,
        destination_addr="DENPO", esm_class=4, short_message=expected_text, tlvs=tlvs,
    )
    assert receipt.encode_body(text_id, b"2501010900", b"2501010901") == encode(expected)[16:]
