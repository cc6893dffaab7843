"""Primary and complementary suppression (exchange.stats.suppression), as a plain function, checked by an attacker
who solves every published equation together (`feasible`: all the values hidden cells could take)."""
from __future__ import annotations

import itertools

import pytest

from exchange.stats.suppression import PRIMARY, SECONDARY, SHOWN, Constraint, label, suppress

T = 5


def table(rows: dict[str, dict[str, int]]) -> tuple[dict, list[Constraint]]:
    """A two-way table with its margins: cells (row, column), ("total", column), (row, "total"), the grand total."""
    columns = list(next(iter(rows.values())))
    values: dict = {}
    constraints = []
    for r, cells in rows.items():
        for c, v in cells.items():
            values[(r, c)] = v
        values[(r, "total")] = sum(cells.values())
        constraints.append(Constraint((r, "total"), tuple((r, c) for c in columns)))
    for c in [*columns, "total"]:
        values[("total", c)] = sum(values[(r, c)] for r in rows)
        constraints.append(Constraint(("total", c), tuple((r, c) for r in rows)))
    constraints.append(Constraint(("total", "total"), tuple(("total", c) for c in columns)))
    return values, constraints


def feasible(values: dict, constraints: list[Constraint], states: dict, top: int | None = None) -> dict:
    """{hidden cell: every value it can take} given the shown cells, the labels (primary 1..T-1, secondary >= T)
    and all the constraints at once: a search that fixes one hidden cell at a time and lets every constraint with
    one unknown left force it (exact, for small tables)."""
    hidden = [c for c in values if states[c] != SHOWN]
    top = top or 2 * max(values.values()) + 10  # hidden counts are unbounded for a reader: a generous cap
    bounds = {c: (1, T - 1) if states[c] == PRIMARY else (T, top) for c in hidden}
    seen: dict = {c: set() for c in hidden}

    def propagate(known: dict) -> dict | None:
        known = dict(known)
        changed = True
        while changed:
            changed = False
            for k in constraints:
                cells = (k.whole, *k.parts)
                unknown = [c for c in cells if c not in known]
                if len(unknown) > 1:
                    continue
                parts = sum(known[p] for p in k.parts if p in known)
                if not unknown:
                    if parts != known[k.whole]:
                        return None
                    continue
                cell = unknown[0]
                value = parts if cell == k.whole else known[k.whole] - parts
                low, high = bounds[cell]
                if not low <= value <= high:
                    return None
                known[cell] = value
                changed = True
        return known

    def search(known: dict) -> None:
        known = propagate(known)
        if known is None:
            return
        free = [c for c in hidden if c not in known]
        if not free:
            for c in hidden:
                seen[c].add(known[c])
            return
        low, high = bounds[free[0]]
        for value in range(low, high + 1):
            search({**known, free[0]: value})

    search({c: v for c, v in values.items() if states[c] == SHOWN})
    return seen


def assert_protected(values: dict, constraints: list[Constraint], states: dict) -> None:
    """Against each constraint alone a small cell keeps its whole range 1..4 (except what the labels say by
    themselves: the parts of a small total are small too); against all of them together no hidden cell is pinned
    to one value."""
    for k in constraints:
        if states[k.whole] == PRIMARY:
            continue
        single = feasible({c: values[c] for c in (k.whole, *k.parts)}, [k], states, 2 * max(values.values()) + 10)
        for cell, possible in single.items():
            if states[cell] == PRIMARY:
                assert possible == set(range(1, T)), (cell, possible, k)
    for cell, possible in feasible(values, constraints, states).items():
        assert len(possible) > 1, (cell, possible)


def test_a_small_cell_is_shown_as_below_the_threshold_and_its_row_partner_hidden():
    values = {"total": 13, "accepted": 10, "declined": 3}
    constraints = [Constraint("total", ("accepted", "declined"))]
    states = suppress(values, constraints, T)
    assert states == {"total": SHOWN, "accepted": SECONDARY, "declined": PRIMARY}
    assert [label(values[k], states[k], T) for k in ("total", "accepted", "declined")] == [13, "suppressed", "<5"]
    assert_protected(values, constraints, states)


def test_a_total_minus_the_other_cells_would_reveal_the_small_cell_so_complements_form_a_rectangle():
    values, constraints = table({"jan": {"accepted": 10, "declined": 3}, "feb": {"accepted": 12, "declined": 9}})
    assert suppress(values, [], T)[("jan", "declined")] == PRIMARY  # without the margins: only the small cell
    states = suppress(values, constraints, T)
    hidden = {c for c, s in states.items() if s != SHOWN}
    assert hidden == {("jan", "declined"), ("jan", "accepted"), ("feb", "declined"), ("feb", "accepted")}
    assert all(states[c] == SHOWN for c in values if c[0] == "total" or c[1] == "total")
    assert_protected(values, constraints, states)


def test_primary_suppression_alone_leaves_the_small_cell_to_subtraction():
    values, constraints = table({"jan": {"accepted": 10, "declined": 3}, "feb": {"accepted": 12, "declined": 9}})
    only_primary = {c: PRIMARY if 0 < v < T else SHOWN for c, v in values.items()}
    assert feasible(values, constraints, only_primary)[("jan", "declined")] == {3}  # what the complements prevent


def test_two_small_cells_that_add_up_to_their_shown_total_hide_the_total_too():
    values = {"total": 8, "accepted": 4, "declined": 4, "failed": 0}
    constraints = [Constraint("total", ("accepted", "declined", "failed"))]
    states = suppress(values, constraints, T)
    assert states == {"total": SECONDARY, "accepted": PRIMARY, "declined": PRIMARY, "failed": SHOWN}
    assert_protected(values, constraints, states)


def test_zero_is_shown_and_never_hidden_as_a_complement():
    values, constraints = table({"jan": {"accepted": 0, "declined": 2, "failed": 7},
                                 "feb": {"accepted": 6, "declined": 0, "failed": 8},
                                 "mar": {"accepted": 9, "declined": 6, "failed": 0}})
    states = suppress(values, constraints, T)
    assert all(states[c] == SHOWN for c, v in values.items() if v == 0)
    assert states[("jan", "declined")] == PRIMARY
    assert_protected(values, constraints, states)


def test_nothing_is_hidden_when_no_cell_is_small():
    values, constraints = table({"jan": {"accepted": 10, "declined": 5}, "feb": {"accepted": 0, "declined": 9}})
    assert set(suppress(values, constraints, T).values()) == {SHOWN}


@pytest.mark.parametrize("seed", range(12))
def test_random_tables_leave_no_small_cell_to_an_attacker_who_solves_them_together(seed):
    import random

    rng = random.Random(seed)
    rows = {f"r{i}": {f"c{j}": rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 11]) for j in range(3)} for i in range(2)}
    values, constraints = table(rows)
    states = suppress(values, constraints, T)
    assert all(states[c] != SHOWN for c, v in values.items() if 0 < v < T)
    assert_protected(values, constraints, states)


def test_inconsistent_sums_are_refused():
    with pytest.raises(ValueError):
        suppress({"total": 9, "a": 3, "b": 3}, [Constraint("total", ("a", "b"))], T)
