"""Model files: a loaded model predicts the same and trains on as if it had never stopped;
every damaged, foreign or inconsistent file is refused, and a failed save loses nothing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import optimizers as O
from fastnn import schedules as S
from fastnn.model import Sequential

ROOT = Path(__file__).resolve().parent.parent


def blobs(n=96, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 2 * rng.standard_normal((n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centres[y] + 0.6 * rng.standard_normal((n, n_features)), y


# Each case: the network, its Sequential options and how fit runs.  Together they
# cover SGD with momentum, Adam and AdamW under a per-step StepDecay and a
# ReduceLROnPlateau that changes its rate, cooldown and counters every epoch,
# Dropout, BatchNorm, PReLU, gradient noise, clipping, penalties, both paths.
CASES = {
    "sgd_momentum": lambda: (
        [L.Dense(6, 8, init="he_normal"), L.ReLU(), L.Dense(8, 3), L.Softmax()],
        dict(optimizer=O.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
             l2=0.1),
        dict(compiled=True)),
    "adam_step_decay": lambda: (
        [L.Dense(6, 8), L.BatchNorm(momentum=0.2), L.Tanh(), L.Dropout(0.25), L.Dense(8, 5),
         L.LeakyReLU(0.05), L.Dense(5, 3), L.Softmax()],
        dict(optimizer=O.Adam(lr=S.StepDecay(0.01, factor=0.7, every=5, per="step"),
                              amsgrad=True),
             gradient_noise=0.01, clip_norm=5.0),
        dict(compiled=True)),
    "adamw_plateau_layer_path": lambda: (
        [L.Dropout(0.1), L.Dense(6, 8, bias_init="normal"), L.PReLU(0.1), L.BatchNorm(),
         L.Dropout(0.3), L.Dense(8, 3), L.Softmax()],
        dict(optimizer=O.AdamW(lr=S.ReduceLROnPlateau(0.01, monitor="loss", patience=0,
                                                      threshold=0.5, cooldown=1)),
             gradient_noise=(0.02, 0.3), l1=0.01, clip_value=2.0),
        dict(compiled=False)),
}
FIT = dict(batch_size=16)


def make(case, dtype, seed=7):
    layers, options, _ = CASES[case]()
    return Sequential(layers, dtype=dtype, seed=seed, **options)


def fit_options(case):
    return {**FIT, **CASES[case]()[2]}


CONTINUE = """
import sys
import numpy as np
import fastnn

source, data, target, compiled = sys.argv[1:]
model = fastnn.load_model(source)
with np.load(data) as arrays:
    model.fit(arrays["X"], arrays["y"], epochs=2, batch_size=16, compiled=compiled == "1")
