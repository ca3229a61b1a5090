"""DEQ models: each maps a flat parameter vector to a risk and its exact gradient."""
