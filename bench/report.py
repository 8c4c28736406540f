#!/usr/bin/python3
"""report.py: tables and charts of `make bench` (bench/run.sh calls it).

    report.py machine --out raw/machine.json --module PATH/mlcnn.so \
        --pg-version TEXT [--postmaster-pid PID]
        facts about this machine and its software, as JSON

    report.py report --results DIR [--datasets mnist fashion-mnist] [--scaling]
        reads DIR/raw/*.json (what run.sh measured) and writes, per data set,
        DIR/<dataset>.json (every figure), DIR/<dataset>.md (the table in the
        paper's layout, the published figures, the targets) and
        DIR/<dataset>.png; with --scaling also DIR/scaling.{json,md,png}

Units: seconds, MB = 2^20 bytes (VmHWM and ru_maxrss are in KiB), accuracy
in percent in the tables and as a fraction in the JSON.
"""
import argparse
import ctypes
import datetime
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIXELS = 784

# the paper's published figures (other hardware: Google Colab), MNIST
PUBLISHED = [
    {"framework": "TensorFlow", "device": "CPU", "training_seconds": 687.23,
     "accuracy_pct": 99.11, "predict100_seconds": 0.390, "peak_mb": 1373},
    {"framework": "PyTorch", "device": "CPU", "training_seconds": 824.86,
     "accuracy_pct": 99.07, "predict100_seconds": 0.082, "peak_mb": 1500},
    {"framework": "Velox ML", "device": "CPU", "training_seconds": None,
     "accuracy_pct": None, "predict100_seconds": 3.027, "peak_mb": 239},
    {"framework": "TensorFlow", "device": "GPU", "training_seconds": 44.44,
     "accuracy_pct": 99.10, "predict100_seconds": 0.252, "peak_mb": 1939},
    {"framework": "PyTorch", "device": "GPU", "training_seconds": 85.89,
     "accuracy_pct": 99.00, "predict100_seconds": 0.072, "peak_mb": 1896},
]

# the targets
TARGET_SPEED = 1.0 / 3.0       # mlcnn s/epoch <= this times PyTorch's
TARGET_PREDICT_MS = 10.0       # 100 single-row predictions from SQL
TARGET_MEMORY_MB = 150.0       # backend peak training on 60,000 rows
TARGET_MEMORY_ROWS = 60000
TARGET_ACCURACY_PTS = 0.3      # mlcnn at most this many points below PyTorch

NAMES = {"mlcnn": "mlcnn (SQL)", "pytorch": "PyTorch", "tensorflow": "TensorFlow/Keras",
         "opencv": "OpenCV dnn (mlcnn's ONNX export)"}
COLORS = {"mlcnn": "#1f77b4", "pytorch": "#ee4c2c", "tensorflow": "#ff9f00"}


# ------------------------------------------------------------------ machine

def sh(*cmd):
    """Output of a command, stripped, or None when it fails."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def openblas_of(module):
    """Path, Debian version, config and kernel of the OpenBLAS that module links."""
    info = {}
    ldd = sh("ldd", module) or ""
    m = re.search(r"libopenblas[^ ]*\s+=>\s+(\S+)", ldd)
    path = m.group(1) if m else "libopenblas.so.0"
    info["library"] = os.path.realpath(path) if m else path
    pkgs = sh("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Status}\n", "libopenblas0*") or ""
    info["debian_packages"] = [" ".join(l.split()[:2]) for l in pkgs.splitlines()
                               if l.endswith(" installed")]
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        info["config"] = lib.openblas_get_config().decode()
        info["core_in_bench_env"] = lib.openblas_get_corename().decode()
    except (OSError, AttributeError) as e:
        info["error"] = str(e)
    return info


def proc_env(pid, prefix="OPENBLAS_"):
    """The variables starting with prefix in process pid's environment (None if unreadable)."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            items = f.read().split(b"\0")
    except OSError:
        return None
    out = {}
    for it in items:
        k, _, v = it.decode(errors="replace").partition("=")
        if k.startswith(prefix):
            out[k] = v
    return out


def loadavg():
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cmd_machine(args):
    """Write the machine facts to args.out."""
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    os_name = None
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)', f.read(), re.M)
            os_name = m.group(1) if m else None
    load = loadavg()
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "os": os_name,
        "kernel": platform.release(),
        "loadavg_at_start": load,
        "postgresql": args.pg_version,
        "openblas": openblas_of(args.module),
        "openblas_env_bench": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "openblas_env_server": proc_env(args.postmaster_pid) if args.postmaster_pid else None,
        "git_commit": sh("git", "-C", ROOT, "rev-parse", "HEAD"),
    }
    with open(args.out, "w") as f:
        json.dump(facts, f, indent=1)
    return 0


# ------------------------------------------------------------------ figures

