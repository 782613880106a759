"""Lazy query steps built once and replayed onto every block's frame (parse's fixed cost).

Building polars expressions costs Python time per call; a parser's query holds a hundred or more,
which for the watcher's blocks of ~80 lines cost as much as running them. A `Plan` records the
`with_columns` / `select` / `drop` steps a query builder applies to a LazyFrame, once per
variant of the query (the caller caches it), and `apply` replays them onto a block's frame.
Values that change per block (the time now, the file's name, the first line number) go in as
literal columns beside the data, so the recorded expressions never hold them. `collect` runs a
block's query the way that costs least for its size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import polars as pl

Step = tuple[str, tuple[Any, ...], dict[str, Any]]


class Plan:
    """The steps of a lazy query, without its input."""

    def __init__(self, steps: tuple[Step, ...] = ()) -> None:
        self.steps = steps

    def with_columns(self, *exprs: Any, **named: Any) -> Plan:
        return Plan((*self.steps, ("with_columns", exprs, named)))

    def select(self, *exprs: Any, **named: Any) -> Plan:
        return Plan((*self.steps, ("select", exprs, named)))

    def drop(self, *columns: Any) -> Plan:
        return Plan((*self.steps, ("drop", columns, {})))

    def then(self, other: Plan) -> Plan:
        """This plan followed by `other`."""
        return Plan(self.steps + other.steps)

    def apply(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        for method, args, kwargs in self.steps:
            lf = getattr(lf, method)(*args, **kwargs)
        return lf

    def schema(self, inputs: Mapping[str, pl.DataType]) -> pl.Schema:
        """The columns the plan yields from a frame of `inputs` (nothing is computed)."""
        return self.apply(pl.LazyFrame(schema=dict(inputs))).collect_schema()


def record(build: Callable[[pl.LazyFrame], pl.LazyFrame]) -> Plan:
    """The steps `build` applies, which must only chain `with_columns`, `select` and `drop`
    (a builder that reads its input's data or schema cannot be recorded)."""
    return cast(Plan, build(cast(pl.LazyFrame, Plan())))


# Below this many rows a query runs on the in-memory engine with only the optimizations that
# decide its result (types) or cost nothing to check: for a watcher's block of ~80 lines the
# streaming engine's tasks and the optimizer's passes cost more than the work (measured on
# the combined query: ~0.4 ms less CPU each). Above it, the streaming engine and every
# optimization: it spreads the string work over all cores (about 2x on 2).
SMALL_ROWS = 20_000


_LIGHT = pl.QueryOptFlags(
    predicate_pushdown=False,
    projection_pushdown=False,
    slice_pushdown=False,
    comm_subplan_elim=False,
    comm_subexpr_elim=False,
    cluster_with_columns=False,
    check_order_observe=False,
    fast_projection=False,
    sort_collapse=False,
    pre_partition_hive=False,
    join_order=False,
    row_estimate=False,
)  # type coercion and checks stay (they decide results), and expression simplification


def collect(lf: pl.LazyFrame, rows: int, streaming: bool = True) -> pl.DataFrame:
    """Run a block's query of `rows` input rows (`streaming`: on that engine when large)."""
    if rows < SMALL_ROWS:
        return lf.collect(engine="in-memory", optimizations=_LIGHT)
    return lf.collect(engine="streaming" if streaming else "auto")
