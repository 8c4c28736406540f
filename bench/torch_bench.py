#!/usr/bin/python3
"""torch_bench.py: the PyTorch (or TensorFlow/Keras) side of `make bench`.

Trains the reference CNN of mlcnn's benchmark (or, with --model resnet, the
ResNet-style network with batch norm of the graph issue) on an MNIST-format
data set and writes one JSON object with every figure:

    conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)

with Adam (learning rate 1e-3, constant), batch size 64, pixels scaled to
[0, 1], the training rows shuffled every epoch, on T CPU threads.

    /usr/bin/python3 bench/torch_bench.py --data DIR --out FILE.json \
        [--framework pytorch|tensorflow] [--epochs 5] [--threads 2] \
        [--predict-threads T] [--train-rows N] [--repeats 5] [--seed 42]

DIR holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz. The row counts come
from the IDX headers. --train-rows keeps the first N training rows (the same
rows mlcnn trains on). With --framework tensorflow and no importable
tensorflow, the output says {"installed": false} and the exit status is 0.

Measured: training seconds (the epoch loops only, data already in memory)
and seconds per epoch; test accuracy over the whole test set; the time to
predict the first 100 test images one row at a time and as one batch, each
the median of --repeats runs after one warm-up; peak memory of this process
(getrusage ru_maxrss); training and inference images per second. Recorded
with them (PyTorch): which kernels ran (the profiler's aten operators of one
training step, one single-row and one batch prediction: oneDNN's
mkldnn_convolution, or thnn_conv2d = im2col + BLAS, and addmm = BLAS), and
what torch runs on: torch.__config__.show() and parallel_info(), oneDNN's
version, threading and ISA, the OpenBLAS mapped into the process with its
kernel (openblas_get_corename), and the OPENBLAS_/OMP_ environment.
"""
import argparse
import copy
import gzip
import json
import os
import platform
import resource
import statistics
import struct
import sys
import time

import numpy as np

BATCH = 64
LEARNING_RATE = 1e-3
CLASSES = 10
INFER_BATCH = 1000  # batch size of the full test-set pass


