"""Session state machine: both roles, no event loop, time passed in and asserted exactly."""

from __future__ import annotations

import pytest

from engine.smpp.codec import PduDecoder, encode
from engine.smpp.constants import CommandId, Status
from engine.smpp.errors import SmppStateError, WindowFull
from engine.smpp.pdu import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    DataSmResp,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    ReplaceSm,
    ReplaceSmResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from engine.smpp.session import (
    MAX_SEQUENCE,
    REQUEST_RULES,
    Idle,
    IllegalRequest,
    ProtocolError,
    Request,
    Response,
    Role,
    Session,
    State,
    Timeout,
    Unbound,
    UnexpectedResponse,
)


def pdus(data: bytes) -> list[Pdu]:
    dec = PduDecoder()
    dec.feed(data)
    out = []
    while (p := dec.next_pdu()) is not None:
        out.append(p)
    return out


def wire(session: Session) -> list[Pdu]:
    return pdus(session.data_to_send())


def pair(bind: type[Pdu] = BindTransceiver, **opts: float) -> tuple[Session, Session]:
    """An ESME and an SMSC session bound to each other at t=0."""
    esme = Session(Role.ESME, **opts)  # type: ignore[arg-type]
    smsc = Session(Role.SMSC, **opts)  # type: ignore[arg-type]
    esme.send(bind(system_id="x", password="y"), 0.0)
    (req,) = smsc.receive_data(esme.data_to_send(), 0.0)
    assert isinstance(req, Request)
    resp_cls = {BindTransceiver: BindTransceiverResp, BindTransmitter: BindTransmitterResp, BindReceiver: BindReceiverResp}[bind]
    smsc.send(resp_cls(sequence_number=req.pdu.sequence_number, system_id="smsc"), 0.0)
    (resp,) = esme.receive_data(smsc.data_to_send(), 0.0)
    assert isinstance(resp, Response)
    return esme, smsc


# --- binding --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "state"),
    [(BindTransmitter, State.BOUND_TX), (BindReceiver, State.BOUND_RX), (BindTransceiver, State.BOUND_TRX)],
)
def test_bind_moves_both_sides_to_the_bound_state(bind: type[Pdu], state: State) -> None:
    esme, smsc = pair(bind)
    assert esme.state is state and smsc.state is state


def test_esme_is_binding_until_the_response_and_may_send_nothing_else() -> None:
    esme = Session(Role.ESME)
    esme.send(BindTransceiver(), 0.0)
    assert esme.state is State.BINDING
    with pytest.raises(SmppStateError):
        esme.send(SubmitSm(), 0.0)


def test_refused_bind_returns_the_esme_to_open() -> None:
    esme = Session(Role.ESME)
    seq = esme.send(BindTransceiver(), 0.0)
    events = esme.receive_data(encode(BindTransceiverResp(sequence_number=seq, command_status=Status.ESME_RINVPASWD)), 1.0)
    assert isinstance(events[0], Response) and events[0].pdu.command_status == Status.ESME_RINVPASWD
    assert esme.state is State.OPEN


def test_smsc_refusing_a_bind_stays_open_and_can_accept_a_retry() -> None:
    smsc = Session(Role.SMSC)
    (req,) = smsc.receive_data(encode(BindTransmitter(sequence_number=1)), 0.0)
    smsc.send(BindTransmitterResp(sequence_number=1, command_status=Status.ESME_RBINDFAIL), 0.0)
    assert smsc.state is State.OPEN
    (req,) = smsc.receive_data(encode(BindTransmitter(sequence_number=2)), 0.0)
    smsc.send(BindTransmitterResp(sequence_number=2), 0.0)
    assert smsc.state is State.BOUND_TX


def test_second_bind_on_a_bound_session_is_answered_alreadybound() -> None:
    esme, smsc = pair()
    smsc.data_to_send()
    (ev,) = smsc.receive_data(encode(BindTransceiver(sequence_number=9)), 1.0)
    assert isinstance(ev, IllegalRequest) and ev.status == Status.ESME_RALYBND
    (answer,) = wire(smsc)
    assert isinstance(answer, BindTransceiverResp)
    assert (answer.sequence_number, answer.command_status) == (9, Status.ESME_RALYBND)


