"""Mergeable partial reductions of P-SCALE chunks.

A worker turns the per-instance arrays of one chunk (:func:`.scale.run_chunk`) into a
:class:`Partial`: for every reported measure the count, the worst value and the
instance that attained it (ties to the smallest index), the worst per category, and
the values' distribution; plus integer counts and the step sizes of the worst
instances (so the driver can replay one instance without rerunning its chunk).

:func:`merge` is associative and commutative, so the merged report does not depend on
which executor ran the chunks, on how many workers there were, or on the order in
which results arrived. The distribution is kept in one of two modes, fixed per sweep
by its size (never by the data or the merge order):

- exact (``instances <= EXACT_CAP``): the sorted finite values; merging concatenates
  and sorts, and the quantiles are exactly those of :func:`.scale_stats.quantiles`;
- sketch (larger sweeps, bounded memory): a sparse histogram on a fixed signed
  log10 grid of ``BINS_PER_DECADE`` bins per decade; merging adds integer counts, and
  a quantile is its bin's geometric centre (relative resolution
  10^(1/(2 BINS_PER_DECADE)) - 1, about 0.6 %), clamped to the exact min and max.

Partials are JSON-able (:meth:`Partial.to_json`) so a sweep writes one small file per
chunk and can resume.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import scale_stats as st

#: Sweeps of at most this many instances keep exact quantiles.
EXACT_CAP = 20_000
#: Sketch resolution (bins per decade of |value|).
BINS_PER_DECADE = 200
_LOG_LO = -330.0  # below the smallest subnormal: every finite nonzero float fits

#: (summary section, summary key, array key, largest-is-worst) for every measure.
MEASURES = (
    ("gf", "drift", "gf_drift", True),
    ("gf", "drift_readout", "gf_drift_readout", True),
    ("gf", "cond_margin", "gf_cond_margin", False),
    ("gf", "cond_margin_mid", "gf_cond_margin_mid", False),
    ("gf", "cond_upper_margin", "gf_cond_upper_margin", False),
    ("gf", "rate_log_margin", "gf_rate_log_margin", False),
    ("gf", "kappa_ratio_min", "gf_rate_ratio_min", False),
    ("gf", "kappa_ratio", "gf_rate_ratio_final", False),
    ("gf", "kappa_fit_ratio", "gf_rate_fit_ratio", False),
    ("gf", "decades", "gf_decades", False),
    ("gd", "cond_margin", "gd_cond_margin", False),
    ("gd", "rate_log_margin", "gd_rate_log_margin", False),
    ("gd", "log_contraction_ratio_min", "gd_rate_ratio_min", False),
    ("gd", "log_contraction_ratio", "gd_rate_ratio_final", False),
    ("gd", "cumdrift_margin", "gd_cumdrift_margin", False),
    ("gd", "decades", "gd_decades", False),
    ("midpoint", "drift", "mp_drift", True),
    ("midpoint", "cond_margin", "mp_cond_margin", False),
    ("midpoint", "rate_log_margin", "mp_rate_log_margin", False),
)
#: Measures that are only quantiled (no worst instance): derived arrays.
PLAIN = (("gf", "horizon_kappa_t"),)
#: Measures whose log histogram the report shows (summary path -> array key).
HISTOGRAMS = (
    ("gf", "kappa_ratio_histogram", "gf_rate_ratio_final"),
    ("gd", "log_contraction_histogram", "gd_rate_ratio_final"),
)


def _better(a, b, largest: bool):
    """The worse of two (value, instance) pairs; ties to the smaller instance."""
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0]:
        return a if a[1] <= b[1] else b
    return (a if a[0] > b[0] else b) if largest else (a if a[0] < b[0] else b)


def _sketch_keys(v: np.ndarray) -> np.ndarray:
    """Signed bin keys on the fixed grid (0 for exact zeros)."""
    mag = (
        np.floor(
            (np.log10(np.abs(v), where=v != 0, out=np.zeros_like(v)) - _LOG_LO)
            * BINS_PER_DECADE
        ).astype(np.int64)
        + 1
    )
    return np.where(v == 0, 0, np.sign(v).astype(np.int64) * mag)


def _key_value(k: int) -> float:
    if k == 0:
        return 0.0
    e = (abs(k) - 0.5) / BINS_PER_DECADE + _LOG_LO
    return math.copysign(10.0**e, k)


@dataclasses.dataclass
class Dist:
    """Distribution of one measure's finite values (exact or sketch)."""

    exact: bool
    count: int = 0
    finite: int = 0
    lo: float = math.inf
    hi: float = -math.inf
    values: np.ndarray | None = None  # exact mode: sorted finite values
    keys: np.ndarray | None = None  # sketch mode: sorted bin keys
    counts: np.ndarray | None = None

    @classmethod
    def of(cls, values: np.ndarray, exact: bool) -> Dist:
        v = np.asarray(values, dtype=float)
        f = v[np.isfinite(v)]
        d = cls(exact, int(v.size), int(f.size))
        if f.size:
            d.lo, d.hi = float(f.min()), float(f.max())
        if exact:
            d.values = np.sort(f)
        else:
            d.keys, d.counts = np.unique(_sketch_keys(f), return_counts=True)
            d.counts = d.counts.astype(np.int64)
        return d

    def merge(self, o: Dist) -> Dist:
        out = Dist(self.exact, self.count + o.count, self.finite + o.finite)
        out.lo, out.hi = min(self.lo, o.lo), max(self.hi, o.hi)
        if self.exact:
            out.values = np.sort(np.concatenate([self.values, o.values]))
        else:
            keys = np.concatenate([self.keys, o.keys])
            counts = np.concatenate([self.counts, o.counts])
            out.keys, inv = np.unique(keys, return_inverse=True)
            out.counts = np.bincount(inv, weights=counts).astype(np.int64)
        return out

    def quantiles(self) -> dict:
        if self.exact:
            return st.quantiles(self.values)
        if self.finite == 0:
            return {f"q{q:g}": None for q in st.QUANTILES}
        cum = np.cumsum(self.counts)
        out = {}
        for q in st.QUANTILES:
            if q == 0.0:
                x = self.lo
            elif q == 1.0:
                x = self.hi
            else:
                # the bin holding the order statistic nearest rank q (n - 1)
                j = int(round(q * (self.finite - 1)))
                pos = int(np.searchsorted(cum, j, side="right"))
                x = min(max(_key_value(int(self.keys[pos])), self.lo), self.hi)
            out[f"q{q:g}"] = float(x)
        return out

    def values_for_plot(self) -> np.ndarray:
        """The finite values (exact mode) or each bin's centre repeated by its count
        (sketch mode): enough to draw a histogram."""
        if self.exact:
            return self.values
        centres = np.array([_key_value(int(k)) for k in self.keys])
        return np.clip(np.repeat(centres, self.counts), self.lo, self.hi)

    def log_histogram(self) -> dict:
        if self.exact:
            return st.log_histogram(self.values)
        # sketch: rebin the fixed grid's positive bins onto 40 log bins in [lo, hi]
        pos = self.keys > 0
        mids = np.array([_key_value(int(k)) for k in self.keys[pos]])
        c = self.counts[pos]
        nonpos = int(self.counts[~pos].sum())
        if mids.size == 0:
            return {
                "edges": [],
                "counts": [],
                "below": 0,
                "above": 0,
                "nonpositive": nonpos,
            }
        lo = self.lo if self.lo > 0 else float(mids.min())
        hi = self.hi if self.hi > lo else lo * 1.000001 + 1e-300
        edges = np.logspace(math.log10(lo), math.log10(hi), 41)
        counts, _ = np.histogram(np.clip(mids, lo, hi), bins=edges, weights=c)
        return {
            "edges": edges.tolist(),
            "counts": counts.astype(int).tolist(),
            "below": 0,
            "above": 0,
            "nonpositive": nonpos,
        }

    def to_json(self) -> dict:
        out = {
            "exact": self.exact,
            "count": self.count,
            "finite": self.finite,
            "lo": _f(self.lo),
            "hi": _f(self.hi),
        }
        if self.exact:
            out["values"] = self.values.tolist()
        else:
            out["keys"] = self.keys.tolist()
            out["counts"] = self.counts.tolist()
        return out

    @classmethod
    def from_json(cls, d: dict) -> Dist:
        out = cls(d["exact"], d["count"], d["finite"], _uf(d["lo"]), _uf(d["hi"]))
        if out.exact:
            out.values = np.asarray(d["values"], dtype=float)
        else:
            out.keys = np.asarray(d["keys"], dtype=np.int64)
            out.counts = np.asarray(d["counts"], dtype=np.int64)
        return out


