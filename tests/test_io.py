"""Files and PyTorch interop: a network saved and loaded bit for bit in every backend, read by
PyTorch directly; each kind of damaged file refused with its own error; atomic writes;
checkpoints that resume exactly, in this process and across two; to_torch / from_torch."""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import fastgrad
from fastgrad import LayerWise, Parallel, Sequential
from fastgrad.io import safetensors_file
from fastgrad.optim import SGD, Adam, RMSprop
from fastgrad.training import Checkpoint
from helpers import BACKENDS, make_problem


def assert_same_state(a, b):
    for name, value in a.state_dict().items():
        assert np.array_equal(b.state_dict()[name], value), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batchnorm, dtype", [(False, "float64"), (True, "float64"),
                                               (True, "float32")])
def test_a_saved_network_loads_bit_identical(tmp_path, backend, batchnorm, dtype):
    net, X, y = make_problem((6, 5), "tanh", batchnorm, backend=backend, dtype=dtype,
                             n_samples=24)
    fastgrad.train(net, X, y, Parallel(Adam(0.01), batch_size=8), epochs=2)
    net.save(tmp_path / "net.safetensors")
    loaded = fastgrad.load(tmp_path / "net.safetensors")
    assert loaded.config() == net.config()
    assert_same_state(net, loaded)
    if batchnorm:
        assert int(loaded.state_dict()["num_batches_tracked"]) == 6  # 2 epochs of 3 batches
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_pytorch_reads_a_network_file_into_the_module_to_torch_builds(tmp_path):
    """A script that has never heard of fastgrad: safetensors.torch.load_file, then
    load_state_dict(strict=True); a square weight keeps its orientation (W is stored as torch's
    (out, in) weight, transposed and made contiguous before it is written)."""
    net, X, y = make_problem((5, 5), "tanh", True, n_samples=20, n_features=5)
    fastgrad.train(net, X, y, epochs=2)
    net.save(tmp_path / "net.safetensors")
    module = fastgrad.MLP(net.sizes, "tanh", batchnorm=True).to_torch()
    module.load_state_dict(safetensors.torch.load_file(tmp_path / "net.safetensors"),
                           strict=True)
    assert not np.array_equal(net.layers[1].W, net.layers[1].W.T)  # square, not symmetric
    np.testing.assert_array_equal(module[3].weight.detach().numpy(), net.layers[1].W.T)
    module.eval()
    logits = module(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(logits, net.forward(X), rtol=1e-12, atol=1e-12)
    metadata = safetensors_file.read(tmp_path / "net.safetensors")[1]
    assert set(metadata) == {"format", "format_version", "fastgrad_version", "kind", "network",
                             "sha256"}
    assert json.loads(metadata["network"]) == net.config()


@pytest.fixture()
def saved(tmp_path):
    net, X, y = make_problem((6,), "tanh", True, n_samples=20)
    fastgrad.train(net, X, y, epochs=1)
    path = tmp_path / "net.safetensors"
    net.save(path)
    return net, path


def rewrite(path, change_header=None, change_data=None, cut=None):
    """The file at path with its header (a dict) or data (a bytearray) changed, or cut."""
    content = path.read_bytes()
    (length,) = struct.unpack("<Q", content[:8])
    header, data = json.loads(content[8:8 + length]), bytearray(content[8 + length:])
    if change_header:
        change_header(header)
    if change_data:
        change_data(data)
    text = json.dumps(header).encode()
    content = struct.pack("<Q", len(text)) + text + bytes(data)
    path.write_bytes(content[:cut] if cut is not None else content)


def swap_names(header):
    header["0.bias"], header["1.bias"] = header["1.bias"], header["0.bias"]


def lie_about_shape(header):
    header["0.weight"]["shape"] = [1000, 1000]


def claim_a_huge_tensor(header):
    """The last tensor claims 8 TB: a clear error, before anything is allocated."""
    n, begin = 10 ** 12, header["3.bias"]["data_offsets"][0]
    header["3.bias"] = {"dtype": "F64", "shape": [n], "data_offsets": [begin, begin + 8 * n]}


def newer_version(header):
    header["__metadata__"]["format_version"] = "99"


def flip_a_byte(data):
    data[len(data) // 2] ^= 0x10


DAMAGE = [
    ("truncated", dict(cut=-9), "is truncated"),
    ("flipped data byte", dict(change_data=flip_a_byte), "is corrupted"),
    ("swapped names", dict(change_header=swap_names), "is corrupted"),
    ("header lies about a shape", dict(change_header=lie_about_shape), "header lies"),
    ("huge tensor claimed", dict(change_header=claim_a_huge_tensor), "is truncated"),
    ("newer format version", dict(change_header=newer_version), "newer than this fastgrad"),
]


@pytest.mark.parametrize("what, damage, message", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_file_says_what_is_wrong(saved, what, damage, message):
    _, path = saved
    rewrite(path, **damage)
    with pytest.raises(ValueError, match=message):
        fastgrad.load(path)


def test_an_empty_file_says_so(tmp_path):
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        fastgrad.load(empty)


def test_another_programs_safetensors_file_says_so(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"weight": np.ones((3, 2))}, foreign)
    with pytest.raises(ValueError, match="from another program"):
        fastgrad.load(foreign)


@pytest.mark.parametrize("content", [
    b"not a safetensors file at all, just text\n", b"\x00" * 3, struct.pack("<Q", 5) + b"[1,2]",
    struct.pack("<Q", 200006) + b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"],
    ids=["text", "three bytes", "a JSON array", "JSON nested too deep"])
def test_a_file_that_is_not_safetensors_says_so(tmp_path, content):
    other = tmp_path / "other.bin"
    other.write_bytes(content)
    with pytest.raises(ValueError, match="not a safetensors file"):
        fastgrad.load(other)


def resealed(path, change):
    """The file with its header changed by ``change(header, metadata)`` and its checksum made
    to fit again, as a careless (or hostile) writer would: only the other checks can catch
    it. Returns the path."""
    content = path.read_bytes()
    (length,) = struct.unpack("<Q", content[:8])
    header, data = json.loads(content[8:8 + length]), content[8 + length:]
    metadata = header.pop("__metadata__")
    del metadata["sha256"]
    change(header, metadata)
    digest = safetensors_file._header_digest(header, metadata)
    digest.update(data)
    header["__metadata__"] = {**metadata, "sha256": digest.hexdigest()}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


HOSTILE = [
    ("a metadata value not a string", lambda h, m: m.update(format_version=1),
     "metadata values must be strings"),
    ("a float in a shape", lambda h, m: h["0.bias"].update(shape=[6.0]), "non-negative integers"),
    ("a string offset", lambda h, m: h["0.bias"].update(data_offsets=["240", 288]),
     "non-negative integers"),
    ("a negative dimension", lambda h, m: h["0.bias"].update(shape=[-6]),
     "non-negative integers"),
    ("a version that only looks like digits", lambda h, m: m.update(format_version="\u00b2"),
     "is not a number"),
    ("an entry that is not an object", lambda h, m: h.update({"0.bias": [1, 2]}), "malformed"),
    ("NaN weights", None, "NaN or inf"),
]


@pytest.mark.parametrize("what, change, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_resealed_hostile_header_is_a_value_error_that_names_it(saved, what, change,
                                                                  message):
    net, path = saved
    if change is None:  # a writer that saved NaN: refused on load, with or without BatchNorm
        tensors, metadata = safetensors_file.read(path)
        tensors["0.weight"][0, 0] = np.nan
        safetensors_file.write(path, tensors, metadata)
    else:
        resealed(path, change)
    with pytest.raises(ValueError, match=message):
        fastgrad.load(path)


def test_a_file_of_another_architecture_is_refused_before_anything_is_built(saved, tmp_path):
    net, path = saved
    other = fastgrad.MLP([5, 3, 3])
    tensors, metadata = safetensors_file.read(path)
    metadata["network"] = json.dumps(other.config())
    del metadata["sha256"]
    safetensors_file.write(tmp_path / "lie.safetensors", tensors, metadata)
    with pytest.raises(ValueError, match="does not hold this network's tensors"):
        fastgrad.load(tmp_path / "lie.safetensors")


def test_a_failed_save_leaves_the_earlier_file_whole(saved, monkeypatch):
    net, path = saved
    before = path.read_bytes()
    trained = net.copy()
    trained.params = trained.params + 1

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        trained.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    assert_same_state(fastgrad.load(path), net)


def test_a_saved_file_has_the_mode_the_umask_gives(tmp_path):
    previous = os.umask(0o027)
    try:
        fastgrad.MLP([3, 2, 2]).save(tmp_path / "net.safetensors")
    finally:
        os.umask(previous)
    assert (tmp_path / "net.safetensors").stat().st_mode & 0o777 == 0o640


APPROACHES = [
    pytest.param(lambda: Parallel(SGD(0.1, momentum=0.9), batch_size=8), id="parallel-sgd"),
    pytest.param(lambda: Parallel(Adam(0.01), batch_size=8), id="parallel-adam"),
    pytest.param(lambda: Parallel(RMSprop(0.01, momentum=0.5), batch_size=8),
                 id="parallel-rmsprop"),
    pytest.param(lambda: LayerWise(SGD(0.1), order="permutation", batch_size=10),
                 id="layerwise"),
    pytest.param(lambda: Sequential(order="random", lr=0.2, batch_size=12), id="sequential"),
]


def without_seconds(history):
    return {k: v for k, v in history.__dict__.items() if "seconds" not in k}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", APPROACHES)
def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(tmp_path, make,
                                                                        backend):
    net, X, y = make_problem((6,), "tanh", True, backend=backend, n_samples=24)
    validation = (X[:10], y[:10])
    whole = net.copy()
    approach = make()
    history = fastgrad.train(whole, X, y, approach, epochs=4, seed=5, validation=validation)
    half = net.copy()
    fastgrad.train(half, X, y, make(), epochs=2, seed=5, validation=validation,
                   callbacks=[Checkpoint(tmp_path / "run.safetensors", every=2)])
    resumed, continued = net.copy(), make()
    resumed.params = resumed.params * 0  # the checkpoint's weights replace these
    history_resumed = fastgrad.train(resumed, X, y, continued, epochs=4, validation=validation,
                                     resume=tmp_path / "run.safetensors")
    assert_same_state(whole, resumed)
    for name, value in approach.state_dict().items():
        assert np.array_equal(continued.state_dict()[name], value), name
    assert without_seconds(history_resumed) == without_seconds(history)


def test_a_checkpoint_of_another_network_or_approach_is_refused_before_any_step(tmp_path):
    net, X, y = make_problem((6,), "tanh", backend="cython", n_samples=24)
    path = tmp_path / "run.safetensors"
    fastgrad.train(net.copy(), X, y, Parallel(Adam(0.01)), epochs=1, checkpoint=path)
    for other_net, approach, message in (
            (fastgrad.MLP([5, 7, 3]), Parallel(Adam(0.01)), "another network"),
            (net.copy(), Parallel(Adam(0.02)), "another approach"),
            (net.copy(), Parallel(Adam(0.01)), "epochs .1. counts")):
        before = other_net.params.copy()
        with pytest.raises(ValueError, match=message):
            fastgrad.train(other_net, X[:, :other_net.sizes[0]], y, approach,
                           epochs=2 if message != "epochs .1. counts" else 1, resume=path)
        np.testing.assert_array_equal(other_net.params, before)
    net.save(tmp_path / "net.safetensors")
    with pytest.raises(ValueError, match="not a checkpoint"):
        fastgrad.train(net, X, y, Parallel(Adam(0.01)), epochs=2,
                       resume=tmp_path / "net.safetensors")


RESUME = """
import sys
import numpy as np
import fastgrad
from fastgrad.optim import Adam
sys.path.insert(0, {tests!r})
from helpers import make_problem

net, X, y = make_problem((6,), "tanh", True, backend="cython", n_samples=24)
approach = fastgrad.Parallel(Adam(0.01), batch_size=8)
if sys.argv[1] == "first":
    fastgrad.train(net, X, y, approach, epochs=3, seed=9, checkpoint=sys.argv[2])
else:
    fastgrad.train(net, X, y, approach, epochs=6, resume=sys.argv[2])
    net.save(sys.argv[3])
"""


def test_an_interrupted_run_resumed_in_a_fresh_process_equals_the_uninterrupted_run(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME.format(tests=os.path.dirname(__file__)))
    checkpoint, final = tmp_path / "run.safetensors", tmp_path / "final.safetensors"
    for argv in (["first", str(checkpoint)], ["second", str(checkpoint), str(final)]):
        done = subprocess.run([sys.executable, str(script), *argv], capture_output=True,
                              text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr
    net, X, y = make_problem((6,), "tanh", True, backend="cython", n_samples=24)
    fastgrad.train(net, X, y, Parallel(Adam(0.01), batch_size=8), epochs=6, seed=9)
    assert_same_state(net, fastgrad.load(final))


@pytest.mark.parametrize("batchnorm, activation, dtype", [
    (False, "tanh", "float64"), (True, "relu", "float64"), (True, "sigmoid", "float32"),
    (False, "identity", "float32")])
def test_to_torch_and_back_is_bit_identical_and_computes_the_same(batchnorm, activation, dtype):
    net, X, y = make_problem((6, 5), activation, batchnorm, dtype=dtype, n_samples=24)
    fastgrad.train(net, X, y, Parallel(SGD(0.1), batch_size=8), epochs=2)
    module = net.to_torch()
    back = fastgrad.from_torch(module, backend=net.backend)
    assert back.config() == {**net.config(), "seed": 0}
    assert_same_state(net, back)
    if dtype == "float64":
        module.eval()
        np.testing.assert_allclose(module(torch.from_numpy(X)).detach().numpy(),
                                   net.forward(X), rtol=1e-12, atol=1e-12)
        module.train()
        trained_mode = module(torch.from_numpy(X)).detach().numpy()
        np.testing.assert_allclose(trained_mode, net.copy().forward(X, training=True),
                                   rtol=1e-12, atol=1e-12)


def test_from_torch_reads_a_module_trained_in_torch():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6),
                                 torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
    module(torch.randn(10, 4, dtype=torch.float64))  # running statistics move, once
    net = fastgrad.from_torch(module, backend="numba")
    assert net.sizes == (4, 6, 3) and net.activation == "relu" and net.batchnorm
    assert int(net.state_dict()["num_batches_tracked"]) == 1
    np.testing.assert_array_equal(net.layers[0].running_mean, module[1].running_mean.numpy())


def bad_modules():
    nn = torch.nn
    return [
        (nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Conv1d(1, 1, 1)), "layer 2 .Conv1d."),
        (nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, affine=False), nn.Tanh(),
                       nn.Linear(5, 2)), "layer 1 .BatchNorm1d.: a BatchNorm1d without"),
        (nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, eps=1e-3), nn.Tanh(),
                       nn.Linear(5, 2)), "layer 1 .BatchNorm1d.: eps 0.001"),
        (nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, momentum=0.2), nn.Tanh(),
                       nn.Linear(5, 2)), "layer 1 .BatchNorm1d.: eps 1e-05 and momentum 0.2"),
        (nn.Sequential(nn.Linear(4, 5, bias=False), nn.Tanh(), nn.Linear(5, 2)),
         "layer 0 .Linear.: a Linear without bias"),
        (nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 2)),
         "layer 3 .ReLU.: ReLU after layers activated by Tanh"),
        (nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2).double()),
         "layer 2 .Linear.: dtype torch.float64, after layers of torch.float32"),
        (nn.Sequential(nn.Linear(4, 5), nn.Tanh()), "layer 1 .Tanh.: the module ends with"),
        (nn.Sequential(nn.Linear(4, 5), nn.GELU(), nn.Linear(5, 2)), "layer 1 .GELU.: not one"),
        (nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(6, 2)), "layer 2 .Linear.: 6 inputs"),
    ]


