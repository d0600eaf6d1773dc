"""denpo's configuration: TOML decoded into frozen, typed structures.

Validated once, at start-up, then passed down; nothing reads the file again
and nothing mutates the result.  Every problem is reported with its key path
(``carriers.au.endpoints[0].port: expected int <= 65535, got 70000``) and all
problems are reported at once, not the first one only — that is what
``denpo check-config PATH`` prints.

Adding a section: add a Struct here (``frozen=True, forbid_unknown_fields=True,
kw_only=True``), a field for it on :class:`Config`, and, for rules that span
several keys, a few lines in :func:`_cross_checks`.  The validator walks the
annotations, so per-key checks (types, ranges, choices, unknown keys) need no
code of their own.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
import types
import typing
from pathlib import Path
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple, Union

import msgspec
from msgspec import Meta

__all__ = [
    "StoreSettings",
    "EngineSettings",
    "AccountSettings",
    "HttpSettings",
    "NotifySettings",
    "LookupSettings",
    "CarrierName",
    "CARRIERS",
    "LoggingSettings",
    "SmppSettings",
    "Endpoint",
    "CarrierSettings",
    "SimulatorSettings",
    "Config",
    "Problem",
    "ConfigError",
    "load_config",
    "parse_config",
    "check_config_file",
    "simulator_settings",
]

CarrierName = Literal["au", "docomo", "softbank", "rakuten"]
CARRIERS: tuple[str, ...] = typing.get_args(CarrierName)

Port = Annotated[int, Meta(ge=1, le=65535)]
PortOrAny = Annotated[int, Meta(ge=0, le=65535, description="0 picks a free port")]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[float, Meta(gt=0.0)]
Count = Annotated[int, Meta(ge=1)]
SystemId = Annotated[str, Meta(max_length=15)]
Password = Annotated[str, Meta(max_length=8)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"
    """auto = plain text on a terminal, JSON lines otherwise."""


class SmppSettings(_Section):
    """Defaults for every SMPP session (engine binds and simulators)."""

    window: Annotated[int, Meta(ge=1, le=10_000)] = 100
    response_timeout_s: Positive = 10.0
    enquire_link_interval_s: Positive = 30.0
    inactivity_timeout_s: Positive | None = None
    max_frame_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 65_536


class Endpoint(_Section):
    """One SMSC address the engine binds to."""

    host: str
    port: Port
    system_id: SystemId
    password: Password = ""
    system_type: Annotated[str, Meta(max_length=12)] = ""


StatusClass = Literal["ok", "throttle", "transient", "session", "permanent"]


class CarrierSettings(_Section):
    """One carrier's SMPP pool: where to bind, how many binds, how fast."""

    endpoints: Annotated[list[Endpoint], Meta(min_length=1)]
    """SMSC addresses; binds fail over to the next one when one cannot be reached."""
    bind_mode: Literal["transceiver", "transmitter_receiver"] = "transceiver"
    binds: Annotated[int, Meta(ge=1, le=64)] = 1
    """Transceivers, or transmitter + receiver pairs."""
    window: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    """Overrides ``smpp.window`` for this carrier."""
    rate: Positive | None = None
    """Contracted submits per second for the whole carrier; None = no limit (throttle feedback still applies)."""
    burst: Annotated[int, Meta(ge=1)] = 1
    """Token-bucket depth of ``rate``: 1 = strict spacing, never more than the rate in any second (±1)."""
    bind_rate: Positive | None = None
    """Submits per second per bind, if the contract also limits each bind."""
    bind_burst: Annotated[int, Meta(ge=1)] = 1
    retry_attempts: Annotated[int, Meta(ge=0, le=100)] = 5
    """Re-sends after transient errors (ESME_RSYSERR, …) before the message fails."""
    retry_base_s: Positive = 1.0
    reconnect_base_s: Positive = 0.5
    reconnect_cap_s: Positive = 30.0
    bad_credentials_retry_s: Positive = 60.0
    """A bind refused for its credentials is retried no sooner than this."""
    connect_timeout_s: Positive = 10.0
    drain_timeout_s: NonNegative = 10.0
    """On shutdown, how long to wait for outstanding responses before unbinding."""
    resend_fate_unknown: bool = True
    """SPEC's re-sending rule: a submit whose response never came is sent again
    (at-least-once) or, when False, left as fate unknown (``indefinite``)."""
    pacing_interval_s: NonNegative | None = None
    """Per-number pacing: a further message to a number this long after the previous one ended.
    None = the carrier's rule (au: 12 s, others: off); 0 = off."""
    id_response: Literal["string", "hex", "decimal"] = "string"
    """How submit_sm_resp writes message ids (engine.dlr.ids): string = opaque."""
    id_receipt_text: Literal["string", "hex", "decimal", "auto"] = "auto"
    """How the receipt text's id: writes them; auto = the TLV when present, else both readings."""
    status_overrides: dict[str, StatusClass] = {}
    """command_status (decimal or 0x hex, e.g. "0x00000400") → class, for the carrier's own codes."""


