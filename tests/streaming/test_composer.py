"""The reward composer: each kind's mapping, configuration, and errors as a table."""

from __future__ import annotations

import pytest

from streaming.composer import RewardComposer, make_composer

CASES = [
    ({"kind": "thumbs", "value": "up"}, (1.0, 1.0)),
    ({"kind": "thumbs", "value": "down"}, (0.0, 1.0)),
    ({"kind": "rating", "value": 1}, (0.0, 1.0)),
    ({"kind": "rating", "value": 5}, (1.0, 1.0)),
    ({"kind": "reward", "value": 0.3}, (0.3, 1.0)),
    ({"kind": "implicit", "signals": [], "dwell_ms": 0}, (0.5, 0.5)),
    ({"kind": "implicit", "signals": ["regenerated", "abandoned"]}, (0.0, 0.5)),
    ({"kind": "implicit", "signals": ["copied"], "dwell_ms": 60_000}, (0.9, 0.5)),
    ({"kind": "implicit", "signals": ["copied", "copied"]}, (0.8, 0.5)),
]


@pytest.mark.parametrize(("payload", "expected"), CASES)
def test_default_mapping(payload: dict, expected: tuple[float, float]) -> None:
    reward, weight = RewardComposer().compose(payload)
    assert reward == pytest.approx(expected[0]) and weight == expected[1]
    assert 0.0 <= reward <= 1.0


def test_configured_from_a_settings_table() -> None:
    c = make_composer(
        "linear",
        thumbs_down=0.2,
        signals={"regenerated": -0.1},
        implicit_weight=2.0,
        default_reward=0.0,
    )
    assert c.compose({"kind": "thumbs", "value": "down"}) == (0.2, 1.0)
    assert c.compose({"kind": "implicit", "signals": ["regenerated"]}) == (0.4, 2.0)
    assert c.signals["copied"] == 0.3  # unlisted signals keep their defaults
    assert c.default() == (0.0, 0.25)


BAD_PAYLOADS = [
    ({"kind": "thumbs", "value": "meh"}, "value"),
    ({"kind": "rating", "value": 7}, "value"),
    ({"kind": "rating", "value": 2.5}, "value"),
    ({"kind": "reward", "value": -0.1}, "value"),
    ({"kind": "reward", "value": True}, "value"),
    ({"kind": "implicit", "signals": ["liked"]}, "signals"),
    ({"kind": "implicit", "signals": "copied"}, "signals"),
    ({"kind": "implicit", "dwell_ms": -5}, "dwell_ms"),
    ({"kind": "pairwise"}, "kind"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_PAYLOADS)
def test_bad_payloads_name_the_field(payload: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RewardComposer().compose(payload)


BAD_SETTINGS = [
    ({"thumbs_up": 2.0}, "thumbs_up"),
    ({"rating_weight": 0}, "rating_weight"),
    ({"signals": {"liked": 0.1}}, "signals.liked"),
    ({"signals": {"copied": 3}}, "signals.copied"),
    ({"colour": 1}, "rewards.colour"),
]


@pytest.mark.parametrize(("table", "field"), BAD_SETTINGS)
def test_bad_settings_name_the_field(table: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RewardComposer.from_dict(table)


def test_unknown_composer_names_the_choices() -> None:
    with pytest.raises(ValueError, match="allowed: linear"):
        make_composer("fancy")
