"""One algorithm per network dimension (ASTRA-sim's *-implementation lists) on any group."""

from __future__ import annotations

import pytest

from trainsim.collectives import AlgorithmError, SystemConfig, collective_cost
from trainsim.topology import parse_spec

TOPOLOGY = parse_spec("ring:4,fc:4")
SYSTEM = SystemConfig.astra_default()
SIZE = 4 << 20


def _time(ranks: tuple[int, ...] | range, algorithm: str | tuple[str, ...]) -> float:
    return collective_cost(
        "all_reduce", SIZE, ranks, TOPOLOGY, algorithm, "analytical", SYSTEM
    ).time_ns


@pytest.mark.parametrize(
    ("ranks", "own"),
    [((0, 1, 2, 3), "ring"), ((0, 4, 8, 12), "direct"), ((1, 5, 9, 13), "direct")],
)
def test_group_on_one_dimension_takes_that_dimensions_entry(
    ranks: tuple[int, ...], own: str
) -> None:
    assert _time(ranks, ("ring", "direct")) == pytest.approx(_time(ranks, own))
    # Ring and direct differ on these groups, so picking the wrong entry would show.
    other = "direct" if own == "ring" else "ring"
    assert _time(ranks, own) != pytest.approx(_time(ranks, other))


def test_group_on_every_dimension_uses_each_in_turn() -> None:
    cost = collective_cost(
        "all_reduce", SIZE, range(16), TOPOLOGY, ("ring", "direct"), "analytical", SYSTEM
    )
    assert cost.algorithm == "ring+direct"


def test_a_list_that_fits_neither_the_group_nor_the_network_is_refused() -> None:
    with pytest.raises(AlgorithmError, match="3 algorithms given"):
        _time((0, 1, 2, 3), ("ring", "direct", "ring"))
