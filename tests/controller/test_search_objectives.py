"""Objectives and constraints: names, directions, parsing, units, violations."""

from __future__ import annotations

import pytest

from fleetnas.controller.search import (
    CallableObjective,
    Constraint,
    Objective,
    parse_constraint,
    parse_objective,
    split_name,
)


class TestObjectives:
    def test_names_and_qualifiers(self) -> None:
        assert split_name("latency[rpi4]") == ("latency", "rpi4")
        assert split_name("peak_memory[jetson-nano]") == ("peak_memory", "jetson-nano")
        assert split_name("params") == ("params", None)
        objective = Objective("latency[jetson]")
        assert (objective.base, objective.qualifier, objective.sign) == ("latency", "jetson", 1.0)
        assert Objective("accuracy", "maximize").sign == -1.0

    @pytest.mark.parametrize("name", ["", "latency[", "latency[a b]", "1abc", "lat ency"])
    def test_bad_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="objective name"):
            Objective(name)

    def test_bad_direction(self) -> None:
        with pytest.raises(ValueError, match="direction 'up'"):
            Objective("accuracy", "up")

    def test_parse_defaults_and_suffixes(self) -> None:
        assert parse_objective("accuracy") == Objective("accuracy", "maximize")
        assert parse_objective("latency[rpi4]") == Objective("latency[rpi4]", "minimize")
        assert parse_objective("naswot:max") == Objective("naswot", "maximize")
        assert parse_objective(" accuracy : min ") == Objective("accuracy", "minimize")
        with pytest.raises(ValueError, match="':min' or ':max'"):
            parse_objective("accuracy:best")

    def test_callable_objective(self) -> None:
        objective = CallableObjective("params", lambda arch: len(arch))
        assert objective.direction == "minimize"
        assert objective.evaluate("abc") == 3.0
        assert objective == CallableObjective("params", len)  # the function is not part of equality
        with pytest.raises(ValueError, match="not callable"):
            CallableObjective("params", 3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not finite"):
            CallableObjective("x", lambda arch: float("inf")).evaluate(None)
        with pytest.raises(ValueError, match="not a number"):
            CallableObjective("x", lambda arch: "fast").evaluate(None)


class TestConstraints:
    @pytest.mark.parametrize(
        "text,name,op,bound",
        [
            ("latency[rpi4] <= 30 ms", "latency[rpi4]", "<=", 30.0),
            ("latency[rpi4]<=30ms", "latency[rpi4]", "<=", 30.0),
            ("latency[jetson] <= 0.05 s", "latency[jetson]", "<=", 50.0),
            ("latency <= 500 us", "latency", "<=", 0.5),
            ("latency[pi] ≤ 12", "latency[pi]", "<=", 12.0),
            ("params <= 5 M", "params", "<=", 5e6),
            ("flops <= 0.3G", "flops", "<=", 3e8),
            ("peak_memory[rpi4] <= 64 MiB", "peak_memory[rpi4]", "<=", 64 * 2**20),
            ("peak_memory <= 1.5 GB", "peak_memory", "<=", 1.5e9),
            ("accuracy >= 90 %", "accuracy", ">=", 0.9),
            ("accuracy >= 0.9", "accuracy", ">=", 0.9),
            ("score >= -1e3", "score", ">=", -1000.0),
        ],
    )
    def test_parse(self, text: str, name: str, op: str, bound: float) -> None:
        constraint = parse_constraint(text)
        assert (constraint.name, constraint.op) == (name, op)
        assert constraint.bound == pytest.approx(bound)
        assert constraint.text == " ".join(text.split())

    @pytest.mark.parametrize(
        "text,message",
        [
            ("latency[rpi4] 30 ms", "expected 'NAME <= NUMBER"),
            ("latency[rpi4] <= ms", "expected 'NAME <= NUMBER"),
            ("<= 30", "expected 'NAME <= NUMBER"),
            ("latency[rpi4] < 30 ms", "operator '<' is not supported"),
            ("latency[rpi4] == 30 ms", "operator '==' is not supported"),
            ("latency[rpi4] <= 30 MB", "unit 'MB' does not apply to 'latency'"),
            ("params <= 5 ms", "unit 'ms' does not apply to 'params'"),
            ("accuracy >= 90 M", "unit 'M' does not apply to 'accuracy'"),
            ("lat[ency <= 3", "objective name"),
        ],
    )
    def test_bad_syntax_says_what_is_expected(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            parse_constraint(text)

    def test_violation_is_the_distance_past_the_bound(self) -> None:
        upper = parse_constraint("latency[rpi4] <= 30 ms")
        assert upper.violation(25.0) == 0.0
        assert upper.violation(30.0) == 0.0
        assert upper.violation(36.0) == 6.0
        assert upper.relative_violation(36.0) == pytest.approx(0.2)
        lower = parse_constraint("accuracy >= 0.9")
        assert lower.violation(0.95) == 0.0
        assert lower.violation(0.8) == pytest.approx(0.1)
        zero = Constraint("x", ">=", 0.0, "x >= 0")
        assert zero.relative_violation(-2.0) == 2.0


def test_a_label_changes_what_people_read_not_what_the_search_keys_on() -> None:
    from fleetnas.controller.driver import SearchConfig, Target

    labelled = Objective("accuracy", "maximize", "naswot score")
    assert labelled == Objective("accuracy", "maximize") and labelled.display_name == "naswot score"
    assert labelled.to_dict() == {"name": "accuracy", "direction": "maximize", "label": "naswot score"}
    assert Objective("params").display_name == "params" and "label" not in Objective("params").to_dict()
    labels = {spec: SearchConfig.build(space="nb201", targets=[Target.device("x")],
                                       accuracy=spec).objective_list()[0].label
              for spec in ("naswot", "synflow", "train:digits", "plugin:m:f")}
    assert labels == {"naswot": "naswot score", "synflow": "synflow score",
                      "train:digits": "accuracy", "plugin:m:f": "plugin score"}
