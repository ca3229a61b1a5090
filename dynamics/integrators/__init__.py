"""One-step integrators (the driver is :func:`dynamics.flows.gradient_flow.integrate`).

The Butcher tableaux they bind are data in :mod:`dynamics.integrators.tableaux`.
"""

from .base import AbstractIntegrator as AbstractIntegrator
from .gauss_legendre import GaussLegendre as GaussLegendre
from .implicit_midpoint import ImplicitMidpoint as ImplicitMidpoint
from .rk4 import RK4 as RK4
from .scipy_ivp import IVPSolution as IVPSolution, ScipyIVP as ScipyIVP
from .tableaux import ButcherTableau as ButcherTableau
