import pytest

from pld_reward.config import ClassifierConfig


def test_round_trip_and_stage_ids() -> None:
    cfg = ClassifierConfig(tasks=("gpu_insertion_stage1", "gpu_insertion_stage2"))
    assert ClassifierConfig.from_dict(cfg.to_dict()) == cfg
    fitted = ClassifierConfig(use_proprio=True, proprio_mean=[0.5] * 15, proprio_scale=[0.1] * 15)
    assert ClassifierConfig.from_dict(fitted.to_dict()) == fitted and hash(fitted)
    assert cfg.num_stages == 2 and cfg.pool == 2
    assert cfg.stage_of_task("gpu_insertion_stage2") == 2
    assert cfg.stage_index(1) == 0 and cfg.stage_index(2) == 1
    with pytest.raises(ValueError, match=r"stage must be in 1\.\.2"):
        cfg.stage_index(0)
    single = ClassifierConfig()
    assert single.stage_of_task("pick_cube") == 0 and single.stage_index(0) == 0
    with pytest.raises(ValueError, match="stage must be 0"):
        single.stage_index(1)
    with pytest.raises(ValueError, match="not judged"):
        single.stage_of_task("peg_insertion")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 100}, "multiple of input_size"),
        ({"tasks": ()}, "tasks"),
        ({"cameras": ("side", "side")}, "cameras"),
        ({"stage_mode": "both"}, "stage_mode"),
        ({"target_precision": 1.0}, "target_precision"),
        ({"encoder_widths": (8, 8)}, "encoder_widths"),
        ({"train_steps": 0}, "train_steps"),
        ({"proprio_mean": (0.0,) * 15}, "proprio_mean and proprio_scale"),
        ({"proprio_mean": (0.0,) * 3, "proprio_scale": (1.0,) * 3}, "proprio_dim"),
        ({"proprio_mean": (0.0,) * 15, "proprio_scale": (0.0,) * 15}, "positive"),
    ],
)
def test_bad_values_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**changes)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match="learning_rat"):
        ClassifierConfig.from_dict({"learning_rat": 0.1})
