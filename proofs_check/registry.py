"""Claim registry: checks attach to catalogue IDs, and every check returns a status.

A check is a function ``fn(ctx: Context) -> CheckResult`` registered with
:func:`check`. One claim may have several parts (say ``scalar`` and ``matrix``, or
``symbolic`` and ``numeric``); the claim passes only when every registered part
passes. A catalogue ID with no registered part is reported ``not-implemented``.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import importlib
import pkgutil
import time
import traceback
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dynamics.errors import InvalidInputError
from dynamics.measure import tol_margin

from .catalogue import BY_ID, CLAIM_IDS


class Status(enum.Enum):
    """What happened to a check.

    ``fail`` is reserved for the theorem: the check ran and the claim did not hold.
    A check that crashed, or was given invalid input, or ran less than the full
    profile promises, is ``error``: nothing was learned about the claim.
    """

    passed = "pass"
    failed = "fail"
    error = "error"
    not_implemented = "not-implemented"
    skipped = "skipped"


PROFILES = ("quick", "full")
#: The package whose modules register the checks. :func:`load_checks` imports them
#: by name: the checks import this module, so it must not import them statically.
CHECKS_PACKAGE = f"{__package__}.checks"


def figure_file(figures_dir: Path, name: str, suffix: str = "") -> Path:
    """``figures_dir/NAME[SUFFIX].png`` with one naming scheme: ``-`` between words
    (never ``_``), and a reduced run's ``suffix`` (``-quick``) so that it never
    takes the name of the full protocol's figure. Checks (:meth:`Context.figure_path`)
    and protocols (``ProtocolContext.figure_path``) both name their figures here."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    return figures_dir / f"{name.replace('_', '-')}{suffix}.png"


@dataclasses.dataclass(frozen=True)
class Context:
    """What a check may depend on: same seed and profile give the same result."""

    seed: int = 0
    profile: str = "quick"
    figures_dir: Path | None = None
    #: Data produced once per run and shared by the checks that judge it (see
    #: :meth:`memo`); not part of the context's identity.
    cache: dict = dataclasses.field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r}; choose one of {PROFILES}"
            )

    @property
    def full(self) -> bool:
        return self.profile == "full"

    def rng(self, tag: str) -> np.random.Generator:
        """A generator seeded by (seed, tag), independent of the order checks run in."""
        return np.random.default_rng([self.seed, zlib.crc32(tag.encode())])

    def memo(self, key: tuple, produce: Callable[[], object]):
        """``produce()`` the first time ``key`` is asked for in this context, then the
        same object: a protocol runs once per ``verify`` however many checks judge it.
        The key is completed with the seed and profile; callers must not mutate the
        returned data."""
        key = (*key, self.seed, self.profile)
        if key not in self.cache:
            self.cache[key] = produce()
        return self.cache[key]

    @property
    def figure_suffix(self) -> str:
        """``-quick`` in the quick profile: its reduced runs never take the full
        protocols' figure names."""
        return "" if self.full else "-quick"

    def figure_path(self, name: str, reduced: bool = True) -> Path | None:
        """Where to save figure ``name`` (PNG, with a PDF beside it), or None when
        figures are off; ``_`` becomes ``-`` and, for a run the profile reduces
        (``reduced``), the profile's suffix is added."""
        if self.figures_dir is None:
            return None
        return figure_file(
            self.figures_dir, name, self.figure_suffix if reduced else ""
        )


@dataclasses.dataclass
class CheckResult:
    """What one check measured.

    Attributes:
        status: pass / fail / not-implemented / skipped.
        measured: the headline measured value (e.g. the worst drift).
        predicted: the predicted value or the bound it is compared with.
        worst_margin: the worst margin over all instances; >= 0 means the claim held.
            Its meaning (relative slack, tolerance minus error, ...) is in ``details``.
        tolerance: the tolerance the margin was judged with.
        instances: the number of instances tried.
        reason: why the status is what it is (always set for fail and skipped).
        details: any JSON-able extra measurements.
        figures: paths of the figures written.
        ran: the sizes this check ran (same names as the claim's ``sizes``); the
            registry compares them with the catalogue and marks the row ``reduced``.
    """

    status: Status
    measured: float | None = None
    predicted: float | None = None
    worst_margin: float | None = None
    tolerance: float | None = None
    instances: int = 0
    reason: str = ""
    details: dict = dataclasses.field(default_factory=dict)
    figures: list[str] = dataclasses.field(default_factory=list)
    ran: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_margins(cls, margins, also: bool = True, **fields) -> CheckResult:
        """Pass when every margin is >= 0 and ``also`` holds; ``worst_margin`` is the
        smallest margin. ``fields`` are the other attributes."""
        worst = min(margins)
        return judged(worst >= 0 and also, worst_margin=worst, **fields)

    @classmethod
    def within(cls, errors_and_tolerances, also: bool = True, **fields) -> CheckResult:
        """:meth:`from_margins` with the margins 1 - error/tolerance of each
        ``(error, tolerance)`` pair."""
        margins = [tol_margin(e, t) for e, t in errors_and_tolerances]
        return cls.from_margins(margins, also, **fields)


def judged(ok: bool, **fields) -> CheckResult:
    """A pass/fail result from a boolean verdict."""
    return CheckResult(Status.passed if ok else Status.failed, **fields)


@dataclasses.dataclass(frozen=True)
class Check:
    claim_id: str
    part: str
    kind: str
    fn: Callable[[Context], CheckResult]