def load_json(path):
    """A JSON file, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            print("report.py: %s is not JSON (%s); ignored" % (path, e), file=sys.stderr)
            return None


def median(xs):
    """Median of a list, None for an empty one."""
    return statistics.median(xs) if xs else None


def mlcnn_figures(train, infer, load):
    """The normalised figures of mlcnn from run.sh's raw JSON."""
    info = train["model_info"]
    hist = info["history"]
    epochs = len(hist)
    core_secs = sum(h["seconds"] for h in hist)
    rows = train["rows"]
    ev = infer["evaluate"]
    return {
        "installed": True,
        "framework": "mlcnn",
        "threads": train["options"].get("threads"),
        "parameters": info.get("parameters"),
        "train_rows": rows,
        "test_rows": ev["result"]["rows"],
        "epochs": epochs,
        "training_seconds": train["wall_seconds"],
        "training_seconds_note": "the train_conv2d statement, timed in the server (scan, buffering, training)",
        "core_training_seconds": core_secs,
        "training_cpu_seconds": train.get("cpu_seconds"),
        "training_cpu_seconds_note": "user + system CPU of the backend during the statement",
        "seconds_per_epoch": core_secs / epochs,
        "epoch_seconds": [h["seconds"] for h in hist],
        "history": hist,
        "test_accuracy": ev["result"]["accuracy"],
        "test_loss": ev["result"].get("loss"),
        "predict100_single_seconds": median(infer["predict100_single_ms"]) / 1000,
        "predict100_single_runs_ms": infer["predict100_single_ms"],
        "predict100_single_how": "SELECT predict(m.model, t.pixels) FROM (100 test rows) t, models m; "
                                 "plpgsql clock_timestamp() around EXECUTE in the server",
        "predict100_batch_seconds": median(infer["predict100_batch_ms"]) / 1000,
        "predict100_batch_runs_ms": infer["predict100_batch_ms"],
        "predict100_batch_how": "SELECT evaluate(m.model, t.pixels, t.label) over the same 100 rows "
                                "(evaluate batches rows internally)",
        "predict100_correct": infer.get("predict100_agree"),
        "inference_threads": infer.get("threads"),
        "peak_mb": train["vmhwm_kb"] / 1024,
        "peak_how": "VmHWM of the backend that trained (fresh connection), /proc/<pg_backend_pid()>/status",
        "backend_start_mb": train["start_vmhwm_kb"] / 1024,
        "rss_anon_after_mb": train["rss_anon_kb"] / 1024,
        "rss_shmem_after_mb": train["rss_shmem_kb"] / 1024,
        "model_bytes": train["model_bytes"],
        "train_images_per_second": rows * epochs / core_secs,
        "infer_images_per_second": ev["result"]["rows"] / ev["seconds"],
        "eval_seconds": ev["seconds"],
        "load_seconds": load.get("load_seconds") if load else None,
    }


def python_figures(raw):
    """The normalised figures of torch_bench.py's JSON (PyTorch or TensorFlow)."""
    if raw is None:
        return {"installed": False, "reason": "not run"}
    if not raw.get("installed"):
        return raw
    f = dict(raw)
    f["training_seconds_note"] = "the epoch loops (data already in memory as tensors)"
    f["epoch_seconds"] = [h["seconds"] for h in raw["history"]]
    f["peak_how"] = "ru_maxrss of the Python process (peak over load, training and inference)"
    return f


def target_rows(fw, scaling):
    """The issue's four targets, each with PASS/MISS/n/a, the measured value and ratio."""
    m, t = fw["mlcnn"], fw.get("pytorch", {})
    have_t = t.get("installed", False)
    out = []

    if have_t:
        ratio = m["seconds_per_epoch"] / t["seconds_per_epoch"]
        out.append({"target": "mlcnn seconds/epoch <= 1/3 of PyTorch's",
                    "status": "PASS" if ratio <= TARGET_SPEED else "MISS",
                    "measured": "%.2f s vs %.2f s" % (m["seconds_per_epoch"], t["seconds_per_epoch"]),
                    "ratio": ratio, "ratio_text": "%.2fx PyTorch's (target <= 0.33x)" % ratio})
    else:
        out.append({"target": "mlcnn seconds/epoch <= 1/3 of PyTorch's", "status": "n/a",
                    "measured": "PyTorch not measured", "ratio": None, "ratio_text": ""})

    ms = m["predict100_single_seconds"] * 1000
    out.append({"target": "100 single-row predictions from SQL <= 10 ms",
                "status": "PASS" if ms <= TARGET_PREDICT_MS else "MISS",
                "measured": "%.2f ms" % ms, "ratio": ms / TARGET_PREDICT_MS,
                "ratio_text": "%.2fx the target" % (ms / TARGET_PREDICT_MS)})

    mem, src = None, None
    if m["train_rows"] == TARGET_MEMORY_ROWS:
        mem, src = m["peak_mb"], "this run, %d epoch(s)" % m["epochs"]
    elif scaling:
        for p in scaling["points"]:
            if p["rows"] == TARGET_MEMORY_ROWS:
                mem, src = p["peak_mb"], "scaling run of %s (Fashion-MNIST, 1 epoch)" % (
                    (scaling.get("machine") or {}).get("date", "?"))
    if mem is not None:
        out.append({"target": "mlcnn backend peak memory training on 60,000 rows <= 150 MB",
                    "status": "PASS" if mem <= TARGET_MEMORY_MB else "MISS",
                    "measured": "%.1f MB (%s)" % (mem, src), "ratio": mem / TARGET_MEMORY_MB,
                    "ratio_text": "%.2fx the target" % (mem / TARGET_MEMORY_MB)})
    else:
        out.append({"target": "mlcnn backend peak memory training on 60,000 rows <= 150 MB",
                    "status": "n/a",
                    "measured": "not measured at 60,000 rows (this run: %d rows; %s)"
                    % (m["train_rows"], "the scaling run has no 60,000-row point" if scaling
                       else "no scaling run"), "ratio": None, "ratio_text": ""})

    if have_t:
        diff = (m["test_accuracy"] - t["test_accuracy"]) * 100
        out.append({"target": "accuracy within 0.3 points of PyTorch's (same epochs)",
                    "status": "PASS" if diff >= -TARGET_ACCURACY_PTS else "MISS",
                    "measured": "%.2f%% vs %.2f%%" % (m["test_accuracy"] * 100, t["test_accuracy"] * 100),
                    "ratio": diff, "ratio_text": "%+.2f points" % diff})
    else:
        out.append({"target": "accuracy within 0.3 points of PyTorch's (same epochs)", "status": "n/a",
                    "measured": "PyTorch not measured", "ratio": None, "ratio_text": ""})
    return out