model.save(target)
"""


def training_state(model):
    """Everything a continued fit depends on, for comparing two models exactly."""
    return {"params": model.params_, "buffers": model.buffers_,
            "optimizer_state": model.optimizer.state_, "t": model.optimizer.t_,
            "epoch": model.optimizer.epoch_, "schedule": model.optimizer.lr.get_state(),
            "rng": model.rng.bit_generator.state}


def assert_same_state(actual, expected):
    actual, expected = training_state(actual), training_state(expected)
    for key in ("params", "buffers", "optimizer_state"):
        assert actual[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    for key in ("t", "epoch", "schedule", "rng"):
        assert actual[key] == expected[key], key


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_resumed_in_a_new_process_continues_exactly(tmp_path, case, dtype):
    X, y = blobs()
    straight = make(case, dtype)
    straight.fit(X, y, epochs=4, **fit_options(case))

    first = make(case, dtype)
    first.fit(X, y, epochs=2, **fit_options(case))
    first.save(tmp_path / "half.npz")
    np.savez(tmp_path / "data.npz", X=X, y=y)
    subprocess.run([sys.executable, "-c", CONTINUE, str(tmp_path / "half.npz"),
                    str(tmp_path / "data.npz"), str(tmp_path / "whole.npz"),
                    "1" if fit_options(case)["compiled"] else "0"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    resumed = fastnn.load_model(tmp_path / "whole.npz")

    assert_same_state(resumed, straight)
    # each file keeps the history of the fit that led to it: together, the straight run's
    first_half = fastnn.load_model(tmp_path / "half.npz").history_.history
    assert {key: first_half[key] + resumed.history_.history[key] for key in first_half} == \
        straight.history_.history
    np.testing.assert_array_equal(resumed.predict_proba(X), straight.predict_proba(X))


def test_a_loaded_model_predicts_bit_identically_and_rebuilds_every_layer(tmp_path, dtype):
    X, y = blobs()
    layers = [L.Dense(6, 7, init="glorot_normal", bias_init="normal"), L.SiLU(),
              L.Dense(7, 6, init="scaled_normal"), L.PReLU(init_slope=0.3), L.Dropout(0.2),
              L.Dense(6, 5, init="he_uniform"), L.BatchNorm(momentum=0.4, eps=1e-3),
              L.LeakyReLU(alpha=0.2), L.Dense(5, 4), L.Tanh(), L.Dense(4, 4), L.Identity(),
              L.Sigmoid(), L.Dense(4, 3, init="normal"), L.Softmax()]
    model = Sequential(layers, optimizer=O.RMSProp(lr=1e-3, centered=True, momentum=0.5),
                       dtype=dtype, seed=3)
    model.fit(X, y, epochs=2, batch_size=12)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load_model(tmp_path / "m.npz")
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    assert [a.init for a in loaded.layers[::2] if isinstance(a, L.Dense)] == \
        [b.init for b in model.layers[::2] if isinstance(b, L.Dense)]
    assert loaded.dtype == model.dtype and loaded.regression == model.regression
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, y) == model.evaluate(X, y)


OPTIMIZER_ARGUMENTS = {
    "sgd": dict(momentum=0.5, dampening=0.1, weight_decay=0.01, decay_all=True),
    "adagrad": dict(lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-9),
    "rmsprop": dict(alpha=0.9, eps=1e-7, momentum=0.3, centered=True),
    "adadelta": dict(rho=0.8, eps=1e-5, weight_decay=0.02),
    "adam": dict(betas=(0.8, 0.99), eps=1e-7, amsgrad=True, decay_all=True),
    "adamw": dict(betas=(0.85, 0.95), weight_decay=0.05),
    "lion": dict(betas=(0.95, 0.98), weight_decay=0.1),
}
SCHEDULE_OF = {
    "sgd": S.ExponentialDecay(0.05, k=0.1, per="step"),
    "adagrad": S.InverseTimeDecay(0.05, k=0.2),
    "rmsprop": S.Constant(0.01),
    "adadelta": S.StepDecay(1.0, factor=0.9, every=2),
    "adam": S.ReduceLROnPlateau(0.01, monitor="accuracy", factor=0.5, patience=1,
                                threshold_mode="abs", min_lr=1e-4),
    "adamw": 0.002,
    "lion": S.ExponentialDecay(1e-4, k=0.05),
}


def test_every_optimizer_kind_is_covered():
    assert set(OPTIMIZER_ARGUMENTS) == set(O.OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_ARGUMENTS))
def test_every_optimizer_and_schedule_comes_back_with_its_state(tmp_path, name):
    X, y = blobs()
    optimizer = O.OPTIMIZERS[name](lr=SCHEDULE_OF[name], **OPTIMIZER_ARGUMENTS[name])
    model = Sequential([L.Dense(6, 5), L.ReLU(), L.Dense(5, 3), L.Softmax()],
                       optimizer=optimizer, seed=0)
    model.fit(X, y, epochs=3, batch_size=20)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load_model(tmp_path / "m.npz")
    assert type(loaded.optimizer) is type(optimizer)
    assert repr(loaded.optimizer) == repr(optimizer)
    assert loaded.optimizer.decay_all == optimizer.decay_all
    assert loaded.optimizer.hyper_.tobytes() == optimizer.hyper_.tobytes()
    assert_same_state(loaded, model)
    model.fit(X, y, epochs=2, batch_size=20)
    loaded.fit(X, y, epochs=2, batch_size=20)
    assert_same_state(loaded, model)


def test_the_model_options_and_the_label_flag_come_back(tmp_path):
    X, y = blobs()
    model = Sequential([L.Dense(6, 4), L.Tanh(), L.Dense(4, 3), L.Identity()], loss="quadratic",
                       seed=11, l2=0.3, l1=0.02, clip_norm=3.0, clip_value=0.5,
                       gradient_noise=(0.1, 0.7))
    model.save(tmp_path / "untrained.npz")
    untrained = fastnn.load_model(tmp_path / "untrained.npz")
    assert untrained.regression and not hasattr(untrained, "history_")
    model.fit(X, y, epochs=1)  # labels with a squared error: a classifier (Nielsen's)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load_model(tmp_path / "m.npz")
    assert (loaded.seed, loaded.l2, loaded.l1, loaded.clip_norm, loaded.clip_value,
            loaded.gradient_noise) == (11, 0.3, 0.02, 3.0, 0.5, (0.1, 0.7))
    assert type(loaded.loss) is type(model.loss) and not loaded.regression
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_load_weights_reads_the_weights_of_a_model_file(tmp_path):
    X, y = blobs()
    model = make("adam_step_decay", "float64")
    model.fit(X, y, epochs=2, **FIT)
    model.save(tmp_path / "m.npz")
    same_build = make("adam_step_decay", "float64", seed=99)
    same_build.load_weights(tmp_path / "m.npz")
    np.testing.assert_array_equal(same_build.params_, model.params_)
    np.testing.assert_array_equal(same_build.buffers_, model.buffers_)
    with pytest.raises(ValueError, match="belongs to another network"):
        make("sgd_momentum", "float64").load_weights(tmp_path / "m.npz")


# -- refusals --------------------------------------------------------------------

def saved(tmp_path, dtype="float32"):
    X, y = blobs()
    model = make("adam_step_decay", dtype)
    model.fit(X, y, epochs=1, **FIT)
    path = tmp_path / "m.npz"
    model.save(path)
    return path


def rewrite(path, header=None, **arrays):
    """The model file at ``path`` with its header changed by ``header`` and arrays replaced."""
    with np.load(path) as data:
        contents = {name: data[name] for name in data.files}
    parsed = json.loads(str(contents["header"]))
    if header is not None:
        header(parsed)
    contents["header"] = np.array(json.dumps(parsed))
    contents.update(arrays)
    for name in [name for name, value in contents.items() if value is None]:
        del contents[name]
    target = path.with_name("changed.npz")
    np.savez(target, **contents)
    return target


def set_in(path_in_header, value):
    def change(header):
        record = header
        for key in path_in_header[:-1]:
            record = record[key]
        record[path_in_header[-1]] = value
    return change


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04truncated"])
def test_a_corrupt_file_is_refused(tmp_path, content):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(ValueError, match="bad.npz is not a readable fastnn model file"):
        fastnn.load_model(tmp_path / "bad.npz")


def test_a_truncated_file_is_refused(tmp_path):
    data = saved(tmp_path).read_bytes()
    for cut in (len(data) // 3, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.npz"):
            fastnn.load_model(tmp_path / "cut.npz")


def test_a_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="other.npz is not a fastnn model file"):
        fastnn.load_model(tmp_path / "other.npz")
    np.savez(tmp_path / "other.npz", header=np.array('{"format": "someone-else"}'))
    with pytest.raises(ValueError, match="not a fastnn model file"):
        fastnn.load_model(tmp_path / "other.npz")
    np.savez(tmp_path / "other.npz", header=np.array("{not json"))
    with pytest.raises(ValueError, match="damaged header"):
        fastnn.load_model(tmp_path / "other.npz")


def test_a_pickled_array_is_not_unpickled(tmp_path):
    np.savez(tmp_path / "pickled.npz", header=np.array([{"format": "fastnn-model"}],
                                                       dtype=object))
    with pytest.raises(ValueError, match="pickled.npz is not a readable"):
        fastnn.load_model(tmp_path / "pickled.npz")


def test_a_file_of_a_newer_format_is_refused(tmp_path):
    changed = rewrite(saved(tmp_path), set_in(["format_version"], 2))
    with pytest.raises(ValueError, match="format version 2.*newer fastnn.*upgrade"):
        fastnn.load_model(changed)


def test_a_weights_file_is_refused_with_what_to_do(tmp_path):
    model = make("sgd_momentum", "float32")
    model.save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="carries only weights.*load_weights"):
        fastnn.load_model(tmp_path / "w.npz")
    np.savez(tmp_path / "old.npz", params=model.params_)  # before weight files had headers
    with pytest.raises(ValueError, match="carries only weights.*load_weights"):
        fastnn.load_model(tmp_path / "old.npz")


@pytest.mark.parametrize("change, message", [
    (set_in(["layers", 0, "kind"], "Convolution"), "layer 0 is of the unknown kind 'Convolution'"),
    (set_in(["optimizer", "kind"], "adamax"), "optimizer is of the unknown kind 'adamax'"),
    (set_in(["optimizer", "config", "lr", "kind"], "Cosine"),
     "schedule is of the unknown kind 'Cosine'"),
    (set_in(["layers", 3, "config", "rate"], 1.5), r"layer 3 \(Dropout\) cannot be built.*rate"),
    (set_in(["layers", 0, "config", "size"], 3), r"layer 0 \(Dense\) cannot be built.*size"),
    (set_in(["optimizer", "config", "betas"], [0.9]), r"optimizer \(adam\) cannot be built"),
    (set_in(["model", "loss"], "hinge"), "unknown loss"),
    (set_in(["dtype"], "float16"), "dtype"),
    (set_in(["optimizer", "t"], -1), "-1 steps"),
    (set_in(["optimizer", "t"], "3"), "optimizer's t"),
    (set_in(["optimizer", "config", "lr", "state"], {"step": 3}), "schedule's state"),
    (set_in(["rng"], {"bit_generator": "PCG64"}), "random generator"),
    (set_in(["layers", 4, "params", "W"], [8, 4]), "disagrees with the network"),
    (set_in(["trained_on_labels"], "yes"), "trained_on_labels"),
    (lambda header: header.pop("optimizer"), "lacks optimizer"),
])
def test_a_header_that_cannot_be_rebuilt_is_refused(tmp_path, change, message):
    changed = rewrite(saved(tmp_path), change)
    with pytest.raises(ValueError, match="changed.npz: .*" + message):
        fastnn.load_model(changed)


def test_a_plateau_state_with_a_nan_best_is_refused(tmp_path):
    model = make("adamw_plateau_layer_path", "float64")
    model.save(tmp_path / "m.npz")
    changed = rewrite(tmp_path / "m.npz",
                      set_in(["optimizer", "config", "lr", "state", "best_"], float("nan")))
    with pytest.raises(ValueError, match="schedule's state is damaged.*best_"):
        fastnn.load_model(changed)


@pytest.mark.parametrize("arrays, message", [
    (lambda m: {"params": m.params_[:-1]}, r"params have shape \(\d+,\), the network"),
    (lambda m: {"buffers": np.zeros(3, np.float32)}, r"buffers have shape \(3,\)"),
    (lambda m: {"optimizer_state": m.optimizer.state_[:1]}, "optimizer_state have shape"),
    (lambda m: {"optimizer_state": None}, "no optimizer_state array"),
    (lambda m: {"params": np.where(np.arange(m.n_params) == 4, np.nan, m.params_)},
     "params contains NaN"),
    (lambda m: {"optimizer_state": np.full_like(m.optimizer.state_, np.inf)},
     "optimizer_state contains NaN or infinite"),
    (lambda m: {"buffers": np.full_like(m.buffers_, 1e300, dtype=np.float64)},
     "beyond float32's range"),
    (lambda m: {"params": m.params_.astype(np.int64)}, "not floating-point"),
])
def test_arrays_that_disagree_with_the_architecture_are_refused(tmp_path, arrays, message):
    path = saved(tmp_path)
    model = fastnn.load_model(path)
    changed = rewrite(path, **arrays(model))
    with pytest.raises(ValueError, match=message):
        fastnn.load_model(changed)


def test_a_model_that_a_file_cannot_describe_is_refused_before_writing(tmp_path):
    def my_init(rng, shape, fan_in, fan_out):
        return np.full(shape, 0.1)

    class Doubled(L.Tanh):
        pass

    custom_init = Sequential([L.Dense(6, 3, init=my_init), L.Softmax()])
    with pytest.raises(ValueError, match="init is the custom function"):
        custom_init.save(tmp_path / "a.npz")
    custom_layer = Sequential([L.Dense(6, 3), Doubled(), L.Dense(3, 3), L.Softmax()])
    with pytest.raises(ValueError, match="layer 1, Doubled is not a registered class"):
        custom_layer.save(tmp_path / "b.npz")
    diverged = make("sgd_momentum", "float64")
    diverged.optimizer.state_[0, 0] = np.nan
    with pytest.raises(ValueError, match="optimizer_state hold NaN"):
        diverged.save(tmp_path / "c.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = saved(tmp_path)
    before = path.read_bytes()
    savez = np.savez

    def savez_failing_midway(file, **arrays):
        savez(file, **arrays)  # all the bytes written, but not yet renamed into place
        file.seek(len(before) // 2)
        file.truncate()
        raise OSError(28, "No space left on device")

    model = make("sgd_momentum", "float64")
    monkeypatch.setattr(np, "savez", savez_failing_midway)
    with pytest.raises(OSError, match="No space"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left
    monkeypatch.undo()
    assert type(fastnn.load_model(path).layers[1]) is L.BatchNorm


def test_frozen_layers_stay_frozen_and_training_continues_exactly(tmp_path, dtype):
    # Frozen layers change the flat layout; the file must rebuild that layout.
    X, y = blobs()

    def frozen():
        model = Sequential([L.Dense(6, 8), L.ReLU(), L.BatchNorm(), L.Dense(8, 3), L.Softmax()],
                           optimizer=O.Adam(lr=0.01), dtype=dtype, seed=3)
        model.fit(X, y, epochs=1, batch_size=16)
        model.freeze(0)
        return model

    straight, first = frozen(), frozen()
    straight.fit(X, y, epochs=2, batch_size=16)
    first.fit(X, y, epochs=1, batch_size=16)
    first.save(tmp_path / "frozen.npz")
    loaded = fastnn.load_model(tmp_path / "frozen.npz")
    assert [layer.trainable for layer in loaded.layers] == \
        [layer.trainable for layer in first.layers]
    np.testing.assert_array_equal(loaded.layers[0].params["W"], first.layers[0].params["W"])
    loaded.fit(X, y, epochs=1, batch_size=16)
    assert_same_state(loaded, straight)
    np.testing.assert_array_equal(loaded.layers[0].params["W"], straight.layers[0].params["W"])
