"""How gradients flow through a torch fixed-point solve: unrolled, implicit (IFT),
dense IFT, phantom, JFB and reversible, as objects (never flags)."""

from .base import AbstractGradient as AbstractGradient
from .dense_ift import DenseIFT as DenseIFT
from .implicit import ImplicitIFT as ImplicitIFT
from .jfb import JFB as JFB
from .phantom import Phantom as Phantom
from .reversible import ReversibleExact as ReversibleExact
from .unrolled import Unrolled as Unrolled
