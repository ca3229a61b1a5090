"""Subcommands of ``deq-dynamics``: each module defines ``register(subparsers)``.

``register`` adds one subparser and sets ``func`` to a callable ``args -> exit code``.
"""
