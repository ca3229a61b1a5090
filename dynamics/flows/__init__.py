"""Gradient descent and gradient flow over any :class:`AbstractModel`."""
