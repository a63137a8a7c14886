"""Models on a GPU: ``model.to(device)``, training, evaluation, prediction and files there, each
compared with the same model on the CPU.

Every test runs on two devices (the ``device`` fixture):

- ``fakegpu`` (always): tests/_fake_gpu.py, arrays that refuse numpy as CuPy's do, computing
  through nnlite's CUDA kernels compiled by the shim (the numpy twins stand in for kernel
  families not present yet; ``test_which_ops_run_on_shim_kernels`` says which);
- ``cuda`` (marked ``cuda``): the real GPU with CuPy, skipped saying why where there is none.
"""
import _fake_gpu
import numpy as np
import pytest

import nnlite as nl
from nnlite import devices, ops
from nnlite.ops import cuda

# training steps compared with the CPU: the 20 on a GPU; fewer through the shim, which
# runs every CUDA thread as an OS thread (seconds per step for a kernel with many blocks)
STEPS = {"cuda": 20, "fakegpu": 6}
# float tolerance against the CPU: the fake runs the twins or the same kernels through the
# shim; a GPU sums in other orders and uses its fast exp
RTOL = {"cuda": 5e-4, "fakegpu": 1e-4}


@pytest.fixture(scope="module", autouse=True)
def _fake_gpu_here():
    """The fake device's column for this module only."""
    with _fake_gpu.installed():
        yield


@pytest.fixture(params=["fakegpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    if request.param == "fakegpu":
        return _fake_gpu.install()
    if not cuda.is_available():
        pytest.skip(cuda.why_not())
    cuda.enable()
    return "cuda"


def on(device):
    """The array type of ``device``'s arrays."""
    return devices.resolve(device).array_type


# -- models and data -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    (x, y), _ = nl.datasets.load_mnist_sample()
    x = (x[:640].reshape(640, -1) / 255.0).astype(np.float32)
    return x, y[:640].astype(np.int64)


def mlp():
    """An MNIST MLP in small, with dropout (its masks come from the host generator, so the
    GPU draws the CPU's)."""
    model = nl.Sequential([nl.Linear(784, 32, rng=1), nl.ReLU(), nl.Dropout(0.1),
                           nl.Linear(32, 10, rng=2)])
    model.compile(nl.optim.Adam(3e-3), "cross_entropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def text_ids():
    text = nl.datasets.shakespeare.load_bundled_shakespeare()[:20_000]
    tok = nl.data.CharTokenizer.from_text(text)
    return tok.encode(text), tok.vocab_size


def tiny_gpt(vocab):
    model = nl.models.GPT(vocab, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1,
                          rng=0)
    model.compile(nl.optim.AdamW(3e-3, decay_filter="matrices", clipnorm=1.0),
                  "cross_entropy")
    return model


def gpt_batches(ids, n, B=2, T=8):
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(ids) - T - 1, size=(n, B))
    return [(np.stack([ids[s:s + T] for s in row]), np.stack([ids[s + 1:s + T + 1] for s in row]))
            for row in starts]


def mnist_batches(x, y, n, size=32):
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(n)]


def train(model, batches):
    losses = []
    for i, (xb, yb) in enumerate(batches):
        with nl.random.using(np.random.default_rng(i)):      # the same dropout masks
            losses.append(model.train_step(xb, yb))
    return np.array(losses)


def assert_same_state(a, b, exact=True, grads=True):
    """Parameters, gradients (unless ``grads=False``: a file has none) and optimizer state of
    two models, as numpy arrays."""
    def close(u, v, err_msg):
        # float tolerance, scaled to each array, plus 1e-4: an Adam or momentum step moves a
        # weight whose true gradient is 0 (the attention's key bias, a bias before
        # BatchNorm) by its rounding noise, up to ~lr per step either way
        scale = float(np.abs(v).max()) if v.size else 0.0
        np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-3 * scale + 1e-4, err_msg=err_msg)
    check = np.testing.assert_array_equal if exact else close
    for what in ("params", "grads", "buffers") if grads else ("params", "buffers"):
        pa, pb = getattr(a, what), getattr(b, what)
        assert list(pa) == list(pb)
        for k in pa:
            check(devices.to_host(pa[k]), devices.to_host(pb[k]), err_msg=f"{what} {k}")
    assert a.optimizer.iterations == b.optimizer.iterations
    for i, (sa, sb) in enumerate(zip(a.optimizer.state, b.optimizer.state, strict=True)):
        for k in sa:
            check(devices.to_host(sa[k]), devices.to_host(sb[k]), err_msg=f"state {i} {k}")