class SimulatorSettings(_Section):
    """One carrier SMSC simulator (``denpo sim`` options, or ``[[simulators]]``)."""

    carrier: CarrierName
    host: str = "127.0.0.1"
    port: PortOrAny = 2775
    control_port: PortOrAny | None = None
    """HTTP control endpoint (stats, MO injection, knobs); None = off."""
    system_id: SystemId | None = None
    password: Password | None = None
    """With neither system_id nor password set, any credentials bind."""
    dlr_delay_ms: NonNegative = 100.0
    dlr_spread_ms: NonNegative = 0.0
    """Each receipt waits dlr_delay_ms plus a uniform 0..dlr_spread_ms."""
    message_id_style: Literal["decimal", "hex"] | None = None
    """None = the carrier profile's style."""
    receipt_id_style: Literal["same", "decimal", "hex"] = "same"
    """How the receipt text's id: field writes the id (the TLV always carries it as in the response)."""
    throughput_cap: NonNegative = 0.0
    """Submits per second accepted before ESME_RTHROTTLED; 0 = no cap."""
    throttle_burst: Annotated[int, Meta(ge=0)] = 0
    """Token-bucket depth of the cap; 0 = a tenth of a second's worth (at least 1)."""
    queue_full_rate: Probability = 0.0
    reject_rate: Probability = 0.0
    reject_status: Annotated[int, Meta(ge=1, le=0xFFFFFFFF)] = 0x45
    receipt_drop_rate: Probability = 0.0
    undeliverable_rate: Probability = 0.0
    expired_rate: Probability = 0.0
    partial_failure_rate: Probability | None = None
    """Share of multi-part messages with some parts failed; None = the carrier profile's default."""
    disconnect_after: Annotated[int, Meta(ge=0)] = 0
    """Drop each connection after it received this many PDUs; 0 = never."""
    response_delay_ms: NonNegative = 0.0
    window: Annotated[int, Meta(ge=1, le=10_000)] = 100
    """Outstanding deliver_sm per connection."""
    enquire_link_interval_s: Positive = 30.0
    seed: int | None = None
    track_numbers: Annotated[int, Meta(ge=0)] = 100_000
    """How many destination numbers keep their submit times for the stats; 0 = none."""
    max_pending_receipts: Annotated[int, Meta(ge=1)] = 1_000_000
    stats_file: str | None = None
    message_id_base: Annotated[int, Meta(ge=0)] | None = None
    """First message id; None = derived from the wall clock, so ids stay unique across restarts."""


class StoreSettings(_Section):
    path: str = "var/denpo.db"
    """SQLite file (WAL mode); relative paths are under the data directory's parent (the working directory)."""
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL: a committed message survives the process being killed; FULL: also a power loss."""


class EngineSettings(_Section):
    backlog_limit: Count = 1_000_000
    """Messages accepted but not yet submitted; above it new ones are refused with a temporary error."""
    working_set: Count = 50_000
    """Queued messages kept in memory per carrier; the rest wait in the store."""
    receipt_timeout_s: Positive = 3600.0
    """A submitted message without (all) its final receipts by then becomes indefinite."""
    receipt_linger_s: Annotated[float, Meta(ge=0)] = 600.0
    """After a message's final status its parts' carrier ids still match this long, so a
    receipt the carrier sends again (its answer lost) is recognised, not an orphan; ~250 B
    per id in memory, at most 100,000 per carrier (0 = forget at once)."""
    default_validity_s: Positive | None = None
    """Validity for messages that give none; None = no limit."""
    notify_buffer: Count = 100_000
    """Notifications held in memory for sending; more wait in the store's outbox until these drain."""
    events_buffer: Count = 100_000
    """Status events kept for engine.events() consumers that fall behind (oldest dropped, counted)."""
    gc_threshold: Annotated[int, Meta(ge=0)] = 50_000
    """Python's cyclic GC first-generation threshold while the engine runs (process-wide; the
    older generations are set to 100 and 1000; 0 = leave Python's defaults of 700, 10, 10).  With
    a working set of tens of thousands of messages the defaults cost ~30 % of the engine's CPU in
    ``denpo bench e2e``."""


