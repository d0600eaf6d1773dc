"""The simulators' carrier limits and the text layer's profiles must tell the same story."""

import pytest

from carriers.profiles import PROFILES as CARRIER_PROFILES
from engine.ops.config import CARRIERS
from engine.text import PROFILES as TEXT_PROFILES
from engine.text import TextError, plan


@pytest.mark.parametrize("carrier", CARRIERS)
def test_limits_agree(carrier: str) -> None:
    assert CARRIER_PROFILES[carrier].max_characters == TEXT_PROFILES[carrier].max_characters


@pytest.mark.parametrize(("carrier", "limit"), [("au", 670), ("docomo", 660), ("softbank", 670), ("rakuten", 660)])
def test_spec_limits(carrier: str, limit: int) -> None:
    assert plan("あ" * limit, carrier).characters == limit
    with pytest.raises(TextError) as info:
        plan("あ" * (limit + 1), carrier)
    assert (info.value.carrier, info.value.limit, info.value.count) == (carrier, limit, limit + 1)


def test_only_au_is_paced() -> None:
    assert CARRIER_PROFILES["au"].pacing_interval_s == 12.0
    assert all(CARRIER_PROFILES[c].pacing_interval_s is None for c in CARRIERS if c != "au")