# -- training matches the CPU --------------------------------------------------------------------
def test_mnist_mlp_trains_on_the_device_as_on_the_cpu(device, mnist):
    batches = mnist_batches(*mnist, n=STEPS[device])
    cpu, gpu = mlp(), mlp().to(device)
    assert (cpu.device, gpu.device) == ("cpu", device)
    want, got = train(cpu, batches), train(gpu, batches)
    assert got.dtype == np.float64 and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=RTOL[device])
    assert want[-1] < want[0] - 0.3            # it learns: the comparison is not of noise
    assert isinstance(gpu.params["0.W"], on(device))
    assert isinstance(gpu.optimizer.state[0]["m"], on(device))
    assert_same_state(cpu, gpu, exact=False)


def test_gpt_trains_on_the_device_as_on_the_cpu(device, text_ids):
    ids, vocab = text_ids
    batches = gpt_batches(ids, n=STEPS[device])
    cpu, gpu = tiny_gpt(vocab), tiny_gpt(vocab).to(device)
    want, got = train(cpu, batches), train(gpu, batches)
    np.testing.assert_allclose(got, want, rtol=RTOL[device])
    assert want[-3:].mean() < want[:3].mean()      # it learns
    assert_same_state(cpu, gpu, exact=False)
    # sampling: each step's logits come back to the host; the same text for the same seed
    np.testing.assert_array_equal(gpu.generate(ids[:5], 4, top_k=5, seed=0),
                                  cpu.generate(ids[:5], 4, top_k=5, seed=0))


def test_fit_evaluate_predict_move_each_batch(device, mnist):
    x, y = mnist[0][:320], mnist[1][:320]
    cpu, gpu = mlp(), mlp().to(device)
    hc = cpu.fit(x, y, batch_size=64, epochs=2, validation_split=0.2, seed=3, verbose=0,
                 class_weight={k: 1.0 + k / 10 for k in range(10)})
    hg = gpu.fit(x, y, batch_size=64, epochs=2, validation_split=0.2, seed=3, verbose=0,
                 class_weight={k: 1.0 + k / 10 for k in range(10)})
    for k in hc.history:    # (on a GPU a near tie may flip one prediction: 1/64 accuracy)
        np.testing.assert_allclose(hg.history[k], hc.history[k], rtol=RTOL[device], err_msg=k,
                                   atol=0.02 if "acc" in k and device == "cuda" else 0)
    ec, eg = cpu.evaluate(x, y, batch_size=100), gpu.evaluate(x, y, batch_size=100)
    assert ec.keys() == eg.keys()
    for k in ec:
        np.testing.assert_allclose(eg[k], ec[k], rtol=RTOL[device], err_msg=k,
                                   atol=0.01 if "acc" in k and device == "cuda" else 0)
    pc, pg = cpu.predict(x[:70], batch_size=32), gpu.predict(x[:70], batch_size=32)
    assert type(pg) is np.ndarray and pg.shape == (70, 10)      # host arrays, as Keras'
    np.testing.assert_allclose(pg, pc, rtol=RTOL[device], atol=1e-5)
    assert gpu.device == device                                 # fit left it there


def test_data_already_on_the_device(device, mnist):
    x, y = mnist
    xd, yd = devices.to_device(x[:128], device), devices.to_device(y[:128], device)
    cpu, gpu = mlp(), mlp().to(device)
    hc = cpu.fit(x[:128], y[:128], batch_size=32, epochs=1, seed=1, verbose=0)
    hg = gpu.fit(xd, yd, batch_size=32, epochs=1, seed=1, verbose=0)
    np.testing.assert_allclose(hg.history["loss"], hc.history["loss"], rtol=RTOL[device])
    np.testing.assert_allclose(gpu.predict(xd), cpu.predict(x[:128]), rtol=RTOL[device],
                               atol=1e-5)


def test_conv_net_with_batchnorm_on_the_device(device, mnist):
    x, y = mnist
    x = x[:64].reshape(-1, 1, 28, 28)

    def cnn():
        m = nl.Sequential([nl.Conv2D(1, 4, 3, padding=1, rng=0), nl.BatchNorm2d(4), nl.ReLU(),
                           nl.MaxPool2D(2), nl.Flatten(), nl.Linear(4 * 14 * 14, 10, rng=1)])
        m.compile(nl.optim.SGD(0.05, momentum=0.9), "cross_entropy", metrics=["accuracy"])
        return m
    cpu, gpu = cnn(), cnn().to(device)
    batches = mnist_batches(x, y[:64], n=4, size=16)
    np.testing.assert_allclose(train(gpu, batches), train(cpu, batches), rtol=RTOL[device])
    assert_same_state(cpu, gpu, exact=False)            # running statistics too
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=RTOL[device], atol=1e-5)