@pytest.mark.parametrize("index", range(10))
def test_from_torch_names_the_first_layer_it_cannot_take(index):
    module, message = bad_modules()[index]
    with pytest.raises(ValueError, match=message):
        fastgrad.from_torch(module)
    with pytest.raises(TypeError, match="torch.nn.Sequential"):
        fastgrad.from_torch(torch.nn.Linear(3, 2))


def test_a_checkpoint_is_written_every_k_epochs_and_at_the_end_of_a_run_that_did_not_fail(
        tmp_path):
    class Spy(Checkpoint):
        def write(self, run):
            super().write(run)
            written.append(run.epoch)

    net, X, y = make_problem((4,), backend="cython", n_samples=20)
    path = tmp_path / "run.safetensors"
    written = []
    fastgrad.train(net, X, y, epochs=5, callbacks=[Spy(path, every=2)])
    assert written == [2, 4, 5] and fastgrad.load_checkpoint(path).epoch == 5
    written = []
    approach = Parallel(SGD(10.0, weight_decay=1e100))  # overflows within a few epochs
    with pytest.raises(fastgrad.NonFiniteStep) as failure:
        fastgrad.train(net, X, y, approach, epochs=5, callbacks=[Spy(path, every=1)])
    assert written == list(range(1, failure.value.epoch)) and written
    assert fastgrad.load_checkpoint(path).epoch == failure.value.epoch - 1
    with pytest.raises(ValueError, match="every must be at least 1"):
        Checkpoint(path, every=0)


