"""Numeric and symbolic checks, one module per claim group; each registers itself."""
