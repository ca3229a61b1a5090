"""Scoped flushing of subnormal numbers (dynamics._denormal)."""

import torch

from dynamics._denormal import flush_denormals, flushing_denormals


def test_flush_is_scoped_and_restores_the_previous_setting():
    """Inside the block 1e-310 * 1 is flushed to 0 (where the CPU supports it); on
    exit the previous setting is back, whether it was off or on."""
    assert not flushing_denormals()
    tiny = torch.tensor([1e-310], dtype=torch.float64)
    with flush_denormals() as active:
        if active:
            assert float((tiny * 1.0)[0]) == 0.0
    assert not flushing_denormals()
    assert float((tiny * 1.0)[0]) == 1e-310
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert flushing_denormals() == torch.set_flush_denormal(True)
    finally:
        torch.set_flush_denormal(False)
    assert not flushing_denormals()