def test_a_changed_option_in_the_metadata_fails_the_checksum(saved):
    """The checksum covers the metadata too: a network described with another activation (a
    valid JSON change, which the tensors' shapes cannot reveal) is refused."""
    _, path = saved

    def relu(header):
        header["__metadata__"]["network"] = header["__metadata__"]["network"].replace(
            '"tanh"', '"relu"')

    rewrite(path, change_header=relu)
    with pytest.raises(ValueError, match="is corrupted"):
        fastgrad.load(path)


@pytest.mark.parametrize("key, value, message", [
    ("history", "{\"loss\": [1.0]}", "history is not valid"),
    ("history", "[1, 2]", "history is not valid"),
    ("rng", "{\"bit_generator\": \"os.system\"}", "rng is not valid"),
    ("rng", "not json", "rng is not valid"),
    ("approach", "{\"type\": \"Parallel\", \"batch_size\": -3}", "approach is not valid"),
    ("epoch", "-1", "epoch is not valid"),
    ("network", "{\"sizes\": [3]}", "network is not valid"),
])
def test_a_checkpoint_with_a_bad_part_names_it(tmp_path, key, value, message):
    """Parts that only a writer could get wrong (the checksum is recomputed, as a hostile or
    buggy writer would): each a ValueError naming the part, never another exception."""
    net, X, y = make_problem((4,), backend="cython", n_samples=20)
    path = tmp_path / "run.safetensors"
    fastgrad.train(net, X, y, Parallel(Adam(0.01)), epochs=1, checkpoint=path)
    tensors, metadata = safetensors_file.read(path)
    metadata[key] = value
    safetensors_file.write(path, tensors, metadata)
    with pytest.raises(ValueError, match=message):
        fastgrad.load_checkpoint(path)


