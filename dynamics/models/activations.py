"""The activation table of the single-index DEQ y = sigma(<u, x> + v y).

Spec §2.4, pitfalls P4 and P5.

Each entry is data: sigma, sigma', sigma'', the Lipschitz constant L = sup |sigma'|,
the largest slope S = sup sigma', whether sigma is increasing, smooth (C^2) or affine,
its range, the root-bracket rule and the authors' parameter guard. The model and the
root solver only read these fields.

Well-posedness [D]: the fixed point is unique when |v| L < 1 (Banach), or, for an
increasing sigma, when v S < 1 (then y - sigma(a + v y) is strictly increasing in y).
ReLU and leaky ReLU are flagged non-smooth: they may be trained, but every helper
that needs sigma in C^2 (Hessians, dQ/dt, the SIM-* theorem checks) refuses them with
:class:`NonSmoothActivationError` (P5).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy.special import expit

from ..errors import InvalidInputError, NonSmoothActivationError, reject_unknown

Array = np.ndarray
Bracket = Callable[[Array, float], tuple[Array, Array]]

#: Relative widening of a computed bracket, so that a root sitting exactly on an
#: analytic end (identity: y = a / (1 - v)) stays inside it after rounding.
BRACKET_SLACK = 1e-12

# GELU, tanh form: 0.5 z (1 + tanh(c (z + k z^3))).
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
#: sup GELU' (attained at z ~ 1.4185); GELU'(z) + GELU'(-z) = 1, so
#: inf GELU' = 1 - this.
#: Computed by bounded 1-D maximisation to 1e-14 and rounded up; tests re-derive it.
GELU_SUP_SLOPE = 1.1289930686588
#: sup |GELU''| = GELU''(0) = sqrt(2/pi) (checked on a fine grid), padded for rounding.
GELU_CURVATURE = math.sqrt(2.0 / math.pi) * (1.0 + 1e-12)
#: min GELU (attained at z ~ -0.7525), rounded down.
GELU_MIN_VALUE = -0.17004075057126
LEAKY_SLOPE = 0.01
#: sup |tanh''| = 4 / (3 sqrt 3), attained where tanh^2 = 1/3; padded for rounding.
_TANH_CURVATURE = 4.0 / (3.0 * math.sqrt(3.0)) * (1.0 + 1e-12)


def monotone_bracket(sigma_a: Array, v: float, sup_slope: float) -> tuple[Array, Array]:
    """Bracket of the root of y = sigma(a + v y) for an increasing sigma with v S < 1.

    F(y) = y - sigma(a + v y) is increasing and F(0) = -sigma(a). For v <= 0 the root
    lies between 0 and sigma(a); for 0 < v < 1/S, between 0 and sigma(a) / (1 - v S),
    because sigma moves by at most S |v y| when its argument moves by v y.
    """
    end = sigma_a if v <= 0.0 else sigma_a / (1.0 - v * sup_slope)
    return _widen(np.minimum(0.0, end), np.maximum(0.0, end))


def contraction_bracket(
    sigma_a: Array, v: float, lipschitz: float
) -> tuple[Array, Array]:
    """Bracket for any L-Lipschitz sigma with |v| L < 1: |y - sigma(a)| <= r.

    |y| <= |sigma(a)| + L |v| |y| gives |y| <= |sigma(a)| / (1 - L |v|), and then
    |y - sigma(a)| <= L |v| |y| <= r := L |v| |sigma(a)| / (1 - L |v|).
    """
    q = abs(v) * lipschitz
    r = q * np.abs(sigma_a) / (1.0 - q)
    return _widen(sigma_a - r, sigma_a + r)


def _widen(lo: Array, hi: Array) -> tuple[Array, Array]:
    pad = BRACKET_SLACK * (1.0 + np.abs(lo) + np.abs(hi))
    return lo - pad, hi + pad


@dataclasses.dataclass(frozen=True)
class Activation:
    """One row of the activation table (validated once, in ``__post_init__``).

    Attributes:
        name: table key (``sigma_eps`` entries carry ``eps`` as well).
        sigma, dsigma, d2sigma: sigma and its first two derivatives (elementwise).
        derivatives: (sigma, sigma', sigma'') at s from one transcendental evaluation;
            the Newton loop calls it once per iteration.
        lipschitz: L = sup |sigma'|.
        sup_slope: S = sup sigma'.
        curvature: M = sup |sigma''| (inf when sigma is not C^2); it certifies a Newton
            step without a further evaluation: |F(y + dy)| <= v^2 M dy^2 / 2.
        increasing: sigma' >= 0 everywhere (then v S < 1 suffices for a unique root).
        smooth: C^2 (theorem checks use only smooth activations; pitfall P5).
        affine: sigma is affine (then the minimiser is not isolated; pitfall P9).
        value_range: (inf sigma, sup sigma); +-inf when unbounded.
        bracket: ``(a, v) -> (lo, hi)`` arrays with F(lo) <= 0 <= F(hi),
            F(y) = y - sigma(a + v y); valid wherever ``well_posed(v)`` holds.
        guard: the parameter guard the authors' scripts enforce (a function of v).
        guard_text: that guard in words.
        eps: the epsilon of sigma_eps(z) = z + eps tanh z (None otherwise).
    """

    name: str
    sigma: Callable[[Array], Array]
    dsigma: Callable[[Array], Array]
    d2sigma: Callable[[Array], Array]
    derivatives: Callable[[Array], tuple[Array, Array, Array]]
    lipschitz: float
    sup_slope: float
    curvature: float
    increasing: bool
    smooth: bool
    affine: bool
    value_range: tuple[float, float]
    bracket: Bracket
    guard: Callable[[float], bool]
    guard_text: str
    eps: float | None = None

    def __post_init__(self):
        if not (math.isfinite(self.lipschitz) and self.lipschitz > 0):
            raise InvalidInputError(f"{self.name}: Lipschitz constant must be > 0")
        if not (math.isfinite(self.sup_slope) and self.sup_slope <= self.lipschitz):
            raise InvalidInputError(f"{self.name}: sup sigma' must be finite and <= L")
        lo, hi = self.value_range
        if not lo < hi:
            raise InvalidInputError(
                f"{self.name}: empty value range {self.value_range}"
            )
        # Derivatives must match the function (central differences on a small grid),
        # and derivatives() must match the three separate entries.
        z = np.linspace(-3.0, 3.0, 13) + 0.05
        h = 1e-5
        for f, df, what in (
            (self.sigma, self.dsigma, "sigma'"),
            (self.dsigma, self.d2sigma, "sigma''"),
        ):
            fd = (f(z + h) - f(z - h)) / (2 * h)
            if not np.allclose(fd, df(z), rtol=1e-6, atol=1e-6):
                raise InvalidInputError(
                    f"{self.name}: {what} disagrees with finite "
                    "differences of the table entry"
                )
        if not all(
            np.allclose(got, want(z), rtol=1e-14, atol=1e-15)
            for got, want in zip(
                self.derivatives(z),
                (self.sigma, self.dsigma, self.d2sigma),
                strict=True,
            )
        ):
            raise InvalidInputError(f"{self.name}: derivatives() disagrees with sigma")
        if not self.curvature >= 0 or (
            self.smooth and not math.isfinite(self.curvature)
        ):
            raise InvalidInputError(
                f"{self.name}: sup |sigma''| must be finite for C^2"
            )
        if np.any(np.abs(self.d2sigma(z)) > self.curvature * (1 + 1e-12)):
            raise InvalidInputError(f"{self.name}: |sigma''| exceeds the stated bound")
        if self.increasing and np.any(self.dsigma(z) < 0):
            raise InvalidInputError(f"{self.name}: flagged increasing but sigma' < 0")
        if np.any(np.abs(self.dsigma(z)) > self.lipschitz * (1 + 1e-12)):
            raise InvalidInputError(f"{self.name}: |sigma'| exceeds the stated L")

    @property
    def label(self) -> str:
        return self.name if self.eps is None else f"{self.name}({self.eps:g})"

    def well_posed(self, v: float) -> bool:
        """Unique fixed point for every input: |v| L < 1, or v S < 1 if increasing."""
        if self.increasing and v * self.sup_slope < 1.0:
            return True
        return abs(v) * self.lipschitz < 1.0

    def require_smooth(self, what: str) -> None:
        """Raise NonSmoothActivationError unless sigma is C^2; ``what`` names the
        computation that needs it (a Hessian, dQ/dt, a theorem check)."""
        if not self.smooth:
            raise NonSmoothActivationError(
                f"{what} needs a C^2 activation, but {self.label} is not "
                "differentiable at 0 (its derivative there is only a convention); "
                "use a smooth activation (sigmoid, tanh, gelu, sigma_eps) for it"
            )

    def condition_text(self) -> str:
        if self.increasing:
            return f"v * sup sigma' < 1, i.e. v < {1.0 / self.sup_slope:.6g}"
        return f"|v| * L < 1, i.e. |v| < {1.0 / self.lipschitz:.6g}"


# --- table entries -------------------------------------------------------------------


def _sigmoid_d(s):
    e = expit(s)
    d = e * (1.0 - e)
    return e, d, d * (1.0 - 2.0 * e)


def _tanh_d(s):
    t = np.tanh(s)
    d = 1.0 - t * t
    return t, d, -2.0 * t * d


def _fixed_bracket(lo: float, hi: float) -> Bracket:
    def bracket(a, v):
        del v
        shape = np.shape(a)
        return np.full(shape, lo), np.full(shape, hi)

    return bracket


def _gelu(z):
    return 0.5 * z * (1.0 + np.tanh(_GELU_C * (z + _GELU_K * z**3)))


def _gelu_d(z):
    t = np.tanh(_GELU_C * (z + _GELU_K * z**3))
    hp = _GELU_C * (1.0 + 3.0 * _GELU_K * z * z)
    hpp = 6.0 * _GELU_C * _GELU_K * z
    sech2 = 1.0 - t * t
    return (
        0.5 * z * (1.0 + t),
        0.5 * (1.0 + t) + 0.5 * z * sech2 * hp,
        sech2 * (hp + 0.5 * z * (hpp - 2.0 * t * hp * hp)),
    )


def _leaky(z):
    return np.where(z >= 0, z, LEAKY_SLOPE * z)


def _leaky_d(z):
    # One-sided convention relu'(0) = 1, as in the early script (pitfall P5).
    return np.where(np.asarray(z) >= 0, 1.0, LEAKY_SLOPE)


def _relu(z):
    return np.maximum(np.asarray(z, dtype=float), 0.0)


def _relu_d(z):
    # One-sided convention relu'(0) = 1, as in the early script (pitfall P5).
    return np.where(np.asarray(z) >= 0, 1.0, 0.0)


def _zeros(z):
    return np.zeros_like(np.asarray(z, dtype=float))


def _ones(z):
    return np.ones_like(np.asarray(z, dtype=float))


def _monotone_rule(sigma, sup_slope) -> Bracket:
    def bracket(a, v):
        return monotone_bracket(sigma(np.asarray(a, float)), v, sup_slope)

    return bracket


SIGMOID = Activation(
    name="sigmoid",
    sigma=expit,
    dsigma=lambda s: _sigmoid_d(s)[1],
    d2sigma=lambda s: _sigmoid_d(s)[2],
    derivatives=_sigmoid_d,
    lipschitz=0.25,
    sup_slope=0.25,
    curvature=1.0 / (6.0 * math.sqrt(3.0)) * (1.0 + 1e-12),
    increasing=True,
    smooth=True,
    affine=False,
    value_range=(0.0, 1.0),
    bracket=_fixed_bracket(0.0, 1.0),  # the range of sigma (P4)
    guard=lambda v: v < 4.0,
    guard_text="v < 4",
)

TANH = Activation(
    name="tanh",
    sigma=np.tanh,
    dsigma=lambda s: _tanh_d(s)[1],
    d2sigma=lambda s: _tanh_d(s)[2],
    derivatives=_tanh_d,
    lipschitz=1.0,
    sup_slope=1.0,
    curvature=_TANH_CURVATURE,
    increasing=True,
    smooth=True,
    affine=False,
    value_range=(-1.0, 1.0),
    bracket=_fixed_bracket(-1.0, 1.0),  # the range of sigma (P4)
    guard=lambda v: abs(v) < 1.0,
    guard_text="|v| < 1",
)

GELU = Activation(
    name="gelu",
    sigma=_gelu,
    dsigma=lambda z: _gelu_d(z)[1],
    d2sigma=lambda z: _gelu_d(z)[2],
    derivatives=_gelu_d,
    lipschitz=GELU_SUP_SLOPE,
    sup_slope=GELU_SUP_SLOPE,
    curvature=GELU_CURVATURE,
    increasing=False,
    smooth=True,
    affine=False,
    value_range=(GELU_MIN_VALUE, math.inf),
    bracket=lambda a, v: contraction_bracket(
        _gelu(np.asarray(a, float)), v, GELU_SUP_SLOPE
    ),
    guard=lambda v: abs(v) * GELU_SUP_SLOPE < 1.0,
    guard_text="|v| L < 1",
)

LEAKY_RELU = Activation(
    name="leaky_relu",
    sigma=_leaky,
    dsigma=_leaky_d,
    d2sigma=_zeros,
    derivatives=lambda z: (_leaky(z), _leaky_d(z), _zeros(z)),
    lipschitz=1.0,
    sup_slope=1.0,
    curvature=math.inf,
    increasing=True,
    smooth=False,
    affine=False,
    value_range=(-math.inf, math.inf),
    bracket=_monotone_rule(_leaky, 1.0),
    guard=lambda v: v < 1.0,
    guard_text="v < 1",
)

RELU = Activation(
    name="relu",
    sigma=_relu,
    dsigma=_relu_d,
    d2sigma=_zeros,
    derivatives=lambda z: (_relu(z), _relu_d(z), _zeros(z)),
    lipschitz=1.0,
    sup_slope=1.0,
    curvature=math.inf,
    increasing=True,
    smooth=False,
    affine=False,
    value_range=(0.0, math.inf),
    bracket=_monotone_rule(_relu, 1.0),
    guard=lambda v: v < 1.0,
    guard_text="v < 1",
)

IDENTITY = Activation(
    name="identity",
    sigma=lambda z: np.asarray(z, float) + 0.0,
    dsigma=_ones,
    d2sigma=_zeros,
    derivatives=lambda z: (np.asarray(z, float) + 0.0, _ones(z), _zeros(z)),
    lipschitz=1.0,
    sup_slope=1.0,
    curvature=0.0,
    increasing=True,
    smooth=True,
    affine=True,
    value_range=(-math.inf, math.inf),
    bracket=_monotone_rule(lambda z: z, 1.0),
    guard=lambda v: v < 1.0,
    guard_text="v < 1",
)


def sigma_eps(eps: float) -> Activation:
    """sigma_eps(z) = z + eps tanh z (weak nonlinearity, P-WEAK), eps >= 0.

    L = S = 1 + eps. Bracket (P4), for |v| < 1: +-((|a| + eps)/(1 - |v|) + 1), from
    |y| <= |a| + |v| |y| + eps; for v <= -1 (allowed: sigma_eps is increasing) the
    monotone bracket. The authors' guard is |v| (1 + eps) < 0.95.
    """
    eps = float(eps)
    if not (math.isfinite(eps) and eps >= 0.0):
        raise InvalidInputError(f"sigma_eps needs a finite eps >= 0; got {eps!r}")

    def sig(z):
        return z + eps * np.tanh(z)

    def derivs(z):
        t = np.tanh(z)
        d = 1.0 - t * t
        return z + eps * t, 1.0 + eps * d, -2.0 * eps * t * d

    def bracket(a, v):
        a = np.asarray(a, float)
        if abs(v) < 1.0:
            r = (np.abs(a) + eps) / (1.0 - abs(v)) + 1.0
            return -r, r
        return monotone_bracket(sig(a), v, 1.0 + eps)

    return Activation(
        name="sigma_eps",
        sigma=sig,
        dsigma=lambda z: derivs(z)[1],
        d2sigma=lambda z: derivs(z)[2],
        derivatives=derivs,
        lipschitz=1.0 + eps,
        sup_slope=1.0 + eps,
        curvature=eps * _TANH_CURVATURE,
        increasing=True,
        smooth=True,
        affine=(eps == 0.0),
        value_range=(-math.inf, math.inf),
        bracket=bracket,
        guard=lambda v: abs(v) * (1.0 + eps) < 0.95,
        guard_text=f"|v| (1 + eps) < 0.95 (eps = {eps:g})",
        eps=eps,
    )


#: The table: name -> entry (``sigma_eps`` is a factory taking eps).
ACTIVATIONS: dict[str, Activation] = {
    a.name: a for a in (SIGMOID, TANH, GELU, RELU, LEAKY_RELU, IDENTITY)
}
FACTORIES: dict[str, Callable[[float], Activation]] = {"sigma_eps": sigma_eps}


def get_activation(spec: str | Activation, **params) -> Activation:
    """Resolve a table name (``"tanh"``, ``"sigma_eps"`` with ``eps=...``, or
    ``"sigma_eps:0.25"``) to its entry; unknown names raise UnknownOptionError."""
    if isinstance(spec, Activation):
        if params:
            raise reject_unknown("activation parameter", next(iter(params)), ())
        return spec
    if not isinstance(spec, str):
        raise reject_unknown("activation", repr(spec), [*ACTIVATIONS, *FACTORIES])
    name, _, arg = spec.partition(":")
    if name in FACTORIES:
        if arg:
            if params:
                raise reject_unknown("activation parameter", next(iter(params)), ())
            try:
                params = {"eps": float(arg)}
            except ValueError as exc:
                raise InvalidInputError(f"cannot read eps from {spec!r}") from exc
        unknown = set(params) - {"eps"}
        if unknown:
            raise reject_unknown("activation parameter", unknown.pop(), ["eps"])
        if "eps" not in params:
            raise InvalidInputError(
                f"activation {name!r} needs eps (e.g. 'sigma_eps:0.25')"
            )
        return FACTORIES[name](**params)
    if name in ACTIVATIONS and not arg:
        if params:
            raise reject_unknown("activation parameter", next(iter(params)), ())
        return ACTIVATIONS[name]
    raise reject_unknown("activation", spec, [*ACTIVATIONS, *FACTORIES])