def read_idx(path):
    """An IDX file (gzip or raw) as a numpy uint8 array shaped by its header."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = data[3]
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    n = int(np.prod(dims))
    if body.size < n:
        raise ValueError("%s: truncated (%d of %d bytes)" % (path, body.size, n))
    return body[:n].reshape(dims)


def load(data_dir, train_rows):
    """(x_train, y_train, x_test, y_test) as float32 NHW in [0, 1] and int64 labels."""
    def split(prefix):
        x = read_idx(os.path.join(data_dir, prefix + "-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(data_dir, prefix + "-labels-idx1-ubyte.gz"))
        if x.shape[0] != y.shape[0]:
            raise ValueError("%s: %d images but %d labels" % (prefix, x.shape[0], y.shape[0]))
        return x, y
    xtr, ytr = split("train")
    xte, yte = split("t10k")
    if train_rows and train_rows < xtr.shape[0]:
        xtr, ytr = xtr[:train_rows], ytr[:train_rows]
    scale = np.float32(1.0 / 255.0)
    return (xtr.astype(np.float32) * scale, ytr.astype(np.int64),
            xte.astype(np.float32) * scale, yte.astype(np.int64))


def peak_mb():
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def loaded_libraries(pattern):
    """Paths of the shared libraries of this process matching pattern (/proc/self/maps), each once."""
    import re
    out = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                if path.startswith("/") and re.search(pattern, os.path.basename(path)) and path not in out:
                    out.append(path)
    except OSError:
        pass
    return out


def openblas_info():
    """Config and kernel of the OpenBLAS loaded in this process (torch's BLAS), or None.

    The library is the one mapped into the process (torch reaches it through
    libblas.so.3), opened by its path so that ctypes gets that same copy."""
    import ctypes
    libs = loaded_libraries(r"openblas") or ["libopenblas.so.0"]
    try:
        lib = ctypes.CDLL(libs[0])
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return {"library": libs[0], "config": lib.openblas_get_config().decode(),
                "core": lib.openblas_get_corename().decode(),
                "threads": lib.openblas_get_num_threads()}
    except (OSError, AttributeError):
        return None


# oneDNN's dnnl_cpu_isa_t (v2.x) and dnnl_runtime values
ONEDNN_ISA = {0x0: "all", 0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0xf: "avx512_mic",
              0x1f: "avx512_mic_4ops", 0x27: "avx512_core", 0x67: "avx512_core_vnni",
              0xe7: "avx512_core_bf16", 0x3e7: "avx512_core_amx", 0x407: "avx2_vnni"}
ONEDNN_RUNTIME = {0: "none", 1: "sequential", 2: "OpenMP", 4: "TBB", 8: "threadpool"}


def onednn_info():
    """Version, threading runtime and effective ISA of the oneDNN loaded in this process, or None."""
    import ctypes
    libs = loaded_libraries(r"libdnnl|libmkldnn")
    if not libs:
        return None

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int),
                    ("hash", ctypes.c_char_p), ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]
    try:
        lib = ctypes.CDLL(libs[0])
        lib.dnnl_version.restype = ctypes.POINTER(Version)
        v = lib.dnnl_version().contents
        isa = lib.dnnl_get_effective_cpu_isa()
        return {"library": libs[0], "version": "%d.%d.%d" % (v.major, v.minor, v.patch),
                "cpu_runtime": ONEDNN_RUNTIME.get(v.cpu_runtime, hex(v.cpu_runtime)),
                "isa": ONEDNN_ISA.get(isa, hex(isa))}
    except (OSError, AttributeError) as e:
        return {"library": libs[0], "error": str(e)}


def torch_kernels(model, xb, yb):
    """The aten operators of one training step and of one single-row prediction
    (convolutions and matrix products), from torch's profiler: which
    implementation ran (aten::mkldnn_convolution is oneDNN; aten::thnn_conv2d /
    _slow_conv2d_forward is im2col + BLAS; aten::addmm / mm is BLAS)."""
    import re
    import torch
    from torch.autograd import profiler

    pick = re.compile(r"conv|mm|linear|mkldnn|thnn|matmul")
    state = copy.deepcopy(model.state_dict())  # the step below must not change the model (batch norm statistics)
    out = {}
    model.train()
    with profiler.profile() as prof:
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
    out["training_step"] = sorted({e.name for e in prof.function_events if pick.search(e.name)})
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        with profiler.profile() as prof:
            model(xb[:1])
        out["single_row_prediction"] = sorted({e.name for e in prof.function_events if pick.search(e.name)})
        with profiler.profile() as prof:
            model(xb)
        out["batch_prediction"] = sorted({e.name for e in prof.function_events if pick.search(e.name)})
    return out


def torch_libraries():
    """What torch was built with and runs on here: torch.__config__.show() and
    parallel_info(), its oneDNN, its OpenBLAS, its OpenMP and BLAS libraries."""
    import torch
    return {"config_show": torch.__config__.show(),
            "parallel_info": torch.__config__.parallel_info(),
            "mkldnn_enabled": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "openmp": bool(torch.backends.openmp.is_available()),
            "mkl": bool(torch.backends.mkl.is_available()),
            "onednn": onednn_info(),
            "libraries": loaded_libraries(r"blas|lapack|gomp|omp|dnnl|mkl|sleef|xnnpack|nnpack")}


def cpu_seconds():
    """User + system CPU seconds of this process (all threads) so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_median(fn, repeats):
    """fn() once to warm up, then `repeats` timed runs: (median seconds, all runs)."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs


def torch_model(name):
    """The benchmark's network in PyTorch: the reference CNN, or the ResNet-style one."""
    from torch import nn

    if name == "reference":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1600, 128), nn.ReLU(),
            nn.Linear(128, CLASSES))

    class Residual(nn.Module):
        """body(x) + x: mlcnn's residual(LAYERS) of an unchanged shape."""

        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return self.body(x) + x

    def block(c):
        return Residual(nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)))

    # conv(16,3,1,same) batchnorm relu residual(...) relu maxpool(2)
    # conv(32,3,1,same) batchnorm relu residual(...) relu maxpool(2) globalavgpool dense(10)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), block(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), block(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES))


