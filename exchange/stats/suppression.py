"""Disclosure control for published counts: primary suppression of small cells, complementary (secondary)
suppression so that no row or column total gives a small cell away.

A published table is a set of cells (counts) and additivity constraints `whole = part + part + ...` (a row total
and its cells, a column total and its cells, a table whose margin is another table's cell). A reader knows:
- a shown cell exactly;
- a **primary** cell (1 <= count < threshold) only as "between 1 and threshold - 1", shown as "<5";
- a **secondary** cell (a count >= threshold hidden to protect a primary one) only as ">= threshold", shown as
  "suppressed";
- zero is shown: an empty cell discloses nobody.

Rule: from any one constraint, a reader who subtracts what is shown and uses what the labels say must not narrow a
primary cell below its full range 1..threshold-1, nor pin a secondary cell to one value (it would then give its
primary cell away through another constraint: the reason a hidden cell of a row needs a partner in its column
too). A constraint that gives a cell away gets one more secondary cell (the smallest part that protects every
hidden cell of it, else the largest part, else its whole), until no constraint gives any away; each round
suppresses one more cell, so it ends. This is the classic row-and-column rule of statistical offices
with interval protection; an attack that combines several constraints is checked by the tests on the data sets they
use (tests/stats/test_suppression.py), not proved here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

SHOWN, PRIMARY, SECONDARY = "shown", "primary", "secondary"
INFINITY = float("inf")


@dataclass(frozen=True)
class Constraint:
    """`whole` = sum of `parts` (cell keys)."""
    whole: Hashable
    parts: tuple[Hashable, ...]


def _bounds(state: str, value: int, threshold: int) -> tuple[float, float]:
    if state == SHOWN:
        return value, value
    if state == PRIMARY:
        return 1, threshold - 1
    return threshold, INFINITY


def exposed(constraint: Constraint, values: Mapping[Hashable, int], states: Mapping[Hashable, str],
            threshold: int) -> list[Hashable]:
    """The hidden cells this constraint gives away, given what is published: a primary cell whose range it narrows
    below 1..threshold-1, or a secondary cell it determines exactly (which would then give away the primary cell
    it protects, through the other constraint they share)."""
    cells = (constraint.whole, *constraint.parts)
    if all(states[c] == SHOWN for c in cells):
        return []
    bounds = {c: _bounds(states[c], values[c], threshold) for c in cells}
    # sums over the parts, once (an unbounded high counted apart: inf - inf has no value)
    low_sum = sum(bounds[p][0] for p in constraint.parts)
    high_sum = sum(bounds[p][1] for p in constraint.parts if bounds[p][1] != INFINITY)
    unbounded = sum(1 for p in constraint.parts if bounds[p][1] == INFINITY)
    whole_low, whole_high = bounds[constraint.whole]
    found = []
    for cell in cells:
        if states[cell] == SHOWN:
            continue
        own_low, own_high = bounds[cell]
        if cell == constraint.whole:
            low, high = low_sum, INFINITY if unbounded else high_sum
        else:
            others_unbounded = unbounded - (own_high == INFINITY)
            others_high = INFINITY if others_unbounded else high_sum - (0 if own_high == INFINITY else own_high)
            low = whole_low - others_high
            high = whole_high - (low_sum - own_low)
        if states[cell] == PRIMARY:
            if low > own_low or high < own_high:
                found.append(cell)
        elif max(low, own_low) >= min(high, own_high):
            found.append(cell)
    return found


def _complement(constraint: Constraint, values: Mapping[Hashable, int], states: dict[Hashable, str],
                threshold: int) -> Hashable | None:
    """The cell to hide next in a constraint that gives a hidden cell away: the smallest shown part whose hiding
    protects every hidden cell of the constraint, else the largest shown part (progress), else the whole. Zeros are never hidden (a hidden cell is
    labelled >= threshold, which a zero is not)."""
    candidates = sorted((c for c in constraint.parts if states[c] == SHOWN and values[c] > 0),
                        key=lambda c: (values[c], repr(c)))
    for cell in candidates:
        trial = dict(states)
        trial[cell] = SECONDARY
        if not exposed(constraint, values, trial, threshold):
            return cell
    if candidates:
        return candidates[-1]
    if states[constraint.whole] == SHOWN and values[constraint.whole] > 0:
        return constraint.whole
    return None


def suppress(values: Mapping[Hashable, int], constraints: Sequence[Constraint], threshold: int
             ) -> dict[Hashable, str]:
    """{cell: shown | primary | secondary} for every cell of `values` (each count >= 0)."""
    if threshold < 1:
        raise ValueError("the threshold is at least 1")
    for constraint in constraints:
        if sum(values[p] for p in constraint.parts) != values[constraint.whole]:
            raise ValueError(f"cell {constraint.whole!r} is not the sum of its parts")
    states = {cell: PRIMARY if 0 < value < threshold else SHOWN for cell, value in values.items()}
    changed = True
    while changed:
        changed = False
        for constraint in constraints:
            while exposed(constraint, values, states, threshold):
                cell = _complement(constraint, values, states, threshold)
                if cell is None:
                    break  # nothing left to hide here (cannot happen with consistent sums; kept total)
                states[cell] = SECONDARY
                changed = True
    return states


def label(value: int, state: str, threshold: int) -> int | str:
    """What a reader sees of a cell: the count, "<5", or "suppressed"."""
    if state == PRIMARY:
        return f"<{threshold}"
    if state == SECONDARY:
        return "suppressed"
    return value
