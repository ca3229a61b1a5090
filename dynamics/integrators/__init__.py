"""One-step integrators (the driver is :func:`dynamics.flows.gradient_flow.integrate`)."""