def _f(x: float):
    return x if math.isfinite(x) else repr(x)


def _uf(x) -> float:
    return float(x)


@dataclasses.dataclass
class Measure:
    """Worst value + instance (overall and per category) and the distribution."""

    largest: bool
    worst: tuple | None  # (value, instance, category)
    by_category: dict  # category -> [count, (value, instance) or None]
    dist: Dist

    @classmethod
    def of(cls, values, index, category, largest: bool, exact: bool) -> Measure:
        v = np.asarray(values, dtype=float)
        w = st.worst(v, index, category, largest=largest)
        worst = (
            None if w["value"] is None else (w["value"], w["instance"], w["category"])
        )
        per = {}
        for c in np.unique(category):
            mask = category == c
            wc = st.worst(v[mask], index[mask], category[mask], largest=largest)
            per[int(c)] = [
                int(mask.sum()),
                None if wc["value"] is None else (wc["value"], wc["instance"]),
            ]
        return cls(largest, worst, per, Dist.of(v, exact))

    def merge(self, o: Measure) -> Measure:
        worst = _better(self.worst, o.worst, self.largest)
        per = {}
        for c in sorted(set(self.by_category) | set(o.by_category)):
            a = self.by_category.get(c, [0, None])
            b = o.by_category.get(c, [0, None])
            per[c] = [a[0] + b[0], _better(a[1], b[1], self.largest)]
        return Measure(self.largest, worst, per, self.dist.merge(o.dist))

    def summary(self, categories) -> dict:
        d = self.dist
        worst = {"count": d.count, "finite": d.finite}
        if self.worst is None:
            worst.update(value=None, instance=None, category=None)
        else:
            worst.update(
                value=float(self.worst[0]),
                instance=int(self.worst[1]),
                category=categories[int(self.worst[2])],
            )
        per = {}
        for c, name in enumerate(categories):
            if c in self.by_category and self.by_category[c][0]:
                n, w = self.by_category[c]
                per[name] = {
                    "count": n,
                    "worst": None if w is None else float(w[0]),
                    "instance": None if w is None else int(w[1]),
                }
        return {"worst": worst, "quantiles": d.quantiles(), "by_category": per}

    def to_json(self) -> dict:
        return {
            "largest": self.largest,
            "worst": None if self.worst is None else list(self.worst),
            "by_category": {
                str(c): [n, None if w is None else list(w)]
                for c, (n, w) in self.by_category.items()
            },
            "dist": self.dist.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict) -> Measure:
        return cls(
            d["largest"],
            None if d["worst"] is None else tuple(d["worst"]),
            {
                int(c): [n, None if w is None else tuple(w)]
                for c, (n, w) in d["by_category"].items()
            },
            Dist.from_json(d["dist"]),
        )


