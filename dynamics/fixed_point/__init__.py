"""Fixed-point solvers (init / step / terminate) and the single driver loop."""
