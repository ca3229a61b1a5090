"""Torch backend: the reversible autograd Function, the DEQ layer and batched flows."""