Sha256Hex = Annotated[str, Meta(pattern="^[0-9a-f]{64}$", description="64 lower-case hex digits")]
Url = Annotated[str, Meta(pattern="^https?://[^\\s]+$", max_length=2048)]


class AccountSettings(_Section):
    senders: dict[CarrierName, list[Annotated[str, Meta(min_length=1, max_length=20)]]] = {}
    """Registered sender display numbers per carrier; the first is the default."""
    weight: Annotated[int, Meta(ge=1, le=1000)] = 1
    """Share of a carrier's sending capacity when several accounts have backlogs (deficit round robin)."""
    token_sha256: Sha256Hex | None = None
    """SHA-256 (hex) of the account's API token (``denpo new-token`` makes a token and its digest);
    the token itself is never stored.  None: the account cannot use the HTTP API."""
    allow_ips: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    """Addresses (CIDR) the account's requests may come from; others get 403."""
    rate_limit: Positive = 10.0
    """Requests per second, shared by all HTTP APIs (the seeds' guide: 10); above it → 429."""
    burst: Count = 10
    """Requests allowed at once above the steady rate."""
    result_url: Url | None = None
    """Where final statuses are POSTed (None: no result notifications)."""
    mo_url: Url | None = None
    """Where MO messages (replies from handsets) are POSTed."""
    signing_secret: Annotated[str, Meta(min_length=16)] | None = None
    """HMAC-SHA256 key for the X-Denpo-Signature header of notifications."""
    notify_batch: Annotated[int, Meta(ge=1, le=1000)] = 1
    """Events per notification POST: 1 = one JSON object each; more = a JSON array of up to this many."""
    notify_concurrency: Annotated[int, Meta(ge=1, le=256)] = 8
    """Notification requests in flight at once for this account."""
    notify_max_age_s: Positive = 86400.0
    """A notification not answered 2xx by then is dead (kept, listed by GET /v1/notifications?state=dead)."""


class NotifySettings(_Section):
    timeout_ms: Annotated[float, Meta(gt=0, le=60_000)] = 500.0
    """Per request: the receiver must answer 2xx within this (the seeds: 500 ms)."""
    retry_base_s: Positive = 1.0
    """First retry after about this long (exponential, with jitter) ..."""
    retry_cap_s: Positive = 300.0
    """... and never longer than this between tries."""


class HttpSettings(_Section):
    listen: Annotated[str, Meta(pattern="^.+:[0-9]{1,5}$")] = "127.0.0.1:8080"
    """HOST:PORT the HTTP API listens on (``denpo serve --http`` overrides it)."""
    trusted_proxies: list[str] = []
    """Proxies (CIDR) whose X-Forwarded-For is believed; from anywhere else the header is ignored."""
    max_body_bytes: Count = 8 * 1024 * 1024
    """Larger request bodies get 413 (a 1,000-message batch of 670-character texts fits)."""
    max_batch: Annotated[int, Meta(ge=1, le=1000)] = 1000
    """Messages in one POST /v1/messages/batch."""
    tls_cert: str | None = None
    """PEM certificate chain: HTTPS when set (with tls_key)."""
    tls_key: str | None = None


class LookupSettings(_Section):
    file: str | None = None
    """CSV of ``number,carrier`` lines (as from a portability database)."""
    prefix_fallback: bool = False
    """Guess the carrier from the number's prefix when the file has no entry (numbers are portable: a guess)."""
    prefixes: dict[str, CarrierName] = {}
    """Prefix table for the fallback, e.g. {"+8190" = "docomo"}; longest prefix wins."""


