"""Closed-form approximate backprop for scalar-state DEQs (spec §4): exact IFT, JFB,
Neumann-m, damped-m and phantom-k, as objects that replace (1 - J)^{-1}."""
