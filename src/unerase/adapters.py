"""Adapter modules added to a UNet (Receler's erasers): a small residual MLP after each cross-attention
layer, o' = o + up(GELU(down(o))), `up` zero-initialised so a fresh adapter changes nothing.

They are ordinary submodules (`…attn2.eraser.down.weight`), so a UNet patch holds them like any
other parameter; `install_erasers` re-creates them before such a patch is loaded.
"""
from __future__ import annotations

import torch

ERASER = ".attn2.eraser."


class Eraser(torch.nn.Module):
    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.down = torch.nn.Linear(dim, rank)
        self.up = torch.nn.Linear(rank, dim)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)
        self.last = None  # the latest output, read by Receler's localised regulariser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = self.up(torch.nn.functional.gelu(self.down(x)))
        return self.last


def _add_eraser_output(attn, inputs, output):
    return output + attn.eraser(output)


def install_erasers(unet: torch.nn.Module, rank: int) -> dict[str, Eraser]:
    """An eraser after every cross-attention layer; returns them by the layer's name."""
    erasers = {}
    for name, module in unet.named_modules():
        if name.endswith(".attn2") and not hasattr(module, "eraser"):
            module.add_module("eraser", Eraser(module.to_out[0].out_features, rank).to(module.to_out[0].weight.device,
                                                                                      module.to_out[0].weight.dtype))
            module.register_forward_hook(_add_eraser_output)
            erasers[name] = module.eraser
    if not erasers:
        raise ValueError("this UNet has no cross-attention layer to attach erasers to")
    return erasers


def eraser_rank(patch: dict[str, torch.Tensor]) -> int | None:
    """The erasers' rank in a UNet patch, or None when it holds none."""
    downs = [v for k, v in patch.items() if ERASER in k and k.endswith("down.weight")]
    return int(downs[0].shape[0]) if downs else None