class Config(_Section):
    logging: LoggingSettings = LoggingSettings()
    smpp: SmppSettings = SmppSettings()
    store: StoreSettings = StoreSettings()
    engine: EngineSettings = EngineSettings()
    lookup: LookupSettings = LookupSettings()
    http: HttpSettings = HttpSettings()
    notify: NotifySettings = NotifySettings()
    accounts: dict[Annotated[str, Meta(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.-]+$")], AccountSettings] = {}
    carriers: dict[CarrierName, CarrierSettings] = {}
    simulators: list[SimulatorSettings] = []


# --- validation -------------------------------------------------------------------


class Problem(NamedTuple):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """The configuration has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[Problem], source: str = "<config>") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _choices(tp: Any) -> tuple[Any, ...]:
    """The allowed values when ``tp`` is (an optional or annotated) Literal."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return typing.get_args(tp)
    if origin in (Annotated, Union, types.UnionType):
        return tuple(c for arm in typing.get_args(tp) for c in _choices(arm))
    return ()


def _leaf_message(exc: msgspec.ValidationError, value: Any = None, tp: Any = None) -> str:
    text = str(exc).split(" - at `", 1)[0]
    choices = _choices(tp) if tp is not None else ()
    if choices and text.startswith("Invalid enum value"):
        return f"must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
    text = text.replace("Expected", "expected", 1).replace("`", "")
    if "got" not in text:
        text += f", got {value!r}"
    return text


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _walk(value: Any, tp: Any, path: str, problems: list[Problem]) -> None:
    """Report every problem of ``value`` against type ``tp`` (structure first, then leaves)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base = typing.get_args(tp)[0]
        if _is_struct(base) or typing.get_origin(base) in (list, dict):
            _walk(value, base, path, problems)
            if problems and problems[-1].path.startswith(path):
                return
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:
            problems.append(Problem(path, _leaf_message(exc, value, tp)))
        return
    if _is_struct(tp):
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a table, got {type(value).__name__}"))
            return
        fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
        for key in value:
            if key not in fields:
                hint = difflib.get_close_matches(key, list(fields), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(Problem(_join(path, key), f"unknown key{extra}"))
        for key, field in fields.items():
            if key in value:
                _walk(value[key], field.type, _join(path, key), problems)
            elif field.required:
                problems.append(Problem(_join(path, key), "missing (required)"))
        return
    if origin in (list, tuple):
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected an array, got {type(value).__name__}"))
            return
        (item_tp, *_rest) = typing.get_args(tp)
        for i, item in enumerate(value):
            _walk(item, item_tp, _join(path, i), problems)
        return
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a table, got {type(value).__name__}"))
            return
        key_tp, value_tp = typing.get_args(tp)
        for key, item in value.items():
            try:
                msgspec.convert(key, key_tp)
            except msgspec.ValidationError as exc:
                problems.append(Problem(_join(path, key), f"not a valid key: {_leaf_message(exc, key, key_tp)}"))
                continue
            _walk(item, value_tp, _join(path, key), problems)
        return
    if origin in (Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return  # an explicit null (JSON; TOML has none)
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(arms) == 1:
            _walk(value, arms[0], path, problems)
            return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        problems.append(Problem(path, _leaf_message(exc, value, tp)))


def _cross_checks(config: Config) -> list[Problem]:
    """Rules that involve more than one key."""
    problems: list[Problem] = []
    seen_ports: dict[tuple[str, int], str] = {}
    for i, sim in enumerate(config.simulators):
        path = f"simulators[{i}]"
        if (sim.system_id is None) != (sim.password is None):
            problems.append(Problem(path, "set both system_id and password, or neither (then any credentials bind)"))
        for key, port in (("port", sim.port), ("control_port", sim.control_port)):
            if port:
                where = (sim.host, port)
                if where in seen_ports:
                    problems.append(Problem(f"{path}.{key}", f"port {port} already used by {seen_ports[where]}"))
                seen_ports[where] = f"{path}.{key}"
    for name, carrier in config.carriers.items():
        for key in carrier.status_overrides:
            try:
                int(key, 0)
            except ValueError:
                problems.append(Problem(f"carriers.{name}.status_overrides.{key}", "not a command_status number (decimal or 0x hex)"))
        if carrier.reconnect_cap_s < carrier.reconnect_base_s:
            problems.append(Problem(f"carriers.{name}.reconnect_cap_s", "must be >= reconnect_base_s"))
    for name, account in config.accounts.items():
        for i, cidr in enumerate(account.allow_ips):
            if _network_problem(cidr):
                problems.append(Problem(f"accounts.{name}.allow_ips[{i}]", _network_problem(cidr)))
    for i, cidr in enumerate(config.http.trusted_proxies):
        if _network_problem(cidr):
            problems.append(Problem(f"http.trusted_proxies[{i}]", _network_problem(cidr)))
    if (config.http.tls_cert is None) != (config.http.tls_key is None):
        problems.append(Problem("http", "set both tls_cert and tls_key, or neither"))
    carriers = [sim.carrier for sim in config.simulators]
    for carrier in set(carriers):
        if carriers.count(carrier) > 1:
            problems.append(Problem("simulators", f"carrier {carrier!r} has {carriers.count(carrier)} simulators; one each"))
    return problems


def _network_problem(cidr: str) -> str:
    """'' when ``cidr`` is an address or network (``10.0.0.0/8``, ``::1``), else why not."""
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        return f"not an address or CIDR network: {exc}"
    return ""


# Secrets need not be written in the file: any of these keys may instead be a
# table naming where the value is — ``password = { env = "DENPO_AU_PASSWORD" }``
# or ``signing_secret = { file = "/etc/denpo/secret" }`` (the file's content,
# trailing newline removed).  They are read at load (and at every reload).
SECRET_KEYS = frozenset({"password", "system_id", "token_sha256", "signing_secret", "tls_key"})


def _resolve_secrets(value: Any, path: str, problems: list[Problem], environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = _join(path, key)
            if key in SECRET_KEYS and isinstance(item, dict):
                out[key] = _secret(item, where, problems, environ)
            else:
                out[key] = _resolve_secrets(item, where, problems, environ)
        return out
    if isinstance(value, list):
        return [_resolve_secrets(item, _join(path, i), problems, environ) for i, item in enumerate(value)]
    return value


def _secret(ref: dict[str, Any], path: str, problems: list[Problem], environ: Mapping[str, str]) -> Any:
    if set(ref) == {"env"} and isinstance(ref["env"], str):
        if ref["env"] not in environ:
            problems.append(Problem(path, f"environment variable {ref['env']} is not set"))
            return None
        return environ[ref["env"]]
    if set(ref) == {"file"} and isinstance(ref["file"], str):
        try:
            return Path(ref["file"]).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.append(Problem(path, f"cannot read {ref['file']}: {exc.strerror or exc}"))
            return None
    problems.append(Problem(path, 'a secret is a value, { env = "NAME" } or { file = "PATH" }'))
    return None


def parse_config(data: dict[str, Any], source: str = "<config>", *, environ: Mapping[str, str] | None = None) -> Config:
    """Validate already-parsed TOML data; raises :class:`ConfigError` listing every problem."""
    problems: list[Problem] = []
    data = _resolve_secrets(data, "", problems, os.environ if environ is None else environ)
    if problems:
        raise ConfigError(problems, source)
    _walk(data, Config, "", problems)
    if problems:
        raise ConfigError(problems, source)
    config = msgspec.convert(data, Config)
    problems = _cross_checks(config)
    if problems:
        raise ConfigError(problems, source)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem("", f"cannot read: {exc.strerror or exc}")], str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("", f"not UTF-8: {exc}")], str(path)) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("", f"TOML syntax: {exc}")], str(path)) from exc
    return parse_config(data, str(path))


def check_config_file(path: str | Path) -> list[Problem]:
    """Every problem of the file at ``path``; empty when it is valid."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def simulator_settings(**values: Any) -> SimulatorSettings:
    """Build simulator settings from keyword values, with the same checks as a file."""
    data = {k: v for k, v in values.items() if v is not None}
    problems: list[Problem] = []
    _walk(data, SimulatorSettings, "", problems)
    if problems:
        raise ConfigError(problems, "simulator options")
    settings = msgspec.convert(data, SimulatorSettings)
    if (settings.system_id is None) != (settings.password is None):
        raise ConfigError([Problem("", "give both --system-id and --password, or neither")], "simulator options")
    return settings
