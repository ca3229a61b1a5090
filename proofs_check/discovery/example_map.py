"""An example user-supplied model map: ``deq-dynamics discover --map THIS_FILE``.

phi(a, b, c) = (a b, b c): a toy two-output map. PARAMS and OUTPUTS are required;
KNOWN_LAWS and EXPECTED_LAWS are optional and only used to report agreement.
"""

import sympy as sp

a, b, c = sp.symbols("a b c", real=True)
NAME = "toy product map (a b, b c)"
PARAMS = [a, b, c]
OUTPUTS = [a * b, b * c]
# The rescaling (a, b, c) -> (a/t, t b, c/t) leaves phi unchanged: a^2 - b^2 + c^2 is
# conserved (Noether).
KNOWN_LAWS = [("a^2 - b^2 + c^2", a**2 - b**2 + c**2)]
EXPECTED_LAWS = 1