# -- moving and saving --------------------------------------------------------------------------
def test_to_device_and_back_round_trips_exactly(device, text_ids):
    ids, vocab = text_ids
    model = tiny_gpt(vocab)
    train(model, gpt_batches(ids, n=2))          # optimizer state and gradients to move
    before = tiny_gpt(vocab)
    before.load_state_dict(model.state_dict())
    before.optimizer.load_state_dict(model.optimizer.state_dict())
    for k, g in model.grads.items():
        before.grads[k][...] = g
    assert model.to(device) is model and model.device == device
    assert all(isinstance(a, on(device)) for a in [*model.params.values(),
                                                  *model.grads.values(),
                                                  *model.optimizer.state[3].values()])
    assert model.to(device).device == device     # already there: nothing to do
    model.to("cpu")
    assert model.device == "cpu" and all(type(p) is np.ndarray for p in model.params.values())
    assert_same_state(model, before, exact=True)


def test_save_on_the_device_load_on_the_cpu(device, mnist, tmp_path):
    x, y = mnist
    model = mlp().to(device)
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, seed=0, verbose=0)
    want = model.predict(x[:50])
    model.save(tmp_path / "m.nnl")
    model.save_weights(tmp_path / "w.safetensors")
    loaded = nl.load_model(tmp_path / "m.nnl")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.predict(x[:50]),
                                  model.to("cpu").predict(x[:50]))   # the same weights
    np.testing.assert_allclose(loaded.predict(x[:50]), want, rtol=RTOL[device], atol=1e-5)
    assert_same_state(loaded, model, exact=True, grads=False)        # optimizer state too
    # and the other way: a host file into a model on the device
    again = mlp().to(device)
    again.load_weights(tmp_path / "w.safetensors")
    assert isinstance(again.params["0.W"], on(device))
    np.testing.assert_allclose(again.predict(x[:50]), want, rtol=RTOL[device], atol=1e-5)


def test_torch_export_and_import_on_the_device(device):
    cpu = mlp()
    gpu = mlp().to(device)
    sd = nl.io.torch_state_dict(gpu)
    assert all(type(v) is np.ndarray for v in sd.values())
    for k, v in nl.io.torch_state_dict(cpu).items():
        np.testing.assert_array_equal(sd[k], v)
    other = mlp()
    for p in other.params.values():
        p[...] = 0
    other.to(device)
    nl.io.import_torch(other, sd)
    assert isinstance(other.params["0.W"], on(device))
    for k, p in cpu.params.items():
        np.testing.assert_array_equal(devices.to_host(other.params[k]), p)


def test_weights_come_back_as_numpy(device):
    model = mlp().to(device)
    ws = model.get_weights()
    assert all(type(w) is np.ndarray for w in ws)
    model.set_weights([w * 0 for w in ws])                  # host arrays into device ones
    assert isinstance(model.params["0.W"], on(device))
    assert not devices.to_host(model.params["0.W"]).any()


def test_dense_built_after_to_follows_the_model(device, mnist):
    x, y = mnist
    model = nl.Sequential([nl.Dense(16, activation="relu"), nl.Dense(10)]).to(device)
    model.compile("adam", "cross_entropy")
    model.fit(x[:64], y[:64], batch_size=32, verbose=0)
    assert all(isinstance(p, on(device)) for p in model.params.values())


# -- what the fake device is for --------------------------------------------------------------
class _NumpyTanh(nl.layers.Layer):
    """A layer that forgot ``xp``: np.tanh on its input."""

    def forward(self, x, training=True):
        self._y = np.tanh(x)
        return self._y

    def backward(self, g):
        return g * (1 - self._y ** 2)


class _XpTanh(_NumpyTanh):
    def forward(self, x, training=True):
        self._y = ops.array_module(x).tanh(x)
        return self._y


def test_a_layer_that_forgot_xp_fails_on_the_fake_gpu(mnist):
    dev = _fake_gpu.install()
    x, y = mnist
    for layer, ok in ((_NumpyTanh(), False), (_XpTanh(), True)):
        model = nl.Sequential([nl.Linear(784, 8, rng=0), layer, nl.Linear(8, 10, rng=1)])
        model.compile("sgd", "cross_entropy")
        model.train_step(x[:8], y[:8])                       # numpy: both work on the CPU
        model.to(dev)
        if ok:
            model.train_step(x[:8], y[:8])
        else:
            with pytest.raises(TypeError, match="numpy.tanh on a fake GPU array"):
                model.train_step(x[:8], y[:8])


