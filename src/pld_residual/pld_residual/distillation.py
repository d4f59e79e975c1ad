"""PLD stage 3: supervised fine-tuning of the base VLA on collected data, with a manifest of what it saw.

Datasets are PLD datasets (episode bags + index.json, from `pld collect` or the recorder) or trajectory
directories of `pld pretrain` (`.npz` + manifest.json, e.g. scripted-expert demos); only successful
episodes are used. The result is `<out>/model/`, a checkpoint that `SmallVLABackend.load` (and so the VLA
server, `pld eval`, `pld learn --base`) reads, and `<out>/distill.json`: base model id, new model id, mode,
options, loss curve, and per dataset the episodes, steps, sources and each bag's SHA-256.

Resuming: training checkpoints go to `<out>/train/` every `checkpoint_every` steps (optimizer included;
step k's batch depends only on (seed, k)), so re-running the same command after Ctrl-C continues from the
last one and ends with the model an uninterrupted run gives.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pld_residual.agent.io import atomic_write

MODES = ("full", "head", "lora")
MANIFEST = "distill.json"
MODEL_DIR = "model"
TRAIN_DIR = "train"
# settings a resumed run must share with the interrupted one (steps may grow: training continues)
FIXED_SETTINGS = (
    "base_model_id", "datasets", "mode", "batch_size", "learning_rate", "seed", "tasks", "only_successful"
)  # fmt: skip


def load_sft_data(
    paths: Sequence[Path], tasks: Sequence[str] | None = None, only_successful: bool = True
) -> tuple[list[Any], list[dict]]:
    """Successful episodes of every dataset, and what each dataset contributed (for the manifest)."""
    from pld_residual.dataset.index import load_index
    from pld_residual.dataset.reader import load_dataset
    from pld_vla_server.dataset import MANIFEST as NPZ_MANIFEST
    from pld_vla_server.dataset import load_episodes

    episodes, seen = [], []
    for path in map(Path, paths):
        if (path / "index.json").is_file():
            part = load_dataset(path, only_successful=only_successful, tasks=list(tasks) if tasks else None)
            used = {e.meta["bag"] for e in part}
            digests = {r["bag"]: r.get("sha256") for r in load_index(path) if r["bag"] in used}
            entry = {"format": "pld-bags", "bags": dict(sorted(digests.items()))}
        elif (path / NPZ_MANIFEST).is_file():
            part = [e for e in load_episodes(path, only_successful) if not tasks or e.task in tasks]
            entry = {"format": "npz"}
        else:
            raise FileNotFoundError(
                f"{path} is neither a PLD dataset (index.json) nor a trajectory dir (manifest.json)"
            )
        if not part:
            what = "successful episodes" if only_successful else "episodes"
            raise ValueError(f"{path} has no {what}" + (f" of {list(tasks)}" if tasks else ""))
        episodes += part
        seen.append(
            {
                "path": str(path.resolve()),
                "episodes": len(part),
                "steps": int(sum(len(e) for e in part)),
                "sources": dict(Counter(e.source for e in part)),
                "tasks": dict(Counter(e.task for e in part)),
                **entry,
            }
        )
    return episodes, seen


def distill(
    base_dir: Path,
    datasets: Sequence[Path],
    out: Path,
    mode: str = "full",
    steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float = 3e-4,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    progress: bool = True,
    num_threads: int | None = None,
    checkpoint_every: int = 100,
    only_successful: bool = True,
) -> dict[str, Any]:
    """Fine-tune the VLA at `base_dir` on `datasets`; writes `<out>/model/` and `<out>/distill.json`."""
    from tqdm import tqdm

    from pld_vla_server.small_vla import SmallVLABackend

    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if not datasets:
        raise ValueError("distill needs at least one dataset")
    out = Path(out)
    if not (Path(base_dir) / "config.json").is_file():
        raise FileNotFoundError(f"no VLA checkpoint in {base_dir}; run `pld pretrain` first (or pass --base)")
    backend = SmallVLABackend.load(Path(base_dir))
    settings = {
        "base": str(Path(base_dir).resolve()),
        "base_model_id": backend.model_id,
        "head": backend.config.head,
        "datasets": [str(Path(p).resolve()) for p in datasets],
        "tasks": sorted(tasks) if tasks else None,
        "mode": mode,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "only_successful": only_successful,
    }
    previous = _previous(out, settings)
    if previous is not None and previous.get("complete") and previous["settings"]["steps"] == steps:
        return previous  # nothing left to do
    episodes, seen = load_sft_data(datasets, tasks, only_successful)
    if previous is None:  # claim `out` for these settings before the first checkpoint exists
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / MANIFEST, (json.dumps({"complete": False, "settings": settings}) + "\n").encode())
    start = time.perf_counter()
    with tqdm(
        total=steps, desc=f"distill {backend.config.head} ({mode})", unit="step", disable=not progress
    ) as bar:

        def report(info: dict[str, Any]) -> None:
            bar.n = info["step"]
            bar.set_postfix(loss=f"{info['loss']:.3f}")
            bar.refresh()

        result = backend.finetune(
            episodes, mode, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
            checkpoint_dir=out / TRAIN_DIR, checkpoint_every=checkpoint_every, progress=report,
            num_threads=num_threads,
        )  # fmt: skip
    if mode == "lora":
        backend.merge_lora()  # the saved model is a plain checkpoint any loader reads
    backend.save(out / MODEL_DIR)
    manifest = {
        "complete": result["steps"] >= steps,
        "settings": settings,
        "model": MODEL_DIR,
        "model_id": backend.model_id,
        "data": seen,
        "episodes": len(episodes),
        "samples": result["samples"],
        "loss_first": result["loss_first"],
        "loss_last": result["loss_last"],
        "losses": result["losses"],
        "resumed_from_step": result["start_step"],  # 0 unless this run continued an interrupted one
        "trainable_params": result["trainable_params"],
        "wall_time_s": round(result["total_wall_time_s"], 1),
        "this_run_wall_time_s": round(time.perf_counter() - start, 1),
    }
    atomic_write(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def _previous(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of an earlier run into `out`; refuses one made with other fixed settings."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    previous = json.loads(path.read_text())
    differing = [k for k in FIXED_SETTINGS if previous["settings"].get(k) != settings[k]]
    if differing:
        raise ValueError(f"{out} holds a distillation with other {differing}; use another --out")
    return previous