def test_esme_treats_alreadybound_as_bound() -> None:
    esme = Session(Role.ESME)
    seq = esme.send(BindTransmitter(), 0.0)
    esme.receive_data(encode(BindTransmitterResp(sequence_number=seq, command_status=Status.ESME_RALYBND)), 0.0)
    assert esme.state is State.BOUND_TX


def test_outbind_then_bind_receiver() -> None:
    smsc = Session(Role.SMSC)
    esme = Session(Role.ESME)
    smsc.send(Outbind(system_id="smsc", password="pw"), 0.0)
    assert smsc.outstanding == 0  # outbind has no response
    (ev,) = esme.receive_data(smsc.data_to_send(), 0.0)
    assert isinstance(ev, Request) and isinstance(ev.pdu, Outbind)
    esme.send(BindReceiver(system_id="esme"), 0.0)
    (req,) = smsc.receive_data(esme.data_to_send(), 0.0)
    smsc.send(BindReceiverResp(sequence_number=req.pdu.sequence_number), 0.0)
    esme.receive_data(smsc.data_to_send(), 0.0)
    assert esme.state is State.BOUND_RX and smsc.state is State.BOUND_RX


def test_bind_response_timeout_returns_to_open() -> None:
    esme = Session(Role.ESME, response_timeout=5.0)
    esme.send(BindTransceiver(), 10.0)
    assert esme.next_deadline() == 15.0
    assert esme.handle_timers(14.999) == []
    (ev,) = esme.handle_timers(15.0)
    assert isinstance(ev, Timeout) and ev.command_id == CommandId.BIND_TRANSCEIVER
    assert esme.state is State.OPEN


# --- the legal-PDU table --------------------------------------------------------------


