"""Resuming a run folder: a kill at any point of an epoch's writes, and the run's own data."""

import csv
import json
import os

import pytest

from rced.config import DataConfig, ModelConfig, TrainConfig
from rced.errors import RcedError
from rced.train import DATA_CONFIG, Trainer, make_loss
from tests.conftest import speechlike

TINY = TrainConfig(model=ModelConfig(arch="rced", width_mult=0.25), batch_frames=64, steps_per_epoch=3, epochs=2)


@pytest.fixture(scope="module")
def utts():
    return [speechlike(16000, 1.5, seed=i) * (1 + i % 3) for i in range(12)]


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raising point runs."""


def _epochs_logged(run) -> list[str]:
    with open(run / "log.csv", newline="") as fh:
        return [r["epoch"] for r in csv.DictReader(fh)]


def _load(path):
    import keras

    return keras.saving.load_model(path, safe_mode=True, custom_objects={"compressed_mse": make_loss(TINY)})


# (replace target that dies, whether state.json already holds the epoch when it dies)
KILL_POINTS = [("log.csv", False), ("state.json", False), ("best.keras", True), ("ckpt.keras", True)]


@pytest.mark.parametrize(("target", "committed"), KILL_POINTS, ids=[t for t, _ in KILL_POINTS])
def test_kill_during_epoch_writes_leaves_a_consistent_run(tmp_path, utts, monkeypatch, target, committed):
    run = tmp_path / "run"
    Trainer(run, TINY, utts_audio=utts).run(max_epochs_this_run=1, verbose=0)
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "best_val": 1e30}))  # so epoch 2 writes best.keras
    real_replace = os.replace

    def dying_replace(src, dst):
        if os.path.basename(dst) == target:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(Killed):  # epoch 2 dies while writing `target`
        Trainer(run, utts_audio=utts).run(verbose=0)
    monkeypatch.setattr(os, "replace", real_replace)

    trainer = Trainer(run, utts_audio=utts)  # a new process: recovers the folder
    done = 2 if committed else 1
    assert trainer.state()["epochs_done"] == done and _epochs_logged(run) == [str(e) for e in range(done)]
    assert int(_load(run / "ckpt.keras").optimizer.iterations) == done * TINY.steps_per_epoch
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []

    state = trainer.run(verbose=0)
    assert state["epochs_done"] == 2 and _epochs_logged(run) == ["0", "1"]  # no epoch logged twice
    assert int(_load(run / "ckpt.keras").optimizer.iterations) == 2 * TINY.steps_per_epoch  # none trained twice
    trainer._load_data()  # the validation set (a finished run loads no data)
    best = _load(run / "best.keras")
    assert float(best.evaluate(*trainer.val, batch_size=trainer.val_batch, verbose=0)) == pytest.approx(
        state["best_val"], rel=1e-4
    )  # best_val describes best.keras
    assert json.loads((run / "state.json").read_text()) == state


def test_new_run_records_its_data_and_a_plain_resume_inherits_it(tmp_path):
    run = tmp_path / "run"
    assert Trainer(run, TINY, n_utts=500, data_seed=3).data_cfg == DataConfig(utterances=500, data_seed=3)
    assert json.loads((run / DATA_CONFIG).read_text()) == {"utterances": 500, "data_seed": 3, "pico_utterances": 0}
    resumed = Trainer(run)
    assert (resumed.n_utts, resumed.data_seed) == (500, 3)
    same = Trainer(run, n_utts=500, data_seed=3)  # the same values, given explicitly: fine
    assert (same.n_utts, same.data_seed) == (500, 3)


def test_new_run_without_data_arguments_uses_the_defaults(tmp_path):
    trainer = Trainer(tmp_path / "run", TINY)
    assert (trainer.n_utts, trainer.data_seed) == (DataConfig().utterances, DataConfig().data_seed)


@pytest.mark.parametrize(("kw", "name"), [({"n_utts": 4000}, "utterances"), ({"data_seed": 0}, "data_seed"),
                                          ({"n_utts": 500, "data_seed": 1}, "data_seed"),
                                          ({"pico_utterances": 100}, "pico_utterances")])  # fmt: skip
def test_resume_with_other_data_is_refused(tmp_path, kw, name):
    run = tmp_path / "run"
    Trainer(run, TINY, n_utts=500, data_seed=3)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(RcedError, match=rf"{DATA_CONFIG}: this run trains with {name}=") as exc:
        Trainer(run, **kw)
    assert "\n" not in str(exc.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_resumed_run_loads_the_speech_it_started_with(tmp_path, monkeypatch):
    import rced.train

    run = tmp_path / "run"
    Trainer(run, TINY, n_utts=500, data_seed=3, pico_utterances=40)
    asked = []

    def fake_train_utterances(n, seed, pico=0):
        asked.append((n, seed, pico))
        raise Killed

    monkeypatch.setattr(rced.train, "train_utterances", fake_train_utterances)
    with pytest.raises(Killed):
        Trainer(run).run(verbose=0)
    assert asked == [(500, 3, 40)]


def test_folder_from_before_data_config_records_this_calls_data(tmp_path):
    run = tmp_path / "run"
    Trainer(run, TINY)
    (run / DATA_CONFIG).unlink()  # as an older version left it
    assert Trainer(run, n_utts=300).n_utts == 300
    assert Trainer(run).n_utts == 300


def test_unreadable_data_config_is_a_one_line_error(tmp_path):
    run = tmp_path / "run"
    Trainer(run, TINY)
    (run / DATA_CONFIG).write_text('{"utterances": 10, "speakers": 3}\n')
    with pytest.raises(RcedError, match="unknown keys"):
        Trainer(run)


def test_export_removes_stale_tflite_models(tmp_path, utts):
    cfg = TrainConfig(model=ModelConfig(arch="rced", width_mult=0.25), batch_frames=64, steps_per_epoch=2, epochs=1)
    trainer = Trainer(tmp_path / "run", cfg, utts_audio=utts)
    trainer.run(verbose=0)
    out = tmp_path / "model"
    out.mkdir()
    (out / "model_int8.tflite").write_bytes(b"converted from other weights")
    (out / "model_float.tflite").write_bytes(b"converted from other weights")
    (out / "MODEL_CARD.md").write_text("kept\n")
    trainer.export(out)
    assert not (out / "model_int8.tflite").exists()
    assert (out / "model_float.tflite").read_bytes()[4:8] == b"TFL3"  # rewritten from the new weights
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "config.json", "model.keras",
                                                     "model_float.tflite", "norm.json"]  # fmt: skip
    assert (out / "norm.json").read_bytes() == (tmp_path / "run" / "norm.json").read_bytes()