def test_the_fake_gpu_refuses_host_conversion():
    dev = _fake_gpu.install()
    a = devices.to_device(np.arange(6.0), dev)
    for bad in (lambda: np.asarray(a), lambda: np.sum(a), lambda: np.exp(a),
                lambda: a + np.ones(6), lambda: a.__setitem__(slice(None), np.ones(6))):
        with pytest.raises(TypeError, match="fake GPU|device"):
            bad()
    assert float(a.sum()) == 15.0 and type(a.get()) is np.ndarray       # explicit: fine
    assert ops.array_module(a) is _fake_gpu.xp and isinstance(a * 2 + 1, _fake_gpu.FakeArray)


def test_to_device_takes_other_libraries_arrays():
    torch = pytest.importorskip("torch")
    dev = _fake_gpu.install()
    t = torch.arange(6, dtype=torch.float32)
    d = devices.to_device(t, dev)
    assert isinstance(d, _fake_gpu.FakeArray)
    np.testing.assert_array_equal(devices.to_host(d), t.numpy())
    assert devices.to_device(d, dev) is d and devices.device_of(d) == dev


def test_every_op_runs_on_the_shim_kernels():
    """Every op of the fake column is its CUDA kernel family's (compiled by the shim), none a
    numpy stand-in: the device tests above exercise every CUDA wrapper and kernel."""
    stand_ins, absent = _fake_gpu.stand_ins(), _fake_gpu.absent_families()
    assert absent == {} and stand_ins == []
    assert {ops._TABLE[op][_fake_gpu.NAME].runs_on for op in ops.OPS} == {"shim"}


# -- no GPU here ------------------------------------------------------------------------------
def test_cuda_says_why_it_is_unavailable(mnist):
    if cuda.is_available():
        pytest.skip("a GPU is available")
    why = cuda.why_not()
    assert why.startswith("no GPU")
    with pytest.raises(RuntimeError, match="^no GPU"):
        mlp().to("cuda")
    with pytest.raises(RuntimeError, match="^no GPU"):
        cuda.enable()
    model = mlp()
    with pytest.raises(RuntimeError, match="^no GPU"):
        model.to("cuda:0")
    assert model.device == "cpu" and type(model.params["0.W"]) is np.ndarray   # untouched
    with pytest.raises(ValueError, match="unknown device"):
        model.to("tpu")



# -- the examples' --device ---------------------------------------------------------------------
@pytest.mark.parametrize("script", ["examples/mnist_mlp.py", "examples/mnist_cnn.py",
                                    "examples/gpt_shakespeare.py"])
def test_examples_say_in_one_line_when_cuda_is_unavailable(script, tmp_path):
    if cuda.is_available():
        pytest.skip("a GPU is available")
    import _child
    from _scripts import REPO
    script = REPO / script
    r = _child.python(script, "--device", "cuda", cwd=tmp_path, timeout=120)
    name = script.name
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.splitlines() == [f"{name}: --device cuda: {cuda.why_not()}"], r.stderr
    assert r.stdout == ""                       # nothing loaded, nothing trained
    assert "--device {cpu,cuda}" in _child.python(script, "--help", cwd=tmp_path).stdout


def test_mnist_example_course_stays_on_the_cpu(capsys):
    from _scripts import load_script
    with pytest.raises(SystemExit) as e:
        load_script("examples/mnist_mlp.py").parse_args(["--course", "--device", "cuda"])
    assert e.value.code == 2 and "--course runs on the CPU" in capsys.readouterr().err


def test_calling_a_model_on_the_device_with_host_input_says_what_to_do(device, mnist):
    x = mnist[0][:4]
    model = mlp().to(device)
    with pytest.raises(TypeError, match=r"Sequential on '.*' got ndarray input \(on 'cpu'\): "
                                        r"move it first"):
        model(x)
    out = model(devices.to_device(x, device))
    assert isinstance(out, on(device)) and out.shape == (4, 10)