def test_table_matches_spec_table_2_1() -> None:
    esme_only_tx = {CommandId.SUBMIT_SM, CommandId.SUBMIT_MULTI, CommandId.QUERY_SM, CommandId.CANCEL_SM}
    for cmd in esme_only_tx:
        who, states = REQUEST_RULES[cmd]
        assert who == {Role.ESME} and states == {State.BOUND_TX, State.BOUND_TRX}
    assert REQUEST_RULES[CommandId.DELIVER_SM] == ({Role.SMSC}, {State.BOUND_RX, State.BOUND_TRX})
    assert REQUEST_RULES[CommandId.ALERT_NOTIFICATION] == ({Role.SMSC}, {State.BOUND_RX, State.BOUND_TRX})
    for cmd in (CommandId.DATA_SM, CommandId.ENQUIRE_LINK, CommandId.UNBIND):
        assert REQUEST_RULES[cmd] == ({Role.ESME, Role.SMSC}, {State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
    for cmd in (CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER):
        assert REQUEST_RULES[cmd] == ({Role.ESME}, {State.OPEN})
    assert REQUEST_RULES[CommandId.OUTBIND] == ({Role.SMSC}, {State.OPEN})


def test_submit_on_a_receiver_bind_is_refused_locally() -> None:
    esme, _ = pair(BindReceiver)
    with pytest.raises(SmppStateError):
        esme.send(SubmitSm(), 1.0)


def test_submit_on_a_receiver_bind_is_answered_invbndsts_by_the_smsc() -> None:
    _, smsc = pair(BindReceiver)
    smsc.data_to_send()
    (ev,) = smsc.receive_data(encode(SubmitSm(sequence_number=77, destination_addr="81")), 1.0)
    assert isinstance(ev, IllegalRequest) and ev.status == Status.ESME_RINVBNDSTS
    (answer,) = wire(smsc)
    assert isinstance(answer, SubmitSmResp)
    assert (answer.sequence_number, answer.command_status) == (77, Status.ESME_RINVBNDSTS)


def test_deliver_sm_to_a_transmitter_is_answered_invbndsts() -> None:
    esme, _ = pair(BindTransmitter)
    (ev,) = esme.receive_data(encode(DeliverSm(sequence_number=5)), 1.0)
    assert isinstance(ev, IllegalRequest)
    (answer,) = wire(esme)
    assert isinstance(answer, DeliverSmResp) and answer.command_status == Status.ESME_RINVBNDSTS


def test_requests_before_bind_are_answered_invbndsts() -> None:
    smsc = Session(Role.SMSC)
    (ev,) = smsc.receive_data(encode(EnquireLink(sequence_number=3)), 0.0)
    assert isinstance(ev, IllegalRequest)
    (answer,) = wire(smsc)
    assert isinstance(answer, EnquireLinkResp) and answer.command_status == Status.ESME_RINVBNDSTS


def test_smsc_may_not_send_submit_sm() -> None:
    _, smsc = pair()
    with pytest.raises(SmppStateError):
        smsc.send(SubmitSm(), 1.0)


def test_alert_notification_on_a_transmitter_is_ignored_without_an_answer() -> None:
    esme, _ = pair(BindTransmitter)
    (ev,) = esme.receive_data(encode(AlertNotification(sequence_number=4)), 1.0)
    assert isinstance(ev, IllegalRequest) and ev.status is None
    assert esme.data_to_send() == b""


def test_alert_notification_on_a_receiver_is_delivered_and_not_answered() -> None:
    esme, smsc = pair(BindReceiver)
    smsc.send(AlertNotification(source_addr="819012345678"), 1.0)
    assert smsc.outstanding == 0
    (ev,) = esme.receive_data(smsc.data_to_send(), 1.0)
    assert isinstance(ev, Request) and isinstance(ev.pdu, AlertNotification)
    assert esme.data_to_send() == b""


def test_replace_sm_is_accepted_on_a_transceiver_too() -> None:
    esme, smsc = pair(BindTransceiver)
    esme.send(ReplaceSm(message_id="1"), 1.0)
    (ev,) = smsc.receive_data(esme.data_to_send(), 1.0)
    assert isinstance(ev, Request)
    smsc.send(ReplaceSmResp(sequence_number=ev.pdu.sequence_number), 1.0)
    (resp,) = esme.receive_data(smsc.data_to_send(), 1.0)
    assert isinstance(resp, Response)


# --- requests, responses, the window --------------------------------------------------


def test_sequence_numbers_increase_from_one_and_responses_carry_context() -> None:
    esme, smsc = pair()
    seqs = [esme.send(SubmitSm(destination_addr=str(i)), 1.0, context=f"m{i}") for i in range(3)]
    assert seqs == [2, 3, 4]  # the bind used 1
    reqs = smsc.receive_data(esme.data_to_send(), 1.0)
    for req in reversed(reqs):  # answered out of order
        smsc.send(SubmitSmResp(sequence_number=req.pdu.sequence_number, message_id=f"id{req.pdu.sequence_number}"), 2.0)
    events = esme.receive_data(smsc.data_to_send(), 2.5)
    assert [(e.context, e.pdu.message_id, e.sent_at) for e in events] == [("m2", "id4", 1.0), ("m1", "id3", 1.0), ("m0", "id2", 1.0)]
    assert esme.outstanding == 0


def test_window_bounds_outstanding_requests() -> None:
    esme, smsc = pair(window=2)
    esme.send(SubmitSm(), 1.0)
    esme.send(SubmitSm(), 1.0)
    assert not esme.can_submit and esme.free_slots == 0
    with pytest.raises(WindowFull):
        esme.send(SubmitSm(), 1.0)
    req = smsc.receive_data(esme.data_to_send(), 1.0)[0]
    smsc.send(SubmitSmResp(sequence_number=req.pdu.sequence_number), 1.0)
    esme.receive_data(smsc.data_to_send(), 1.0)
    assert esme.can_submit and esme.free_slots == 1


def test_response_deadlines_are_exact_and_in_send_order() -> None:
    esme, _ = pair(response_timeout=10.0, enquire_link_interval=None)
    esme.send(SubmitSm(), 100.0, context="a")
    esme.send(SubmitSm(), 103.5, context="b")
    assert esme.next_deadline() == 110.0
    assert esme.handle_timers(109.999) == []
    (first,) = esme.handle_timers(110.0)
    assert isinstance(first, Timeout) and first.context == "a" and first.sent_at == 100.0
    assert esme.next_deadline() == 113.5
    (second,) = esme.handle_timers(200.0)
    assert second.context == "b"
    assert esme.next_deadline() is None


def test_a_late_response_after_its_timeout_is_unexpected() -> None:
    esme, _ = pair(response_timeout=1.0, enquire_link_interval=None)
    seq = esme.send(SubmitSm(), 0.0)
    esme.handle_timers(1.0)
    (ev,) = esme.receive_data(encode(SubmitSmResp(sequence_number=seq, message_id="x")), 2.0)
    assert isinstance(ev, UnexpectedResponse)


def test_a_response_of_the_wrong_type_does_not_consume_the_request() -> None:
    esme, _ = pair(enquire_link_interval=None)
    seq = esme.send(SubmitSm(), 0.0, context="keep")
    (ev,) = esme.receive_data(encode(QuerySm(sequence_number=99)), 0.0)  # an unrelated request is fine
    assert isinstance(ev, IllegalRequest)
    (ev,) = esme.receive_data(encode(UnbindResp(sequence_number=seq)), 0.0)
    assert isinstance(ev, UnexpectedResponse)
    (ev,) = esme.receive_data(encode(SubmitSmResp(sequence_number=seq)), 0.0)
    assert isinstance(ev, Response) and ev.context == "keep"


def test_generic_nack_answers_the_request_it_names() -> None:
    esme, _ = pair()
    seq = esme.send(SubmitSm(), 0.0, context="c")
    (ev,) = esme.receive_data(encode(GenericNack(sequence_number=seq, command_status=Status.ESME_RINVCMDLEN)), 0.0)
    assert isinstance(ev, Response) and isinstance(ev.pdu, GenericNack) and ev.context == "c"


def test_sequence_numbers_wrap_to_one_and_skip_outstanding_ones() -> None:
    esme, _ = pair(enquire_link_interval=None)
    esme._next_seq = MAX_SEQUENCE  # white-box: jump to the end of the range
    assert esme.send(SubmitSm(), 0.0) == MAX_SEQUENCE
    assert esme.send(SubmitSm(), 0.0) == 1
    esme._next_seq = 1
    assert esme.send(SubmitSm(), 0.0) == 2  # 1 is still outstanding


def test_abandon_outstanding_returns_requests_oldest_first() -> None:
    esme, _ = pair(enquire_link_interval=None)
    for i in range(5):
        esme.send(SubmitSm(), float(i), context=i)
    abandoned = esme.abandon_outstanding()
    assert [ctx for _seq, _cmd, ctx, _t in abandoned] == [0, 1, 2, 3, 4]
    assert [t for _seq, _cmd, _ctx, t in abandoned] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert esme.outstanding == 0


def test_send_encoded_matches_send() -> None:
    a, _ = pair(enquire_link_interval=None)
    b, _ = pair(enquire_link_interval=None)
    pdu = SubmitSm(destination_addr="819012345678", short_message=b"hi")
    a.send(pdu, 0.0, context="x")
    b.send_encoded(CommandId.SUBMIT_SM, encode(pdu)[16:], 0.0, context="x")
    assert a.data_to_send() == b.data_to_send()
    assert a.abandon_outstanding() == b.abandon_outstanding()


@pytest.mark.parametrize("resp", [DeliverSmResp, DataSmResp])
@pytest.mark.parametrize("status", [0, Status.ESME_RX_T_APPN])
def test_respond_matches_send(resp, status) -> None:
    a, _ = pair(enquire_link_interval=None)
    b, _ = pair(enquire_link_interval=None)
    a.send(resp(sequence_number=77, command_status=status), 0.0)
    b.respond(resp.command_id, 77, status, b"\x00", 0.0)
    assert a.data_to_send() == b.data_to_send()


def test_respond_refuses_requests_bind_responses_and_closed_sessions() -> None:
    a, _ = pair(enquire_link_interval=None)
    with pytest.raises(SmppStateError):
        a.respond(CommandId.SUBMIT_SM, 1, 0, b"", 0.0)
    with pytest.raises(SmppStateError):
        a.respond(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, b"x\x00", 0.0)
    a.close()
    with pytest.raises(SmppStateError):
        a.respond(CommandId.DELIVER_SM_RESP, 1, 0, b"\x00", 0.0)


# --- keep-alive and inactivity ---------------------------------------------------------


def test_enquire_link_is_sent_after_the_idle_interval_and_its_answer_is_swallowed() -> None:
    esme, smsc = pair(enquire_link_interval=30.0, response_timeout=10.0)
    esme.data_to_send()
    assert esme.next_deadline() == 30.0
    assert esme.handle_timers(29.9) == []
    assert esme.data_to_send() == b""
    assert esme.handle_timers(30.0) == []
    (probe,) = wire(esme)
    assert isinstance(probe, EnquireLink)
    assert esme.next_deadline() == 40.0  # the probe's response deadline
    smsc.receive_data(encode(probe), 30.0)
    events = esme.receive_data(smsc.data_to_send(), 31.0)
    assert events == []  # answered automatically by the peer, absorbed here
    assert esme.next_deadline() == 61.0


def test_receiving_anything_postpones_the_enquire_link() -> None:
    esme, _ = pair(enquire_link_interval=30.0)
    esme.receive_data(encode(DeliverSm(sequence_number=7)), 20.0)
    assert esme.next_deadline() == 50.0


def test_unanswered_enquire_link_times_out_even_with_a_full_window() -> None:
    esme, _ = pair(window=1, enquire_link_interval=30.0, response_timeout=5.0)
    esme.send(SubmitSm(), 1.0)
    esme.handle_timers(31.0)  # the submit timed out at 6.0 already; the probe still goes
    assert any(isinstance(p, EnquireLink) for p in wire(esme))
    (ev,) = esme.handle_timers(36.0)
    assert isinstance(ev, Timeout) and ev.command_id == CommandId.ENQUIRE_LINK


def test_peer_enquire_link_is_answered_without_an_event() -> None:
    esme, _ = pair()
    assert esme.receive_data(encode(EnquireLink(sequence_number=42)), 5.0) == []
    (answer,) = wire(esme)
    assert isinstance(answer, EnquireLinkResp) and answer.sequence_number == 42


def test_inactivity_is_reported_once_per_silence() -> None:
    esme, _ = pair(enquire_link_interval=None, inactivity_timeout=60.0)
    assert esme.next_deadline() == 60.0
    (ev,) = esme.handle_timers(60.0)
    assert isinstance(ev, Idle) and ev.last_received == 0.0
    assert esme.handle_timers(120.0) == []
    assert esme.next_deadline() is None
    esme.receive_data(encode(EnquireLink(sequence_number=2)), 130.0)
    assert esme.next_deadline() == 190.0


# --- unbind -----------------------------------------------------------------------------


def test_unbind_initiated_by_us() -> None:
    esme, smsc = pair()
    esme.send(Unbind(), 1.0)
    assert esme.state is State.UNBINDING
    with pytest.raises(SmppStateError):
        esme.send(SubmitSm(), 1.0)
    (ev,) = smsc.receive_data(esme.data_to_send(), 1.0)
    assert isinstance(ev, Unbound) and ev.by_peer
    assert smsc.state is State.CLOSED
    events = esme.receive_data(smsc.data_to_send(), 1.0)
    assert isinstance(events[-1], Unbound) and not events[-1].by_peer
    assert esme.state is State.CLOSED


def test_while_unbinding_peer_requests_are_still_answered() -> None:
    esme, smsc = pair()
    esme.send(Unbind(), 1.0)
    esme.data_to_send()
    (ev,) = esme.receive_data(encode(DeliverSm(sequence_number=50)), 1.5)
    assert isinstance(ev, Request)
    esme.send(DeliverSmResp(sequence_number=50), 1.5)
    assert isinstance(wire(esme)[0], DeliverSmResp)


def test_closed_session_ignores_data_and_refuses_sends() -> None:
    esme, _ = pair()
    esme.close()
    assert esme.receive_data(encode(EnquireLink(sequence_number=1)), 0.0) == []
    with pytest.raises(SmppStateError):
        esme.send(EnquireLinkResp(sequence_number=1), 0.0)


# --- malformed input ------------------------------------------------------------------


def test_malformed_body_is_nacked_with_its_sequence_and_the_session_goes_on() -> None:
    _, smsc = pair()
    smsc.data_to_send()
    good = encode(SubmitSm(sequence_number=11, destination_addr="81"))
    broken = bytearray(encode(SubmitSm(sequence_number=10, destination_addr="81")))
    broken[16:] = b"\x01" * (len(broken) - 16)  # no NUL anywhere: strings never end
    events = smsc.receive_data(bytes(broken) + good, 1.0)
    assert isinstance(events[0], ProtocolError) and events[0].error.sequence_number == 10
    assert isinstance(events[1], Request) and events[1].pdu.sequence_number == 11
    (nack,) = wire(smsc)
    assert isinstance(nack, GenericNack)
    assert (nack.sequence_number, nack.command_status) == (10, Status.ESME_RINVCMDLEN)
    assert smsc.state is State.BOUND_TRX


def test_unknown_command_is_nacked_invcmdid() -> None:
    _, smsc = pair()
    smsc.data_to_send()
    frame = (16).to_bytes(4, "big") + (0x00000111).to_bytes(4, "big") + bytes(4) + (33).to_bytes(4, "big")
    (ev,) = smsc.receive_data(frame, 1.0)
    assert isinstance(ev, ProtocolError) and not ev.error.fatal
    (nack,) = wire(smsc)
    assert (nack.sequence_number, nack.command_status) == (33, Status.ESME_RINVCMDID)


def test_impossible_length_is_fatal_nacked_and_closes_the_session() -> None:
    _, smsc = pair()
    smsc.data_to_send()
    (ev,) = smsc.receive_data(b"\x00\x00\x00\x05garbage-garbage", 1.0)
    assert isinstance(ev, ProtocolError) and ev.error.fatal
    (nack,) = wire(smsc)
    assert isinstance(nack, GenericNack) and nack.command_status == Status.ESME_RINVCMDLEN
    assert smsc.state is State.CLOSED


def test_frames_split_across_reads_are_reassembled() -> None:
    esme, smsc = pair()
    data = b"".join(encode(SubmitSm(sequence_number=i, destination_addr="8190")) for i in range(2, 6))
    events = []
    for i in range(len(data)):
        events += smsc.receive_data(data[i : i + 1], 1.0)
    assert [e.pdu.sequence_number for e in events] == [2, 3, 4, 5]


def test_deadline_and_expiry_agree_despite_float_rounding() -> None:
    # 0.1 + 10.0 - 10.0 != 0.1: an expiry test written as "sent_at <= now - timeout"
    # would keep a timer firing at next_deadline() forever.
    esme, _ = pair(response_timeout=10.0, enquire_link_interval=None)
    sent = 0.30000000000000004
    esme.send(SubmitSm(), sent)
    deadline = esme.next_deadline()
    assert deadline is not None
    (ev,) = esme.handle_timers(deadline)
    assert isinstance(ev, Timeout)
    assert esme.next_deadline() is None