#: Integer counts kept per chunk (name -> function of the arrays).
COUNTS = {
    "gf_ok": lambda a: int(a["gf_ok"].sum()),
    "gf_refined": lambda a: int((a["gf_refinements"] > 0).sum()),
    "gd_ok": lambda a: int(a["gd_ok"].sum()),
    "gd_descent_failed": lambda a: int((a["gd_descent_fail_step"] >= 0).sum()),
    "gd_risk_increased": lambda a: int(a["gd_risk_increased"].sum()),
    "mp_instances": lambda a: int(np.isfinite(a["mp_drift"]).sum()),
    "mp_ok": lambda a: int(np.nansum(a["mp_ok"])),
}


@dataclasses.dataclass
class Partial:
    """The mergeable reduction of one or more chunks of a sweep."""

    instances: int
    categories: dict  # category id -> count
    counts: dict
    measures: dict  # "section/key" -> Measure
    plain: dict  # "section/key" -> Dist
    steps: dict  # instance id -> [gf_h, gd_h] for the worst instances
    has_midpoint: bool

    def merge(self, o: Partial) -> Partial:
        cats = {
            c: self.categories.get(c, 0) + o.categories.get(c, 0)
            for c in sorted(set(self.categories) | set(o.categories))
        }
        measures = {k: self.measures[k].merge(o.measures[k]) for k in self.measures}
        keep = _worst_ids(measures)
        steps = {i: s for i, s in {**self.steps, **o.steps}.items() if i in keep}
        return Partial(
            self.instances + o.instances,
            cats,
            {k: self.counts[k] + o.counts[k] for k in self.counts},
            measures,
            {k: self.plain[k].merge(o.plain[k]) for k in self.plain},
            dict(sorted(steps.items())),
            self.has_midpoint,
        )

    def summary(self, categories, tolerances: dict | None = None) -> dict:
        """The report dictionary, with the layout of :func:`.scale.summarise`."""

        def m(section, key):
            return self.measures[f"{section}/{key}"].summary(categories)

        gf = {
            "ok": self.counts["gf_ok"],
            "horizon_kappa_t": self.plain["gf/horizon_kappa_t"].quantiles(),
            "refined": self.counts["gf_refined"],
        }
        gd = {
            "ok": self.counts["gd_ok"],
            "descent_failed": self.counts["gd_descent_failed"],
            "risk_increased": self.counts["gd_risk_increased"],
        }
        out = {
            "instances": self.instances,
            "categories": {
                name: int(self.categories.get(i, 0))
                for i, name in enumerate(categories)
            },
            "gf": gf,
            "gd": gd,
        }
        for section, key, _, _ in MEASURES:
            if section == "midpoint":
                continue
            out[section][key] = m(section, key)
        for section, key, arr in HISTOGRAMS:
            out[section][key] = self.measures[
                f"{section}/{_measure_key(arr)}"
            ].dist.log_histogram()
        # keep summarise()'s key order (gf histogram after decades, gd likewise)
        if self.has_midpoint:
            out["midpoint"] = {
                "instances": self.counts["mp_instances"],
                "ok": self.counts["mp_ok"],
                "drift": m("midpoint", "drift"),
                "cond_margin": m("midpoint", "cond_margin"),
                "rate_log_margin": m("midpoint", "rate_log_margin"),
            }
        if tolerances:
            out["tolerances"] = dict(tolerances)
        return out

    def step_of(self, instance: int) -> tuple[float, float] | None:
        s = self.steps.get(int(instance))
        return None if s is None else (float(s[0]), float(s[1]))

    def to_json(self) -> dict:
        return {
            "instances": self.instances,
            "categories": {str(k): v for k, v in self.categories.items()},
            "counts": self.counts,
            "measures": {k: v.to_json() for k, v in self.measures.items()},
            "plain": {k: v.to_json() for k, v in self.plain.items()},
            "steps": {str(k): v for k, v in self.steps.items()},
            "has_midpoint": self.has_midpoint,
        }

    @classmethod
    def from_json(cls, d: dict) -> Partial:
        return cls(
            d["instances"],
            {int(k): v for k, v in d["categories"].items()},
            d["counts"],
            {k: Measure.from_json(v) for k, v in d["measures"].items()},
            {k: Dist.from_json(v) for k, v in d["plain"].items()},
            {int(k): v for k, v in d["steps"].items()},
            d["has_midpoint"],
        )