# every layer: forward, backward and an update on the device as on the CPU
STACKS = {
    "dense": lambda: [nl.Dense(6, activation="gelu", input_dim=5), nl.LeakyReLU(0.1),
                      nl.Dense(4), nl.Sigmoid(), nl.Linear(4, 3, rng=0)],
    "residual+layernorm": lambda: [nl.Linear(5, 8, rng=0),
                                   nl.Residual(nl.Sequential([nl.LayerNorm(8), nl.Tanh(),
                                                              nl.Linear(8, 8, rng=1)])),
                                   nl.BatchNorm1d(8), nl.Linear(8, 3, rng=2), nl.Softmax()],
    "conv": lambda: [nl.Linear(5, 2 * 4 * 4, rng=0), nl.Reshape((2, 4, 4)),
                     nl.ConvTranspose2D(2, 3, 3, stride=2, padding=1, output_padding=1, rng=1),
                     nl.Upsample(2), nl.AvgPool2D(2), nl.Conv2D(3, 2, 3, padding="same", rng=2),
                     nl.MaxPool2D(2), nl.GlobalAvgPool2D(), nl.Linear(2, 3, rng=3)],
}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_layers_on_the_device(device, stack):
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 6)
    models = []
    for dev in ("cpu", device):
        nl.random.seed(0)
        m = nl.Sequential(STACKS[stack]()).to(dev)
        # (RMSprop where no weight has a zero gradient: it would scale rounding noise up)
        opt = nl.optim.RMSprop(1e-3) if stack == "dense" else nl.optim.SGD(0.1, momentum=0.9)
        m.compile(opt, "mse" if stack == "residual+layernorm" else
                  "cross_entropy")
        target = np.eye(3, dtype=np.float32)[y] if stack == "residual+layernorm" else y
        losses = [m.train_step(x, target) for _ in range(3)]
        models.append((m, losses, m.predict(x)))
    (cpu, lc, pc), (gpu, lg, pg) = models
    np.testing.assert_allclose(lg, lc, rtol=RTOL[device])
    np.testing.assert_allclose(pg, pc, rtol=RTOL[device], atol=1e-6)
    assert_same_state(cpu, gpu, exact=False)


# -- the examples on the (fake) device, end to end ---------------------------------------------
def test_examples_train_on_the_fake_gpu(monkeypatch, tmp_path, capsys):
    """``--device cuda`` as the examples take it, with the fake GPU standing in for CUDA: the
    MNIST MLP (fit with EarlyStopping, evaluate, save) and the GPT example
    (checkpoints, --resume, sampling) run there, and their results match a CPU run."""
    from _scripts import load_script
    dev = _fake_gpu.install()
    monkeypatch.setattr(nl.devices, "for_script", lambda device, prog: dev if device == "cuda"
                        else "cpu")
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))
            for n in (200, 50)]
    monkeypatch.setattr(nl.datasets, "load_mnist", lambda *a, **k: data)
    mlp_runs = {d: load_script("examples/mnist_mlp.py").main(
        ["--epochs", "2", "--train-size", "100", "--verbose", "0", "--device", d,
         "--save", str(tmp_path / f"{d}.nnl")])
        for d in ("cpu", "cuda")}
    assert mlp_runs["cuda"]["loss"] == pytest.approx(mlp_runs["cpu"]["loss"], rel=1e-4)
    np.testing.assert_allclose(nl.load_model(tmp_path / "cuda.nnl").get_weights()[0],
                               nl.load_model(tmp_path / "cpu.nnl").get_weights()[0],
                               rtol=1e-4, atol=1e-4)     # (Adam: a weight's noise ~ lr)

    text = tmp_path / "text.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20)
    tiny = ["--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--block-size", "8",
            "--batch-size", "1", "--eval-interval", "2", "--eval-iters", "1", "--warmup-iters",
            "1", "--max-new-tokens", "4", "--text-file", str(text), "--verbose", "0"]
    runs = {}
    for d in ("cpu", "cuda"):
        out = str(tmp_path / f"gpt-{d}")
        gpt = load_script("examples/gpt_shakespeare.py")
        gpt.main(tiny + ["--out-dir", out, "--device", d, "--max-iters", "2"])
        runs[d] = gpt.main(["--resume", "--out-dir", out, "--device", d, "--max-iters", "4",
                            "--text-file", str(text), "--verbose", "0",
                            "--max-new-tokens", "4"])
    for a, b in zip(runs["cpu"]["evals"], runs["cuda"]["evals"], strict=True):
        assert a["iter"] == b["iter"]
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    capsys.readouterr()


def test_is_available_never_raises(monkeypatch):
    def broken():
        raise OSError("libcuda.so: cannot open shared object file")
    monkeypatch.setattr(cuda.cuda_device, "gpu", broken)
    assert cuda.is_available() is False
    assert cuda.why_not() == "no GPU: OSError: libcuda.so: cannot open shared object file"


def test_family_kernels_say_which_families_are_missing():
    kernels, absent = cuda.family_kernels(None, ["cuda_no_such_family"])
    assert kernels == {} and "cuda_no_such_family" in absent["cuda_no_such_family"]