def test_an_interrupted_run_keeps_its_last_good_checkpoint(tmp_path):
    """A run ended by an exception mid-way (here a KeyboardInterrupt from a callback after the
    fourth epoch's steps) leaves the checkpoint of epoch 2, not a mixture written at its end;
    one Checkpoint object serves run after run."""
    net, X, y = make_problem((6,), "tanh", True, backend="cython", n_samples=24)
    path = tmp_path / "run.safetensors"
    checkpoint = Checkpoint(path, every=2)

    class Interrupt(fastgrad.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fastgrad.train(net.copy(), X, y, Parallel(Adam(0.01), batch_size=8), epochs=6,
                       callbacks=[checkpoint, Interrupt()])
    saved = fastgrad.load_checkpoint(path)
    assert saved.epoch == 2 == saved.history.epochs
    assert int(saved.net.state_dict()["num_batches_tracked"]) == 6
    for _ in range(2):  # the same callback, two runs that end at epoch 3
        fastgrad.train(net.copy(), X, y, epochs=3, callbacks=[checkpoint])
        assert fastgrad.load_checkpoint(path).epoch == 3
        path.unlink()


def test_save_takes_the_epoch_from_the_history_and_refuses_what_does_not_fit(tmp_path):
    net, X, y = make_problem((4,), backend="cython", n_samples=20)
    approach, rng = Parallel(Adam(0.01)), np.random.default_rng(3)
    history = fastgrad.train(net, X, y, approach, epochs=2, rng=rng)
    path = tmp_path / "run.safetensors"
    fastgrad.save(path, net, approach=approach, history=history, rng=rng)
    assert fastgrad.load_checkpoint(path).epoch == 2
    with pytest.raises(ValueError, match="list of 3 entries"):
        fastgrad.save(path, net, approach=approach, history=history, rng=rng, epoch=3)
    with pytest.raises(TypeError, match="PCG64"):
        fastgrad.save(path, net, rng=np.random.Generator(np.random.MT19937(0)))
    tensors, metadata = safetensors_file.read(path)
    tensors["fastgrad.approach.state"] = tensors["fastgrad.approach.state"][:, :5].copy()
    safetensors_file.write(path, tensors, metadata)
    with pytest.raises(ValueError, match="approach state is not valid"):
        fastgrad.load_checkpoint(path)
    assert fastgrad.load(path).config() == net.config()  # the network alone still loads