@dataclasses.dataclass
class Row:
    """One line of the report: a claim part and what its check returned."""

    claim_id: str
    part: str
    kind: str
    statement: str
    result: CheckResult
    seconds: float
    #: "name ran/stated" for every size the check ran less of than the catalogue
    #: states (empty: the stated sizes, or the claim states none).
    reduced: list[str] = dataclasses.field(default_factory=list)


_CHECKS: dict[tuple[str, str], Check] = {}
_KINDS = ("symbolic", "numeric", "property", "benchmark")


def check(claim_id: str, part: str = "main", kind: str = "numeric"):
    """Register ``fn`` as the check of part ``part`` of claim ``claim_id``."""
    if claim_id not in BY_ID:
        raise KeyError(f"{claim_id!r} is not in the claim catalogue")
    if kind not in _KINDS:
        raise ValueError(f"unknown check kind {kind!r}; choose one of {_KINDS}")

    def register(fn):
        key = (claim_id, part)
        if key in _CHECKS and _CHECKS[key].fn.__qualname__ != fn.__qualname__:
            raise KeyError(f"claim {claim_id} part {part!r} is registered twice")
        _CHECKS[key] = Check(claim_id, part, kind, fn)
        return fn

    return register


def load_checks() -> dict[tuple[str, str], Check]:
    """Import every module of :mod:`proofs_check.checks` (:data:`CHECKS_PACKAGE`) so
    its checks register."""
    checks = importlib.import_module(CHECKS_PACKAGE)
    for mod in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{CHECKS_PACKAGE}.{mod.name}")
    return _CHECKS


def select(patterns: list[str] | None) -> list[str]:
    """Catalogue IDs matching any glob in ``patterns`` (all when None)."""
    if not patterns:
        return list(CLAIM_IDS)
    chosen = [
        cid
        for cid in CLAIM_IDS
        if any(fnmatch.fnmatchcase(cid, p.upper()) for p in patterns)
    ]
    if not chosen:
        raise ValueError(f"no claim matches {patterns}; IDs look like LIN-GRAD, REV-*")
    # every pattern must match something: a typo among several is not dropped silently
    unmatched = [
        p
        for p in patterns
        if not any(fnmatch.fnmatchcase(c, p.upper()) for c in chosen)
    ]
    if unmatched:
        raise InvalidInputError(
            f"no claim matches {', '.join(map(repr, unmatched))} (the other patterns "
            "do); check the spelling, IDs look like LIN-GRAD, REV-*"
        )
    return chosen


def reduced_sizes(claim_id: str, ran: dict[str, int]) -> list[str]:
    """``"name ran/stated"`` for each stated size of the claim that ``ran`` reports
    as smaller; sizes a part does not report are not its business."""
    stated = BY_ID[claim_id].sizes
    return [
        f"{name} {ran[name]}/{size}"
        for name, size in stated.items()
        if name in ran and int(ran[name]) < size
    ]


def run_check(chk: Check, ctx: Context) -> Row:
    """Run one check. An exception inside it is an ``error`` (the check crashed or
    its input was invalid: nothing is known about the claim), never a ``fail``; a
    full-profile run that ran less than the catalogue states is an ``error`` too."""
    t0 = time.perf_counter()
    try:
        res = chk.fn(ctx)
        if not isinstance(res, CheckResult):
            raise TypeError(f"check returned {type(res).__name__}, not CheckResult")
    except Exception as exc:  # a crashing check is reported, not hidden
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        res = CheckResult(Status.error, reason=f"check raised {tb}")
    seconds = time.perf_counter() - t0
    reduced = reduced_sizes(chk.claim_id, res.ran)
    if reduced and ctx.full and res.status in (Status.passed, Status.failed):
        res = dataclasses.replace(
            res,
            status=Status.error,
            reason=f"the full profile ran less than the catalogue states "
            f"({', '.join(reduced)}); {res.reason}".rstrip("; "),
        )
    return Row(
        chk.claim_id,
        chk.part,
        chk.kind,
        BY_ID[chk.claim_id].statement,
        res,
        seconds,
        reduced,
    )


def run(
    patterns: list[str] | None,
    ctx: Context,
    progress: Callable[[int, int, Row], None] | None = None,
) -> list[Row]:
    """Run the checks of every selected claim, in catalogue order."""
    registry = load_checks()
    ids = select(patterns)
    plan: list[Check | str] = []
    for cid in ids:
        parts = [c for (i, _), c in sorted(registry.items()) if i == cid]
        plan.extend(parts if parts else [cid])
    rows: list[Row] = []
    for i, item in enumerate(plan):
        if isinstance(item, str):
            row = Row(
                item,
                "-",
                "/".join(BY_ID[item].kinds),
                BY_ID[item].statement,
                CheckResult(
                    Status.not_implemented,
                    reason="no check is implemented for this claim yet",
                ),
                0.0,
            )
        else:
            row = run_check(item, ctx)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(plan), row)
    return rows


def claim_status(rows: list[Row]) -> dict[str, Status]:
    """One status per claim (fail > error > not-implemented > skipped > pass)."""
    order = [
        Status.failed,
        Status.error,
        Status.not_implemented,
        Status.skipped,
        Status.passed,
    ]
    out: dict[str, Status] = {}
    for row in rows:
        prev = out.get(row.claim_id)
        cur = row.result.status
        if prev is None or order.index(cur) < order.index(prev):
            out[row.claim_id] = cur
    return out


def claim_reduced(rows: list[Row]) -> dict[str, list[str]]:
    """The reduced sizes of each claim that ran less than stated (others absent)."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.reduced:
            out.setdefault(row.claim_id, []).extend(row.reduced)
    return out
