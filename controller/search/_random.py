"""Random search: uniform samples of the space (the baseline every strategy must beat)."""

from __future__ import annotations

import random
from typing import Any

from fleetnas.controller.search._strategy import Proposal, SearchView, Strategy


class RandomStrategy(Strategy):
    """Every proposal is ``space.sample(rng)``; no state."""

    kind = "random"

    def propose(self, view: SearchView, rng: random.Random) -> Proposal:
        return Proposal(view.space.sample(rng), (), 0)

    def population(self, view: SearchView) -> list[int]:
        return []

    def config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"RandomStrategy has no state, got {state!r}")
