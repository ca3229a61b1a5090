"""How gradients flow through a torch fixed-point solve: unrolled, implicit (IFT),
phantom, JFB and reversible, as objects (never flags)."""
