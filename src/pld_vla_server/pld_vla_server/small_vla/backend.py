"""`small_vla`: the default VLA backend, trained here on CPU (see `SmallVLAConfig` for its shape).

Saved models are directories: `config.json`, `model.safetensors` (state dict, LoRA adapters included
when present), `meta.json` (model_id = hash of config and weights, LoRA settings, trained steps) and the
instruction embeddings seen so far (`language_cache.npy` + `instructions.json`), so a loaded model
reproduces predictions bit for bit without re-running the language model for known instructions.

Determinism: weights are initialised from `config.seed`; the flow head integrates from a noise drawn
from a generator seeded with `config.seed` on every call (the same noise every time), so `predict` is
a deterministic function of the observation; the token head decodes greedily.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pld_vla_server.backends.base import FINETUNE_MODES, VLABackend, register_backend
from pld_vla_server.dataset import Episode, load_episodes
from pld_vla_server.small_vla import lora
from pld_vla_server.small_vla.config import SmallVLAConfig
from pld_vla_server.small_vla.language import embed_instructions
from pld_vla_server.small_vla.model import SmallVLA
from pld_vla_server.small_vla.train import (
    CHECKPOINT_FILE,
    TrainOptions,
    fit_normalizer,
    make_state_probe,
    prepare_data,
    train_loop,
)
from pld_vla_server.small_vla.vision import camera_input
from pld_vla_server.types import ActionChunk, InputSpec, VLAObservation, validate_observation


@register_backend
class SmallVLABackend(VLABackend):
    name: ClassVar[str] = "small_vla"
    config_type: ClassVar[type] = SmallVLAConfig

    def __init__(self, config: SmallVLAConfig | None = None) -> None:
        config = config or SmallVLAConfig()
        super().__init__(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = SmallVLA(config)
        self.model.eval()
        self.trained_steps = 0
        self._lora: dict[str, Any] | None = None
        self._embeddings: dict[str, np.ndarray] = {}
        self._model_id: str | None = None
        self._high = config.action_high

    # ------------------------------------------------------------------ inference
    @property
    def input_spec(self) -> InputSpec:
        c = self.config
        return InputSpec(cameras=tuple(c.cameras), image_size=c.image_size, proprio_dim=c.proprio_dim)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            architecture = {k: v for k, v in self.config.to_dict().items() if k != "inference_threads"}
            digest = hashlib.sha256(json.dumps(architecture, sort_keys=True).encode())
            digest.update(json.dumps(self._lora, sort_keys=True).encode())
            for key, tensor in sorted(self.model.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().contiguous().numpy().tobytes())
            self._model_id = f"small_vla-{self.config.head}-{digest.hexdigest()[:12]}"
        return self._model_id

    def embed(self, instructions: list[str]) -> np.ndarray:
        """Instruction embeddings [n, 384]: this model's cache first, then the shared MiniLM encoder."""
        missing = sorted({t for t in instructions if t not in self._embeddings})
        if missing:
            self._embeddings.update(zip(missing, embed_instructions(missing), strict=True))
        return np.stack([self._embeddings[t] for t in instructions])

    def _inputs(self, obs: VLAObservation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        validate_observation(obs, self.input_spec)
        c = self.config
        images = np.stack(
            [camera_input(obs.images[cam], c.camera_window(cam), c.vision_size) for cam in c.cameras]
        )
        proprio = np.asarray(obs.proprio, dtype=np.float32).reshape(1, -1)
        language = self.embed([obs.instruction])
        return torch.from_numpy(images[None]), torch.from_numpy(proprio), torch.from_numpy(language)

    def predict(self, obs: VLAObservation) -> ActionChunk:
        start = time.perf_counter()
        images, proprio, language = self._inputs(obs)
        with _threads(self.config.inference_threads), torch.inference_mode():
            features = self.model.encode(images, proprio, language)
            chunk = self.model.act(features, self.config.seed)
        actions = np.clip(chunk[0].numpy() * self._high, -self._high, self._high)
        elapsed = (time.perf_counter() - start) * 1e3
        return ActionChunk(actions, features[0].numpy(), elapsed, self.model_id, {"head": self.config.head})

    def features(self, obs: VLAObservation) -> np.ndarray:
        """The trunk's `feature_dim` vector (LayerNorm'd), without running the action head."""
        images, proprio, language = self._inputs(obs)
        with _threads(self.config.inference_threads), torch.inference_mode():
            return self.model.encode(images, proprio, language)[0].numpy().copy()

    # ------------------------------------------------------------------ save / load
    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in self.model.state_dict().items()}
        save_file(state, str(path / "model.safetensors"))
        (path / "config.json").write_text(self.config.to_json())
        names = sorted(self._embeddings)
        (path / "instructions.json").write_text(json.dumps(names, indent=1))
        cache = np.stack([self._embeddings[n] for n in names]) if names else np.zeros((0, 384), np.float32)
        np.save(path / "language_cache.npy", cache)
        meta = {
            "backend": self.name,
            "model_id": self.model_id,
            "lora": self._lora,
            "trained_steps": self.trained_steps,
        }
        (path / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path: Path) -> SmallVLABackend:
        path = Path(path)
        config = SmallVLAConfig.from_dict(json.loads((path / "config.json").read_text()))
        meta = json.loads((path / "meta.json").read_text())
        backend = cls(config)
        if meta.get("lora"):
            lora.restore_lora(backend.model, meta["lora"])
            backend._lora = meta["lora"]
        backend.model.load_state_dict(load_file(str(path / "model.safetensors")))
        backend.model.eval()
        names = json.loads((path / "instructions.json").read_text())
        backend._embeddings = dict(zip(names, np.load(path / "language_cache.npy"), strict=True))
        backend.trained_steps = int(meta.get("trained_steps", 0))
        return backend

    def merge_lora(self) -> None:
        """Fold LoRA adapters into the base weights (a plain model again; outputs equal up to rounding)."""
        if self._lora is not None:
            lora.merge_lora(self.model)
            self._lora, self._model_id = None, None

    # ------------------------------------------------------------------ fine-tuning
    def finetune(
        self, dataset: list[Episode] | str | Path, mode: str = "full", **options: Any
    ) -> dict[str, Any]:
        """Train on episodes (or a dataset directory). `full` trains everything (pretraining from scratch
        is `full` on a fresh backend), `head` only the action head, `lora` only LoRA adapters.
        Options: see `TrainOptions`. Returns a report with the loss curve, steps and wall time.
        The proprio normalisation is fitted on the first dataset a model is trained on, then kept."""
        if mode not in FINETUNE_MODES:
            raise ValueError(f"finetune: mode must be one of {FINETUNE_MODES}, got {mode!r}")
        opts = TrainOptions.from_kwargs(options)
        if isinstance(dataset, (str, Path)):
            dataset = load_episodes(Path(dataset), only_successful=opts.only_successful)
        with _threads(opts.num_threads):
            return self._finetune(list(dataset), mode, opts)

    def _finetune(self, episodes: list[Episode], mode: str, opts: TrainOptions) -> dict[str, Any]:
        data = prepare_data(episodes, self.config, self.embed)
        checkpoint = None
        checkpoint_path = Path(opts.checkpoint_dir) / CHECKPOINT_FILE if opts.checkpoint_dir else None
        if checkpoint_path and opts.resume and checkpoint_path.exists():
            checkpoint = torch.load(checkpoint_path, weights_only=True)
            if checkpoint["config"] != self.config.to_dict() or checkpoint["mode"] != mode:
                raise ValueError(f"finetune: checkpoint {checkpoint_path} is for another config or mode")
        self._prepare_mode(mode, opts, checkpoint)
        probe = make_state_probe(self.model, data, opts, mode)
        state: dict[str, Any] = {"step": 0, "losses": [], "wall_time_s": 0.0, "optimizer": None}
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            state = {k: checkpoint[k] for k in ("step", "losses", "wall_time_s", "optimizer")}
            if probe is not None:
                if checkpoint.get("probe") is None:
                    raise ValueError(f"finetune: checkpoint {checkpoint_path} was trained without state loss")
                probe.load_state_dict(checkpoint["probe"])
                state["state_losses"] = checkpoint["state_losses"]
        elif not bool(self.model.normalizer_fitted):
            fit_normalizer(self.model, data)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        start_step, begin = state["step"], time.perf_counter()

        def save_checkpoint(train_state: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
            payload = {
                "config": self.config.to_dict(),
                "mode": mode,
                "lora": self._lora,
                "model": self.model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": train_state["step"],
                "losses": train_state["losses"],
                "wall_time_s": train_state["wall_time_s"],
                "probe": None if probe is None else probe.state_dict(),
                "state_losses": train_state.get("state_losses"),
            }
            checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint_path.with_suffix(".tmp")
            torch.save(payload, tmp)
            tmp.replace(checkpoint_path)  # never a half-written checkpoint

        try:
            train_loop(
                self.model,
                data,
                opts,
                trainable,
                mode == "head",
                state,
                save_checkpoint if checkpoint_path else None,
                probe,
            )
        finally:
            self._model_id = None
            self.trained_steps += state["step"] - start_step
            for parameter in self.model.parameters():
                parameter.requires_grad_(False)
        losses = state["losses"]
        state_losses = state.get("state_losses") or []
        wall = time.perf_counter() - begin
        return {
            "state_losses": list(state_losses),
            "state_loss_first": float(np.mean(state_losses[:10])) if state_losses else None,
            "state_loss_last": float(np.mean(state_losses[-10:])) if state_losses else None,
            "mode": mode,
            "steps": state["step"],
            "start_step": start_step,
            "losses": list(losses),
            "loss_first": float(np.mean(losses[:10])) if losses else float("nan"),
            "loss_last": float(np.mean(losses[-10:])) if losses else float("nan"),
            "wall_time_s": wall,
            "total_wall_time_s": state["wall_time_s"],
            "steps_per_s": (state["step"] - start_step) / max(wall, 1e-9),
            "samples": len(data),
            "episodes": len(episodes),
            "trainable_params": sum(p.numel() for p in trainable),
            "total_params": sum(p.numel() for p in self.model.parameters()),
            "model_id": self.model_id,
        }

    def _prepare_mode(self, mode: str, opts: TrainOptions, checkpoint: dict[str, Any] | None) -> None:
        """Add or fold LoRA adapters as the mode needs, then mark exactly the trained parameters."""
        if mode != "lora":
            self.merge_lora()
        elif self._lora is None:
            saved = checkpoint.get("lora") if checkpoint else None
            if saved:
                lora.restore_lora(self.model, saved)
                self._lora = saved
            else:
                self._lora = lora.inject_lora(self.model, opts.lora_rank, opts.lora_alpha, opts.seed)
        for name, parameter in self.model.named_parameters():
            if mode == "full":
                parameter.requires_grad_(True)
            elif mode == "head":
                parameter.requires_grad_(name.startswith("head."))
            else:
                parameter.requires_grad_("lora_" in name)
        self._model_id = None


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if count and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
