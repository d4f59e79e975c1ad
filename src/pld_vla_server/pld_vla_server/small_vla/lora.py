"""LoRA adapters (peft) on every `nn.Linear` of the small VLA, trunk and head.

peft's `inject_adapter_in_model` works on our plain `nn.Module`: each targeted Linear becomes a
`lora.Linear` holding the frozen original as `base_layer`. What LoRA does not cover here: the convs
(left frozen, by choice) and the token head's `nn.GRU`, whose fused weights are not Linear modules
(peft has no GRU layer) -- in `lora` mode the GRU stays frozen and its input/output projections adapt.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn


def linear_module_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if type(module) is nn.Linear]


def has_lora(model: nn.Module) -> bool:
    return any(hasattr(module, "lora_A") for module in model.modules())


def inject_lora(
    model: nn.Module, rank: int, alpha: float, seed: int, targets: list[str] | None = None
) -> dict:
    """Add adapters in place (B = 0, so the model's output is unchanged); returns the settings to save."""
    from peft import LoraConfig, inject_adapter_in_model  # imported here: peft takes seconds to import

    targets = targets if targets is not None else linear_module_names(model)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        bias="none",
        target_modules="^(" + "|".join(re.escape(t) for t in targets) + ")$",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # lora_A init draws from the global generator
        inject_adapter_in_model(config, model)
    return {"rank": rank, "alpha": alpha, "seed": seed, "targets": targets}


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in model.named_parameters() if "lora_" in name]


def merge_lora(model: nn.Module) -> None:
    """Fold the adapters into the base weights and put plain Linear layers back."""
    for name, module in list(model.named_modules()):
        if hasattr(module, "lora_A") and hasattr(module, "base_layer"):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.base_layer)


def restore_lora(model: nn.Module, settings: dict[str, Any]) -> None:
    inject_lora(model, settings["rank"], settings["alpha"], settings["seed"], settings["targets"])