# ------------------------------------------------------------------ Markdown

def fmt(v, f):
    """v formatted with f, or an em dash for None."""
    return "—" if v is None else f % v


def dataset_title(ds):
    """Display name of a data set."""
    return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(ds, ds)


def write_markdown(path, ds, doc):
    """The Markdown report of one data set."""
    fw, mach, st = doc["frameworks"], doc["machine"], doc["settings"]
    m = fw["mlcnn"]
    L = []
    L.append("# %s: mlcnn vs PyTorch%s" % (dataset_title(ds),
             " vs TensorFlow" if fw["tensorflow"].get("installed") else ""))
    L.append("")
    L.append("Measured %s on %s (%s cores), one framework at a time. "
             "The reference CNN `%s` (%s parameters), %d epoch(s), batch %d, Adam, learning rate %g "
             "(constant), pixels scaled to [0, 1], %d thread(s) each; %d training rows, %d test rows%s."
             % (mach.get("date", "?"), mach.get("cpu_model", "?"), mach.get("cores", "?"),
                st["layers"], "{:,}".format(m["parameters"]) if m.get("parameters") else "?", m["epochs"],
                st["batch_size"], st["learning_rate"], st["threads"], m["train_rows"], m["test_rows"],
                " (capped by BENCH_TRAIN_ROWS)" if st.get("train_rows_cap") else ""))
    load = mach.get("loadavg_at_start")
    end = doc.get("loadavg_at_report")
    if (load and load[0] > 0.5) or (end and end[1] > 0.5 + (mach.get("cores") or 2)):
        L.append("")
        L.append("**Note:** load average %s at the start, %s (1 and 5 minutes) at the report: other "
                 "work shared the CPU, so the timings are noisy."
                 % ("%.2f" % load[0] if load else "?",
                    "%.2f / %.2f" % (end[0], end[1]) if end else "?"))
    L.append("")
    L.append("## This machine")
    L.append("")
    L.append("| framework | training time (s) | s/epoch | accuracy (%) | predict 100, one row at a time (s) "
             "| predict 100, one batch (s) | peak memory (MB) | training images/s | inference images/s |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in ("mlcnn", "pytorch", "tensorflow"):
        f = fw[key]
        if not f.get("installed"):
            L.append("| %s | not installed | | | | | | | |" % NAMES[key])
            continue
        L.append("| %s | %.1f | %.2f | %.2f | %.4f | %.4f | %.0f | %.0f | %.0f |" % (
            NAMES[key], f["training_seconds"], f["seconds_per_epoch"], f["test_accuracy"] * 100,
            f["predict100_single_seconds"], f["predict100_batch_seconds"], f["peak_mb"],
            f["train_images_per_second"], f["infer_images_per_second"]))
    cv = fw.get("opencv", {})
    if cv.get("installed"):
        L.append("| %s | — (runs mlcnn's model) | — | %.2f | %.4f | %.4f | %.0f | — | %.0f |" % (
            NAMES["opencv"], cv["test_accuracy"] * 100, cv["predict100_single_seconds"],
            cv["predict100_batch_seconds"], cv["peak_mb"], cv["infer_images_per_second"]))
    L.append("")
    L.append("- training time: mlcnn, the `train_conv2d` statement timed in the server (table scan, "
             "buffering and training; the epochs alone took %.1f s); PyTorch/TensorFlow, the epoch loops "
             "with the data already in memory. s/epoch: the epochs alone, for every framework."
             % m["core_training_seconds"])
    L.append("- predict 100, one row at a time: mlcnn, `SELECT predict(m.model, t.pixels) FROM "
             "(SELECT pixels FROM test ORDER BY id LIMIT 100) t, models m` timed inside the server "
             "(clock_timestamp() around EXECUTE in PL/pgSQL, no client start-up); PyTorch, 100 calls "
             "`model(x[i:i+1])` under `torch.no_grad()`. One batch: mlcnn, `evaluate()` over the same 100 "
             "rows (it batches internally); PyTorch, `model(x[:100])`. Medians of %d runs after a warm-up, "
             "%d thread(s) (`mlcnn.threads`, `torch.set_num_threads`)."
             % (st["repeats"], st.get("predict_threads", 0)))
    L.append("- peak memory: mlcnn, VmHWM of the backend that trained (a fresh connection; %.0f MB right "
             "after connecting); Python, ru_maxrss of its process (libraries, data, training, inference)."
             % m["backend_start_mb"])
    L.append("- inference images/s: the whole test set (mlcnn `evaluate()`, PyTorch batches of 1,000).")
    if cv.get("installed"):
        L.append("- OpenCV %s: `cv2.dnn.readNetFromONNX` on `model_to_onnx` of the model mlcnn trained "
                 "(%d bytes), raw pixels in, batches of 1,000 for the test set, `net.forward()` per row or "
                 "for the 100 rows at once, %d thread(s) (`cv2.setNumThreads`); peak memory: ru_maxrss of "
                 "its process (bench/opencv_bench.py)." % (cv["version"], cv["onnx_bytes"], cv["threads"]))
    cpu = []
    for key in ("mlcnn", "pytorch", "tensorflow"):
        f = fw[key]
        if f.get("installed") and f.get("training_cpu_seconds") is not None:
            cpu.append("%s %.1f CPU s in %.1f s (%.1f cores busy)" % (
                NAMES[key], f["training_cpu_seconds"], f["training_seconds"],
                f["training_cpu_seconds"] / f["training_seconds"]))
    if cpu:
        L.append("- CPU used while training: %s. Fewer cores busy than threads means the process "
                 "waited for the CPU (other work) or for memory." % "; ".join(cpu))
    L.append("")
    L.append("## Published figures (the paper, MNIST, other hardware: Google Colab)")
    L.append("")
    L.append("Not measured here: different hardware, the full 60,000-row MNIST training set and the "
             "paper's own epochs. Shown for the layout only; compare ratios, not seconds.")
    L.append("")
    L.append("| framework | training time (s) | accuracy (%) | time to predict 100 samples (s) | peak memory (MB) |")
    L.append("|---|---:|---:|---:|---:|")
    for p in PUBLISHED:
        L.append("| %s (published, Colab %s) | %s | %s | %s | %s |" % (
            p["framework"], p["device"], fmt(p["training_seconds"], "%.2f"),
            fmt(p["accuracy_pct"], "%.2f"), fmt(p["predict100_seconds"], "%.3f"), fmt(p["peak_mb"], "%d")))
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | result | measured | ratio |")
    L.append("|---|---|---|---|")
    for t in doc["targets"]:
        L.append("| %s | **%s** | %s | %s |" % (t["target"], t["status"], t["measured"], t["ratio_text"]))
    L.append("")
    L.append("## Machine")
    L.append("")
    ob = mach.get("openblas", {})
    L.append("- CPU: %s, %s cores (%s usable), %s GB memory; %s, kernel %s"
             % (mach.get("cpu_model"), mach.get("cores"), mach.get("cores_usable"),
                mach.get("memory_gb"), mach.get("os"), mach.get("kernel")))
    L.append("- PostgreSQL: %s" % mach.get("postgresql"))
    L.append("- OpenBLAS: %s; %s; kernel %s (server environment: %s)"
             % (", ".join(ob.get("debian_packages") or []) or "?", ob.get("config", "?"),
                ob.get("core_in_bench_env", "?"), mach.get("openblas_env_server") or "no OPENBLAS_ variables"))
    t = fw["pytorch"]
    if t.get("installed"):
        L.append("- PyTorch %s (Debian python3-torch, CPU), Python %s, NumPy %s; its OpenBLAS kernel %s, "
                 "OPENBLAS_NUM_THREADS=%s (PyTorch's own %s OpenMP threads do the parallel work), "
                 "OMP_WAIT_POLICY=%s"
                 % (t.get("version"), t.get("python"), t.get("numpy"),
                    (t.get("openblas") or {}).get("core", "?"),
                    (t.get("env") or {}).get("OPENBLAS_NUM_THREADS"), t.get("threads"),
                    (t.get("env") or {}).get("OMP_WAIT_POLICY") or "unset"))
    tf = fw["tensorflow"]
    L.append("- TensorFlow: %s" % (tf.get("version") if tf.get("installed") else
                                  "not installed (%s)" % tf.get("reason", "")))
    if mach.get("git_commit"):
        L.append("- mlcnn commit %s" % mach["git_commit"])
    L.append("")
    L.append("Every figure: `%s.json`; chart: `%s.png`; raw measurements: `raw/`." % (ds, ds))
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


# ------------------------------------------------------------------ charts

def bar_labels(ax, bars, fmtstr):
    """Write each bar's value above it."""
    for b in bars:
        h = b.get_height()
        ax.annotate(fmtstr % h, (b.get_x() + b.get_width() / 2, h), ha="center", va="bottom",
                    fontsize=8, xytext=(0, 2), textcoords="offset points")


def write_chart(path, ds, doc):
    """A 2x2 PNG: training s/epoch, accuracy, predicting 100 samples, peak memory."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fw = doc["frameworks"]
    keys = [k for k in ("mlcnn", "pytorch", "tensorflow") if fw[k].get("installed")]
    names = [NAMES[k] for k in keys]
    colors = [COLORS[k] for k in keys]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    fig.suptitle("%s, %d training rows, %d epoch(s), %d thread(s) (%d for inference), measured on this machine"
                 % (dataset_title(ds), fw["mlcnn"]["train_rows"], fw["mlcnn"]["epochs"],
                    doc["settings"]["threads"], doc["settings"].get("predict_threads", 0)), fontsize=12)

    ax = axes[0][0]
    b = ax.bar(names, [fw[k]["seconds_per_epoch"] for k in keys], color=colors)
    bar_labels(ax, b, "%.2f")
    ax.set_title("training: seconds per epoch (lower is better)")
    ax.set_ylabel("s")

    ax = axes[0][1]
    acc = [fw[k]["test_accuracy"] * 100 for k in keys]
    b = ax.bar(names, acc, color=colors)
    bar_labels(ax, b, "%.2f")
    lo = max(0.0, min(acc) - 5)
    ax.set_ylim(lo, min(100.0, max(acc) + (100 - lo) * 0.08 + 0.5))
    ax.set_title("test accuracy (higher is better)")
    ax.set_ylabel("%")

    ax = axes[1][0]
    w = 0.38
    xs = list(range(len(keys)))
    b1 = ax.bar([x - w / 2 for x in xs], [fw[k]["predict100_single_seconds"] * 1000 for k in keys],
                w, color=colors, label="100 single-row calls")
    b2 = ax.bar([x + w / 2 for x in xs], [fw[k]["predict100_batch_seconds"] * 1000 for k in keys],
                w, color=colors, alpha=0.45, hatch="//", label="one batch of 100")
    bar_labels(ax, b1, "%.1f")
    bar_labels(ax, b2, "%.1f")
    ax.set_yscale("log")
    vals = [b.get_height() for b in list(b1) + list(b2)] + [TARGET_PREDICT_MS]
    ax.set_ylim(min(vals) / 3, max(vals) * 4)
    lo, hi = min(vals) / 3, max(vals) * 4
    ax.axhline(TARGET_PREDICT_MS, color="gray", ls="--", lw=1,
               label="target: mlcnn 100 single-row, 10 ms")
    ticks = [m * 10 ** e for e in range(-2, 6) for m in (1, 2, 5)]
    ax.set_yticks([t for t in ticks if lo <= t <= hi])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "%g" % v))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(xs)
    ax.set_xticklabels(names)
    ax.set_title("time to predict 100 samples, log scale (lower is better)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1][1]
    b = ax.bar(names, [fw[k]["peak_mb"] for k in keys], color=colors)
    bar_labels(ax, b, "%.0f")
    ax.set_title("peak memory (lower is better)")
    ax.set_ylabel("MB")

    for row in axes:
        for ax in row:
            if ax.get_yscale() == "linear":
                ymin, ymax = ax.get_ylim()
                ax.set_ylim(ymin, ymax + (ymax - ymin) * 0.08)
            ax.grid(axis="y", alpha=0.3)
    fig.text(0.5, 0.01, "mlcnn peak: VmHWM of the PostgreSQL backend that trained; Python: ru_maxrss "
             "of the process. mlcnn batch: evaluate() over 100 rows.", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ scaling

def linear_fit(xs, ys):
    """Least squares y = a + b x: (a, b, r2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss = sum((y - my) ** 2 for y in ys)
    res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, (1 - res / ss) if ss else 1.0


def scaling_doc(raw_dir, machine, settings):
    """The scaling figures from raw/scaling-*.json, or None when there are none."""
    pts = []
    for p in glob.glob(os.path.join(raw_dir, "scaling-*.json")):
        r = load_json(p)
        if r is None or "model_info" not in r:
            continue
        hist = r["model_info"]["history"]
        pts.append({"rows": r["rows"], "seconds_per_epoch": hist[0]["seconds"],
                    "wall_seconds": r["wall_seconds"], "peak_mb": r["vmhwm_kb"] / 1024,
                    "backend_start_mb": r["start_vmhwm_kb"] / 1024,
                    "rss_anon_after_mb": r["rss_anon_kb"] / 1024,
                    "rss_shmem_after_mb": r["rss_shmem_kb"] / 1024,
                    "private_peak_mb": (r["vmhwm_kb"] - r["rss_shmem_kb"]) / 1024,
                    "data_mb": r["rows"] * PIXELS / 2 ** 20,
                    "threads": r["options"].get("threads")})
    if not pts:
        return None
    pts.sort(key=lambda p: p["rows"])
    doc = {"dataset": "fashion-mnist", "machine": machine, "settings": settings, "points": pts}
    if len(pts) >= 2:
        xs = [p["rows"] for p in pts]
        a, b, r2 = linear_fit(xs, [p["seconds_per_epoch"] for p in pts])
        doc["time_fit"] = {"intercept_seconds": a, "seconds_per_1000_rows": b * 1000, "r2": r2}
        a, b, r2 = linear_fit(xs, [p["peak_mb"] for p in pts])
        doc["memory_fit"] = {"intercept_mb": a, "bytes_per_row": b * 2 ** 20, "r2": r2,
                             "bytes_per_row_over_pixels": b * 2 ** 20 / PIXELS}
        a, b, r2 = linear_fit(xs, [p["private_peak_mb"] for p in pts])
        doc["private_memory_fit"] = {"intercept_mb": a, "bytes_per_row": b * 2 ** 20, "r2": r2,
                                     "bytes_per_row_over_pixels": b * 2 ** 20 / PIXELS}
    return doc


def write_scaling(out_dir, doc):
    """scaling.json, scaling.md and scaling.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(out_dir, "scaling.json"), "w") as f:
        json.dump(doc, f, indent=1)
    pts = doc["points"]
    L = ["# Scaling: mlcnn training cost and memory against rows (Fashion-MNIST)", ""]
    L.append("One epoch of the reference CNN per size (batch 64, Adam, %s thread(s)), each in a fresh "
             "connection; rows beyond 60,000 repeat the training set. Peak = VmHWM of the backend "
             "(the issue's measure); shared = its RssShmem after training: the pages of shared memory "
             "it touched (shared buffers holding the table among them), which count in VmHWM too; "
             "PostgreSQL reads a table larger than a quarter of shared_buffers through a small ring, "
             "so with the default 128 MB that part stops growing above about 40,000 rows. Private = peak − shared. "
             "Data = rows x %d pixel bytes. Measured %s on %s."
             % (pts[0]["threads"], PIXELS, doc["machine"].get("date"), doc["machine"].get("cpu_model")))
    L.append("")
    L.append("| rows | s/epoch | s per 1,000 rows | statement (s) | peak memory (MB) | shared (MB) "
             "| private peak (MB) | data (MB) | private − data (MB) |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in pts:
        L.append("| %s | %.2f | %.3f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
            "{:,}".format(p["rows"]), p["seconds_per_epoch"], p["seconds_per_epoch"] / p["rows"] * 1000,
            p["wall_seconds"], p["peak_mb"], p["rss_shmem_after_mb"], p["private_peak_mb"],
            p["data_mb"], p["private_peak_mb"] - p["data_mb"]))
    L.append("")
    if "time_fit" in doc:
        tf, mf, pf = doc["time_fit"], doc["memory_fit"], doc["private_memory_fit"]
        L.append("- time: s/epoch = %.2f + %.3f per 1,000 rows (R² %.4f)"
                 % (tf["intercept_seconds"], tf["seconds_per_1000_rows"], tf["r2"]))
        L.append("- memory (VmHWM): peak = %.1f MB + %.0f bytes per row (R² %.4f); %.2f times the %d "
                 "pixel bytes of a row" % (mf["intercept_mb"], mf["bytes_per_row"], mf["r2"],
                                           mf["bytes_per_row_over_pixels"], PIXELS))
        L.append("- memory (private): peak − shared = %.1f MB + %.0f bytes per row (R² %.4f); %.2f times "
                 "the %d pixel bytes of a row" % (pf["intercept_mb"], pf["bytes_per_row"], pf["r2"],
                                                  pf["bytes_per_row_over_pixels"], PIXELS))
    for p in pts:
        if p["rows"] == TARGET_MEMORY_ROWS:
            L.append("- target: backend peak training on 60,000 rows <= 150 MB: **%s** (%.1f MB, %.2fx)"
                     % ("PASS" if p["peak_mb"] <= TARGET_MEMORY_MB else "MISS", p["peak_mb"],
                        p["peak_mb"] / TARGET_MEMORY_MB))
    L.append("")
    L.append("Chart: `scaling.png`; figures: `scaling.json`.")
    with open(os.path.join(out_dir, "scaling.md"), "w") as f:
        f.write("\n".join(L) + "\n")

    xs = [p["rows"] for p in pts]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    ax.plot(xs, [p["seconds_per_epoch"] for p in pts], "o-", color=COLORS["mlcnn"], label="measured")
    if "time_fit" in doc:
        tf = doc["time_fit"]
        ax.plot([0, max(xs)], [tf["intercept_seconds"], tf["intercept_seconds"] +
                               tf["seconds_per_1000_rows"] * max(xs) / 1000], "--", color="gray",
                label="linear fit (R² %.3f)" % tf["r2"])
    ax.set_title("mlcnn: seconds per epoch")
    ax.set_xlabel("training rows")
    ax.set_ylabel("s")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(xs, [p["peak_mb"] for p in pts], "o-", color=COLORS["mlcnn"], label="backend peak (VmHWM)")
    ax.plot(xs, [p["private_peak_mb"] for p in pts], "^-", color="#2ca02c",
            label="private: VmHWM − RssShmem")
    ax.plot(xs, [p["data_mb"] for p in pts], "s--", color="gray", label="data (rows x 784 B)")
    ax.axhline(TARGET_MEMORY_MB, color="red", ls=":", lw=1)
    ax.annotate("target at 60k rows: 150 MB", (0, TARGET_MEMORY_MB), fontsize=7, color="red",
                va="bottom")
    ax.set_title("mlcnn: backend peak memory")
    ax.set_xlabel("training rows")
    ax.set_ylabel("MB")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle("Fashion-MNIST, 1 epoch per size, %s thread(s)" % pts[0]["threads"])
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "scaling.png"), dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ report

def write_resnet(raw, out_dir, machine):
    """resnet.{json,md}: the ResNet-style network, mlcnn beside PyTorch, with the issue's targets."""
    train = load_json(os.path.join(raw, "resnet-mlcnn-train.json"))
    infer = load_json(os.path.join(raw, "resnet-mlcnn-infer.json"))
    torch = load_json(os.path.join(raw, "resnet-pytorch.json"))
    if train is None or infer is None or torch is None or not torch.get("installed"):
        print("report.py: resnet: measurements missing in %s; skipped" % raw, file=sys.stderr)
        return
    info = train["model_info"]
    hist = info["history"]
    m_epoch = sum(h["seconds"] for h in hist) / len(hist)
    m_acc = infer["evaluate"]["result"]["accuracy"]
    t_epoch = torch["seconds_per_epoch"]
    t_acc = torch["test_accuracy"]
    doc = {
        "network": info["layers"], "epochs": len(hist), "parameters": info.get("parameters"),
        "mlcnn": {"seconds_per_epoch": m_epoch, "test_accuracy": m_acc, "peak_mb": train["vmhwm_kb"] / 1024,
                  "epoch_seconds": [h["seconds"] for h in hist]},
        "pytorch": {"seconds_per_epoch": t_epoch, "test_accuracy": t_acc, "peak_mb": torch["peak_mb"],
                    "parameters": torch.get("parameters"), "env": torch.get("env"),
                    "epoch_seconds": [h["seconds"] for h in torch["history"]]},
        "targets": {
            "epoch_ratio": m_epoch / t_epoch, "epoch_target": 0.5,
            "epoch_pass": m_epoch <= 0.5 * t_epoch,
            "accuracy_gap_points": 100 * (m_acc - t_acc), "accuracy_pass": m_acc >= t_acc - 0.005,
        },
        "machine": machine,
    }
    with open(os.path.join(out_dir, "resnet.json"), "w") as f:
        json.dump(doc, f, indent=1)
    tg = doc["targets"]
    lines = [
        "# The ResNet-style network on Fashion-MNIST: mlcnn and PyTorch",
        "",
        "`%s`, %s parameters (PyTorch: %s), %d epochs, batch 64, Adam 1e-3 constant, 60,000 rows."
        % (doc["network"], doc["parameters"], doc["pytorch"]["parameters"], doc["epochs"]),
        "",
        "| | seconds per epoch | test accuracy | peak memory |",
        "|---|---:|---:|---:|",
        "| mlcnn | %.2f | %.4f | %.0f MB |" % (m_epoch, m_acc, doc["mlcnn"]["peak_mb"]),
        "| PyTorch | %.2f | %.4f | %.0f MB |" % (t_epoch, t_acc, doc["pytorch"]["peak_mb"]),
        "",
        "Targets: an epoch in at most 0.5x PyTorch's time: **%s** (%.2fx); accuracy at least PyTorch's"
        " minus 0.5 points: **%s** (%+.2f points)."
        % ("met" if tg["epoch_pass"] else "missed", tg["epoch_ratio"],
           "met" if tg["accuracy_pass"] else "missed", tg["accuracy_gap_points"]),
        "",
    ]
    with open(os.path.join(out_dir, "resnet.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def write_tune(raw, out_dir, machine):
    """tune.{json,md}: tune_conv2d's grid beside successive halving over the same space."""
    grid = load_json(os.path.join(raw, "tune-grid.json"))
    halving = load_json(os.path.join(raw, "tune-halving.json"))
    if grid is None or halving is None:
        print("report.py: tune: measurements missing in %s; skipped" % raw, file=sys.stderr)
        return

    def best(doc):
        t = doc["tuning"]
        return t["trials"][t["winner"] - 1]

    def epochs(doc):
        return sum(tr["epochs"] for tr in doc["tuning"]["trials"])

    ratio = halving["seconds"] / grid["seconds"]
    gap = 100 * (halving["test"]["accuracy"] - grid["test"]["accuracy"])
    doc = {"dataset": grid["dataset"], "layers": grid["layers"], "grid": grid, "halving": halving,
           "targets": {"time_ratio": ratio, "time_target": 0.6, "time_pass": ratio <= 0.6,
                       "accuracy_gap_points": gap, "accuracy_pass": gap >= -0.5},
           "machine": machine}
    with open(os.path.join(out_dir, "tune.json"), "w") as f:
        json.dump(doc, f, indent=1)
    lines = [
        "# Model selection: tune_conv2d's grid and successive halving",
        "",
        "%s, the first 10,000 training rows (10%% held out), the reference CNN, Adam; the space:"
        " learning_rate 0.0003, 0.001, 0.003 x batch_size 32, 64 (6 trials); grid trials train %d epochs,"
        " halving (eta 2) starts every trial at 1 epoch." % (doc["dataset"], best(grid)["epochs"]),
        "",
        "| strategy | seconds | epochs trained | best trial | its validation accuracy | test accuracy (10,000 rows) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, d in (("grid", grid), ("halving", halving)):
        b = best(d)
        lines.append("| %s | %.1f | %d | %s | %.4f | %.4f |" % (
            name, d["seconds"], epochs(d), json.dumps(b["options"], sort_keys=True),
            b["validation_accuracy"], d["test"]["accuracy"]))
    lines += [
        "",
        "Targets: halving in at most 0.6x the grid's time: **%s** (%.2fx); its best model's test accuracy"
        " within 0.5 points of the grid's: **%s** (%+.2f points)."
        % ("met" if doc["targets"]["time_pass"] else "missed", ratio,
           "met" if doc["targets"]["accuracy_pass"] else "missed", gap),
        "",
    ]
    with open(os.path.join(out_dir, "tune.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def write_dist(raw, out_dir, machine):
    """dist.{json,md}: train_distributed on two shard servers beside train_conv2d on one."""
    shards = load_json(os.path.join(raw, "dist-shards.json"))
    one = load_json(os.path.join(raw, "dist-one.json"))
    if shards is None or one is None:
        print("report.py: dist: measurements missing in %s; skipped" % raw, file=sys.stderr)
        return
    rounds = shards["distributed"]["rounds"]
    nshards = shards["distributed"]["shards"]
    per_round = [r["seconds"] for r in rounds]
    bytes_round = 2 * shards["model_bytes"] * nshards
    doc = {"shards": shards, "one": one, "per_round_seconds": per_round,
           "bytes_per_round": bytes_round, "machine": machine}
    with open(os.path.join(out_dir, "dist.json"), "w") as f:
        json.dump(doc, f, indent=1)
    n = len(rounds)
    lines = [
        "# Training across servers: train_distributed on two shards beside train_conv2d on one server",
        "",
        "Fashion-MNIST, the reference CNN, Adam 1e-3, batch 64; the shards are two local clusters holding"
        " 30,000 rows each, reached through postgres_fdw foreign partitions (async), one thread each; the one"
        " server trains on the 60,000 with the machine's threads.",
        "",
        "| | seconds | per round (epoch) | bytes crossing per round | test accuracy |",
        "|---|---:|---:|---:|---:|",
        "| one server, %d epochs | %.1f | %.1f | 0 | %.4f |" % (n, one["seconds"], one["seconds"] / n, one["test"]["accuracy"]),
        "| 2 shards, %d rounds of 1 epoch | %.1f | %.1f (median) | %d (2 x %d x %d) | %.4f |" % (
            n, shards["seconds"], median(per_round), bytes_round, shards["model_bytes"], nshards,
            shards["test"]["accuracy"]),
        "",
        "Projection to N machines: bytes per round = 2 x model size x N (%.1f MB per shard); compute per shard ="
        " rows / N, so a round takes about (one server's epoch) / N plus the models' transfer." % (
            2 * shards["model_bytes"] / 1e6),
        "",
    ]
    with open(os.path.join(out_dir, "dist.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def cmd_report(args):
    """Write every report that the raw measurements allow."""
    raw = os.path.join(args.results, "raw")
    machine = load_json(os.path.join(raw, "machine.json")) or {}
    settings = load_json(os.path.join(raw, "settings.json")) or {}
    scaling = scaling_doc(raw, machine, settings) if args.scaling else None
    if scaling is None:
        scaling = load_json(os.path.join(args.results, "scaling.json"))
    elif args.scaling:
        write_scaling(args.results, scaling)
        print(open(os.path.join(args.results, "scaling.md")).read())

    for ds in args.datasets or []:
        train = load_json(os.path.join(raw, ds + "-mlcnn-train.json"))
        infer = load_json(os.path.join(raw, ds + "-mlcnn-infer.json"))
        if train is None or infer is None:
            print("report.py: %s: no mlcnn measurements in %s; skipped" % (ds, raw), file=sys.stderr)
            continue
        fw = {
            "mlcnn": mlcnn_figures(train, infer, load_json(os.path.join(raw, ds + "-load.json"))),
            "pytorch": python_figures(load_json(os.path.join(raw, ds + "-pytorch.json"))),
            "tensorflow": python_figures(load_json(os.path.join(raw, ds + "-tensorflow.json"))),
            "opencv": load_json(os.path.join(raw, ds + "-opencv.json")) or {"installed": False, "reason": "not run"},
        }
        doc = {"dataset": ds, "machine": machine, "settings": settings, "frameworks": fw,
               "loadavg_at_report": loadavg(),
               "published": {"source": "the paper; other hardware (Google Colab); MNIST",
                             "rows": PUBLISHED}}
        doc["targets"] = target_rows(fw, scaling)
        with open(os.path.join(args.results, ds + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
        write_markdown(os.path.join(args.results, ds + ".md"), ds, doc)
        write_chart(os.path.join(args.results, ds + ".png"), ds, doc)
        print(open(os.path.join(args.results, ds + ".md")).read())
    if args.resnet:
        write_resnet(raw, args.results, machine)
    if args.tune:
        write_tune(raw, args.results, machine)
    if args.dist:
        write_dist(raw, args.results, machine)
    print("report.py: wrote %s" % args.results)
    return 0


def main():
    """Dispatch the subcommand."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("machine")
    m.add_argument("--out", required=True)
    m.add_argument("--module", required=True, help="mlcnn.so, to find its OpenBLAS")
    m.add_argument("--pg-version", default=None)
    m.add_argument("--postmaster-pid", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--datasets", nargs="*")
    r.add_argument("--scaling", action="store_true")
    r.add_argument("--resnet", action="store_true")
    r.add_argument("--tune", action="store_true")
    r.add_argument("--dist", action="store_true")
    args = ap.parse_args()
    return cmd_machine(args) if args.cmd == "machine" else cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