def run_pytorch(args, xtr, ytr, xte, yte):
    """Train and measure the chosen network with PyTorch; returns the result dict."""
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    model = torch_model(args.model)
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()

    xtr_t = torch.from_numpy(xtr).unsqueeze(1)
    ytr_t = torch.from_numpy(ytr)
    xte_t = torch.from_numpy(xte).unsqueeze(1)
    yte_t = torch.from_numpy(yte)
    n = xtr_t.shape[0]

    history = []
    cpu0 = cpu_seconds()
    model.train()
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        total_loss = 0.0
        correct = 0
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = xtr_t[idx], ytr_t[idx]
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total_loss += loss.item() * idx.shape[0]
            correct += (out.argmax(1) == yb).sum().item()
        secs = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": total_loss / n,
                        "train_accuracy": correct / n, "seconds": secs})
        print("pytorch epoch %d/%d: loss %.4f, accuracy %.4f, %.2f s"
              % (epoch + 1, args.epochs, total_loss / n, correct / n, secs), file=sys.stderr)
    train_peak = peak_mb()
    train_cpu = cpu_seconds() - cpu0
    kernels = torch_kernels(model, xtr_t[:BATCH], ytr_t[:BATCH])

    torch.set_num_threads(args.predict_threads)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        correct = 0
        for i in range(0, xte_t.shape[0], INFER_BATCH):
            correct += (model(xte_t[i:i + INFER_BATCH]).argmax(1) == yte_t[i:i + INFER_BATCH]).sum().item()
        eval_secs = time.perf_counter() - t0
        x100 = xte_t[:100]

        def single():
            for i in range(100):
                model(x100[i:i + 1]).argmax(1)

        def batch():
            model(x100).argmax(1)

        single_med, single_runs = timed_median(single, args.repeats)
        batch_med, batch_runs = timed_median(batch, args.repeats)

    return {
        "framework": "pytorch",
        "model": args.model,
        "installed": True,
        "version": torch.__version__,
        "threads": args.threads,
        "predict_threads": torch.get_num_threads(),
        "parameters": nparams,
        "history": history,
        "eval_seconds": eval_secs,
        "test_correct": correct,
        "train_peak_mb": train_peak,
        "training_cpu_seconds": train_cpu,
        "predict100_single_seconds": single_med,
        "predict100_single_runs": single_runs,
        "predict100_batch_seconds": batch_med,
        "predict100_batch_runs": batch_runs,
        "kernels": kernels,
        "torch": torch_libraries(),
    }


