import json

import pytest

from rced.config import ModelConfig, TrainConfig, input_feature_exponent, load_json, save_json
from rced.errors import RcedError

BAD_FEATURES = ["powx", "foo", "pow", "pow0", "pow-1", "pownan", "powinf", "pow 0.3", "Log", ""]


@pytest.mark.parametrize("kind", BAD_FEATURES)
def test_bad_input_feature_is_refused_when_the_config_is_made(kind):
    with pytest.raises(RcedError, match=r"unknown input feature .*'log' or 'pow<exponent>'") as exc:
        ModelConfig(input_feature=kind)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("kind", "exponent"), [("log", None), ("pow0.3", 0.3), ("pow1", 1.0), ("pow.5", 0.5),
                                                ("pow2e-1", 0.2)])  # fmt: skip
def test_valid_input_features(kind, exponent):
    assert ModelConfig(input_feature=kind).input_feature == kind
    assert input_feature_exponent(kind) == exponent


def test_bad_input_feature_in_a_saved_config_names_the_file(tmp_path):
    path = tmp_path / "train_config.json"
    save_json(TrainConfig(), path)
    data = json.loads(path.read_text())
    data["model"]["input_feature"] = "powx"
    path.write_text(json.dumps(data))
    with pytest.raises(RcedError, match=rf"{path}: unknown input feature 'powx'"):
        load_json(TrainConfig, path)


def test_train_cli_refuses_a_bad_input_feature_before_writing_the_run_folder(tmp_path, capsys):
    from rced.cli import main

    run = tmp_path / "run"
    assert main(["train", str(run), "--input-feature", "powx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rced: error: unknown input feature 'powx'") and err.count("\n") == 1
    assert not run.exists()


@pytest.mark.parametrize("floor", [-0.1, 1.0, 1.5])
def test_bad_mask_floor_in_a_saved_config_names_the_file(tmp_path, floor):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"mask_floor": floor}))
    with pytest.raises(RcedError, match=r"config\.json: mask floor"):
        load_json(ModelConfig, p)


@pytest.mark.parametrize("field,value", [("mask_release", 1.0), ("mask_exponent", 0.0), ("mask_exponent", 3.0)])
def test_bad_gain_shaping_in_a_saved_config_names_the_file(tmp_path, field, value):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({field: value}))
    with pytest.raises(RcedError, match=r"config\.json: " + field.replace("_", " ")):
        load_json(ModelConfig, p)


def test_a_config_without_gain_shaping_fields_loads_neutral(tmp_path):
    """Model folders saved before the release and exponent existed load with both off."""
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"mask_floor": 0.2}))
    cfg = load_json(ModelConfig, p)
    assert (cfg.mask_release, cfg.mask_exponent, cfg.shapes_gain) == (0.0, 1.0, False)


def test_trackers_load_from_json_lists_as_tuples(tmp_path):
    cfg = ModelConfig(trackers=[[0.5, 0.5], [2, 0.05]])
    assert cfg.trackers == ((0.5, 0.5), (2.0, 0.05)) and cfg.input_channels == 10
    save_json(cfg, tmp_path / "c.json")
    assert load_json(ModelConfig, tmp_path / "c.json") == cfg
    assert ModelConfig().trackers is None and ModelConfig().input_channels == 8


@pytest.mark.parametrize("trackers", [[], [[0.5]], [[0.5, 0]], [[0.5, float("nan")]], [[True, 1.0]], "0.5,0.5"])
def test_trackers_refuse_what_is_not_pairs_of_positive_seconds(trackers):
    with pytest.raises(RcedError, match="trackers"):
        ModelConfig(trackers=trackers)