def _measure_key(array_key: str) -> str:
    for _, key, arr, _ in MEASURES:
        if arr == array_key:
            return key
    raise KeyError(array_key)


def _worst_ids(measures: dict) -> set[int]:
    ids = set()
    for m in measures.values():
        if m.worst is not None:
            ids.add(int(m.worst[1]))
    return ids


def reduce_chunk(a: dict[str, np.ndarray], exact: bool) -> Partial:
    """The :class:`Partial` of one chunk's per-instance arrays."""
    idx, cat = np.asarray(a["index"]), np.asarray(a["category"])
    has_mp = "mp_drift" in a
    measures = {}
    for section, key, arr, largest in MEASURES:
        if section == "midpoint" and not has_mp:
            continue
        measures[f"{section}/{key}"] = Measure.of(a[arr], idx, cat, largest, exact)
    plain = {"gf/horizon_kappa_t": Dist.of(a["gf_t_final"] * a["kappa"], exact)}
    counts = {
        k: (f(a) if (has_mp or not k.startswith("mp_")) else 0)
        for k, f in COUNTS.items()
    }
    keep = _worst_ids(measures)
    pos = {int(i): p for p, i in enumerate(idx)}
    steps = {
        i: [float(a["gf_h"][pos[i]]), float(a["gd_h"][pos[i]])] for i in sorted(keep)
    }
    cats, n = np.unique(cat, return_counts=True)
    return Partial(
        int(idx.size),
        {int(c): int(k) for c, k in zip(cats, n, strict=True)},
        counts,
        measures,
        plain,
        steps,
        has_mp,
    )


def merge(parts) -> Partial:
    """Fold partials (any order, any grouping: the result is the same)."""
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to merge")
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out