def run_tensorflow(args, xtr, ytr, xte, yte):
    """Train and measure the reference CNN with TensorFlow/Keras; returns the result dict."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.keras.utils.set_random_seed(args.seed)
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(CLASSES)])
    model.compile(optimizer=tf.keras.optimizers.Adam(LEARNING_RATE),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    class EpochTimes(tf.keras.callbacks.Callback):
        """Wall-clock seconds of each epoch."""
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            history.append({"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan"))),
                            "train_accuracy": float(logs.get("accuracy", float("nan"))),
                            "seconds": time.perf_counter() - self.t0})

    history = []
    xtr4, xte4 = xtr[..., None], xte[..., None]
    cpu0 = cpu_seconds()
    model.fit(xtr4, ytr, batch_size=BATCH, epochs=args.epochs, shuffle=True,
              verbose=0, callbacks=[EpochTimes()])
    train_peak = peak_mb()
    train_cpu = cpu_seconds() - cpu0

    predict_threads = args.threads
    try:  # TensorFlow refuses once its runtime is up
        tf.config.threading.set_intra_op_parallelism_threads(args.predict_threads)
        predict_threads = args.predict_threads
    except RuntimeError:
        pass
    t0 = time.perf_counter()
    pred = np.argmax(model.predict(xte4, batch_size=INFER_BATCH, verbose=0), axis=1)
    eval_secs = time.perf_counter() - t0
    correct = int((pred == yte).sum())
    x100 = tf.constant(xte4[:100])

    def single():
        for i in range(100):
            tf.argmax(model(x100[i:i + 1], training=False), axis=1).numpy()

    def batch():
        tf.argmax(model(x100, training=False), axis=1).numpy()

    single_med, single_runs = timed_median(single, args.repeats)
    batch_med, batch_runs = timed_median(batch, args.repeats)
    return {
        "framework": "tensorflow",
        "installed": True,
        "version": tf.__version__,
        "threads": args.threads,
        "predict_threads": predict_threads,
        "parameters": int(model.count_params()),
        "history": history,
        "eval_seconds": eval_secs,
        "test_correct": correct,
        "train_peak_mb": train_peak,
        "training_cpu_seconds": train_cpu,
        "predict100_single_seconds": single_med,
        "predict100_single_runs": single_runs,
        "predict100_batch_seconds": batch_med,
        "predict100_batch_runs": batch_runs,
    }


def main():
    """Parse the arguments, run one framework, write its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder with the four MNIST-format files")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--framework", choices=["pytorch", "tensorflow"], default="pytorch")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predict-threads", type=int, default=0,
                    help="threads for the inference measurements (0: --threads)")
    ap.add_argument("--train-rows", type=int, default=0, help="keep the first N training rows (0: all)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each prediction measurement")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--model", choices=["reference", "resnet"], default="reference",
                    help="the reference CNN, or the ResNet-style network with batch norm (PyTorch only)")
    args = ap.parse_args()
    if args.epochs < 1 or args.threads < 1 or args.repeats < 1 or args.predict_threads < 0:
        ap.error("--epochs, --threads and --repeats must be at least 1")
    args.predict_threads = args.predict_threads or args.threads

    result = {"framework": args.framework}
    if args.framework == "tensorflow":
        try:
            import tensorflow  # noqa: F401
        except Exception as e:  # ImportError, or a broken install
            result.update({"installed": False, "reason": "%s: %s" % (type(e).__name__, e)})
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
            print("tensorflow: not installed (%s)" % result["reason"], file=sys.stderr)
            return 0

    t0 = time.perf_counter()
    xtr, ytr, xte, yte = load(args.data, args.train_rows)
    load_secs = time.perf_counter() - t0
    run = run_pytorch if args.framework == "pytorch" else run_tensorflow
    result = run(args, xtr, ytr, xte, yte)

    train_secs = sum(h["seconds"] for h in result["history"])
    ntrain, ntest = int(xtr.shape[0]), int(xte.shape[0])
    result.update({
        "python": platform.python_version(),
        "numpy": np.__version__,
        "epochs": args.epochs,
        "batch_size": BATCH,
        "learning_rate": LEARNING_RATE,
        "seed": args.seed,
        "repeats": args.repeats,
        "train_rows": ntrain,
        "test_rows": ntest,
        "load_seconds": load_secs,
        "training_seconds": train_secs,
        "seconds_per_epoch": train_secs / args.epochs,
        "train_images_per_second": ntrain * args.epochs / train_secs,
        "test_accuracy": result["test_correct"] / ntest,
        "infer_images_per_second": ntest / result["eval_seconds"],
        "peak_mb": peak_mb(),
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                 "OMP_WAIT_POLICY")},
        "openblas": openblas_info(),
    })
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("%s: %d rows x %d epochs in %.1f s, test accuracy %.4f, peak %.0f MB"
          % (args.framework, ntrain, args.epochs, train_secs, result["test_accuracy"],
             result["peak_mb"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
