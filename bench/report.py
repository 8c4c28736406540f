#!/usr/bin/python3
"""report.py: tables and charts of `make bench` (bench/run.sh calls it).

    report.py machine --out raw/machine.json --module PATH/mlcnn.so \
        --pg-version TEXT [--postmaster-pid PID]
        facts about this machine and its software, as JSON

    report.py kernel --name SETTING --out raw/kernel-SETTING.json \
        --module PATH/mlcnn.so [--postmaster-pid PID]
        the OpenBLAS facts of one setting: run.sh runs it in the setting's
        environment, so the kernel it reports (openblas_get_corename of the
        module's OpenBLAS) is the one mlcnn's backends and nn_bench get there;
        with the postmaster's pid, also the server's OPENBLAS_ variables

    report.py report --results DIR [--datasets mnist fashion-mnist] [--scaling]
                     [--resnet] [--tune] [--dist] [--profile]
        reads DIR/raw/*.json (what run.sh measured) and writes, per data set,
        DIR/<dataset>.json (every figure), DIR/<dataset>.md (the table in the
        paper's layout with tiny-dnn and dlib, the reference comparison in each
        OpenBLAS setting, the published figures, issue 16's targets, the
        kernels and libraries of each side) and DIR/<dataset>.png; with
        --scaling also DIR/scaling.{json,md,png}; with --profile
        DIR/profile.{json,md} (nn_bench's per-layer table in each setting)

Raw file names: <ds>-<what>.json is the run in the machine's environment;
<ds>@<setting>-<what>.json the reference comparison's other OpenBLAS setting
(raw/kernels.json names them).

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

# the targets of issue 16 ("speed to the limit")
TARGET_SPEED = 0.33            # mlcnn s/epoch <= this times PyTorch's (judged in the lifted setting)
TARGET_SPEED_STRETCH = 0.25    # its stretch goal
TARGET_PREDICT_MS = 6.0        # 100 single-row predict() calls from SQL, warm session
TARGET_EVAL_IPS = 30000.0      # evaluate() over the 10,000-row test set, images/s (at least)
TARGET_FIRST_MS = 25.0         # a new session's first prediction query (under)
TARGET_MEMORY_MB = 135.0       # backend peak training on 60,000 rows
GOAL_MEMORY_MB = 120.0         # its goal
TARGET_MEMORY_ROWS = 60000
TARGET_ACCURACY_PTS = 0.3      # the earlier issue's: mlcnn at most this many points below PyTorch

NAMES = {"mlcnn": "mlcnn (SQL)", "pytorch": "PyTorch", "tensorflow": "TensorFlow/Keras",
         "tinydnn": "tiny-dnn", "dlib": "dlib DNN", "opencv": "OpenCV dnn (mlcnn's ONNX export)"}
COLORS = {"mlcnn": "#1f77b4", "pytorch": "#ee4c2c", "tensorflow": "#ff9f00", "tinydnn": "#8c564b",
          "dlib": "#9467bd", "opencv": "#2ca02c"}


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


def mlcnn_figures(train, infer, load, first=None):
    """The normalised figures of mlcnn from run.sh's raw JSON (first: the fresh sessions' first query)."""
    info = train["model_info"]
    hist = info["history"]
    epochs = len(hist)
    core_secs = sum(h["seconds"] for h in hist)
    rows = train["rows"]
    ev = infer["evaluate"]
    f = {
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
    if first and first.get("query_ms"):
        f["first_query_ms"] = median(first["query_ms"])
        f["first_query_runs_ms"] = first["query_ms"]
        f["first_query_psql_wall_ms"] = median(first.get("psql_wall_ms") or [])
        f["first_query_psql_wall_runs_ms"] = first.get("psql_wall_ms")
        f["first_query_how"] = first.get("how")
        f["first_query"] = first.get("query")
    return f


def python_figures(raw, peak_how="ru_maxrss of the Python process (peak over load, training and inference)"):
    """The normalised figures of torch_bench.py's JSON (PyTorch or TensorFlow), or of
    tinydnn_bench/dlib_bench's (the same fields)."""
    if raw is None:
        return {"installed": False, "reason": "not run"}
    if not raw.get("installed"):
        return raw
    f = dict(raw)
    f["training_seconds_note"] = "the epoch loops (data already in memory)"
    f["epoch_seconds"] = [h["seconds"] for h in raw["history"]]
    f["peak_how"] = peak_how
    return f


def cxx_figures(raw):
    """The normalised figures of a C++ framework's JSON (tiny-dnn, dlib)."""
    return python_figures(raw, "ru_maxrss of the program (peak over load, training and inference)")


# ------------------------------------------------------------------ kernel settings

def kernel_settings(raw):
    """raw/kernels.json: the OpenBLAS settings of the reference comparison (run.sh
    writes it), with defaults for results older than it."""
    k = load_json(os.path.join(raw, "kernels.json")) or {"recorded": False}
    k.setdefault("machine_setting", "machine")
    k.setdefault("identical", None)
    k.setdefault("extra", [])
    k.setdefault("comparison_dataset", "fashion-mnist")
    return k


def setting_label(kern, name):
    """How a setting is named in the tables."""
    if kern.get("identical"):
        return "pinned = lifted (no pin set)"
    return {"machine": "the machine's environment"}.get(name, name)


def env_text(env):
    """OPENBLAS_ variables as text ("none" when there are none)."""
    if env is None:
        return "?"
    items = ["%s=%s" % (k, v) for k, v in sorted(env.items()) if v is not None]
    return ", ".join(items) if items else "none"


def run_for(doc, name):
    """The run (its mlcnn and PyTorch keys) of setting name, or None; identical
    settings are one run."""
    for r in doc["runs"]:
        if r["setting"] == name or doc["kernels"].get("identical"):
            return r
    return None


# ------------------------------------------------------------------ targets

def target_rows(doc, scaling):
    """Issue 16's targets, each PASS/MISS/n/a with the measured value and ratio:
    judged in the lifted setting when it was measured (else the machine's), the
    other setting reported beside it."""
    fw, kern = doc["frameworks"], doc["kernels"]
    judged = run_for(doc, "lifted") or doc["runs"][0]
    others = [r for r in doc["runs"] if r is not judged]
    jl = setting_label(kern, judged["setting"])

    def also(key_fn, fmtstr):
        """The other settings' values, as text."""
        parts = []
        for r in others:
            v = key_fn(r)
            if v is not None:
                parts.append("%s: %s" % (setting_label(kern, r["setting"]), fmtstr % v))
        return ("; " + "; ".join(parts)) if parts else ""

    def fig(r, fwk, key):
        f = fw.get(r[fwk], {})
        return f.get(key) if f.get("installed") else None

    out = []
    name = "mlcnn s/epoch <= %.2fx PyTorch's (stretch %.2fx), in the lifted setting" % (
        TARGET_SPEED, TARGET_SPEED_STRETCH)

    def speed(r):
        m, t = fig(r, "mlcnn", "seconds_per_epoch"), fig(r, "pytorch", "seconds_per_epoch")
        return m / t if m and t else None
    ratio = speed(judged)
    if ratio is not None:
        out.append({"target": name, "setting": judged["setting"],
                    "status": ("PASS (stretch met)" if ratio <= TARGET_SPEED_STRETCH else
                               "PASS" if ratio <= TARGET_SPEED else "MISS"),
                    "measured": "%.2f s vs %.2f s (%s)%s" % (
                        fig(judged, "mlcnn", "seconds_per_epoch"), fig(judged, "pytorch", "seconds_per_epoch"), jl,
                        also(speed, "%.2fx")),
                    "ratio": ratio, "ratio_text": "%.2fx PyTorch's (target <= %.2fx, stretch <= %.2fx)" % (
                        ratio, TARGET_SPEED, TARGET_SPEED_STRETCH)})
    else:
        out.append({"target": name, "status": "n/a", "measured": "PyTorch not measured", "ratio": None,
                    "ratio_text": ""})

    def pred(r):
        v = fig(r, "mlcnn", "predict100_single_seconds")
        return v * 1000 if v is not None else None
    ms = pred(judged)
    out.append({"target": "100 single-row predict() calls from SQL, warm session <= %g ms" % TARGET_PREDICT_MS,
                "setting": judged["setting"], "status": "PASS" if ms <= TARGET_PREDICT_MS else "MISS",
                "measured": "%.2f ms (%s)%s" % (ms, jl, also(pred, "%.2f ms")), "ratio": ms / TARGET_PREDICT_MS,
                "ratio_text": "%.2fx the target" % (ms / TARGET_PREDICT_MS)})

    def ips(r):
        return fig(r, "mlcnn", "infer_images_per_second")
    v = ips(judged)
    rows = fw["mlcnn"]["test_rows"]
    out.append({"target": "evaluate() over the %s-row test set >= %s images/s" % (
                    "{:,}".format(rows), "{:,.0f}".format(TARGET_EVAL_IPS)),
                "setting": judged["setting"], "status": "PASS" if v >= TARGET_EVAL_IPS else "MISS",
                "measured": "%.0f images/s (%s)%s" % (v, jl, also(ips, "%.0f images/s")),
                "ratio": v / TARGET_EVAL_IPS, "ratio_text": "%.2fx the target (higher is better)" % (v / TARGET_EVAL_IPS)})

    def first(r):
        return fig(r, "mlcnn", "first_query_ms")
    v = first(judged)
    name = "a new session's first prediction query < %g ms" % TARGET_FIRST_MS
    if v is not None:
        out.append({"target": name, "setting": judged["setting"], "status": "PASS" if v < TARGET_FIRST_MS else "MISS",
                    "measured": "%.2f ms (%s; psql \\timing, median of %d fresh connections)%s" % (
                        v, jl, len(fw[judged["mlcnn"]]["first_query_runs_ms"]), also(first, "%.2f ms")),
                    "ratio": v / TARGET_FIRST_MS, "ratio_text": "%.2fx the target" % (v / TARGET_FIRST_MS)})
    else:
        out.append({"target": name, "status": "n/a", "measured": "not measured", "ratio": None, "ratio_text": ""})

    m = fw["mlcnn"]
    mem, src = None, None
    if m["train_rows"] == TARGET_MEMORY_ROWS:
        mem, src = m["peak_mb"], "this run, %d epoch(s)" % m["epochs"]
    elif scaling:
        for p in scaling["points"]:
            if p["rows"] == TARGET_MEMORY_ROWS:
                mem, src = p["peak_mb"], "scaling run of %s (Fashion-MNIST, 1 epoch)" % (
                    (scaling.get("machine") or {}).get("date", "?"))
    name = "mlcnn backend peak memory training on 60,000 rows <= %g MB (goal %g MB)" % (TARGET_MEMORY_MB,
                                                                                      GOAL_MEMORY_MB)
    if mem is not None:
        out.append({"target": name, "status": ("PASS (goal met)" if mem <= GOAL_MEMORY_MB else
                                              "PASS" if mem <= TARGET_MEMORY_MB else "MISS"),
                    "measured": "%.1f MB (%s)" % (mem, src), "ratio": mem / TARGET_MEMORY_MB,
                    "ratio_text": "%.2fx the target, %.2fx the goal" % (mem / TARGET_MEMORY_MB, mem / GOAL_MEMORY_MB)})
    else:
        out.append({"target": name, "status": "n/a",
                    "measured": "not measured at 60,000 rows (this run: %d rows; %s)"
                    % (m["train_rows"], "the scaling run has no 60,000-row point" if scaling
                       else "no scaling run"), "ratio": None, "ratio_text": ""})

    def acc(r):
        a, b = fig(r, "mlcnn", "test_accuracy"), fig(r, "pytorch", "test_accuracy")
        return (a - b) * 100 if a is not None and b is not None else None
    diff = acc(judged)
    name = "accuracy within %.1f points of PyTorch's (same epochs; the earlier issue's)" % TARGET_ACCURACY_PTS
    if diff is not None:
        out.append({"target": name, "setting": judged["setting"],
                    "status": "PASS" if diff >= -TARGET_ACCURACY_PTS else "MISS",
                    "measured": "%.2f%% vs %.2f%% (%s)%s" % (fig(judged, "mlcnn", "test_accuracy") * 100,
                                                           fig(judged, "pytorch", "test_accuracy") * 100, jl,
                                                           also(acc, "%+.2f points")),
                    "ratio": diff, "ratio_text": "%+.2f points" % diff})
    else:
        out.append({"target": name, "status": "n/a", "measured": "PyTorch not measured", "ratio": None,
                    "ratio_text": ""})
    return out


# ------------------------------------------------------------------ Markdown

def fmt(v, f):
    """v formatted with f, or an em dash for None."""
    return "—" if v is None else f % v


def dataset_title(ds):
    """Display name of a data set."""
    return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(ds, ds)


def row_keys(doc):
    """The framework keys of the table, in order: each run's mlcnn and PyTorch,
    then TensorFlow, tiny-dnn and dlib."""
    keys = []
    for r in doc["runs"]:
        keys += [r["mlcnn"], r["pytorch"]]
    return keys + ["tensorflow", "tinydnn", "dlib"]


def row_name(doc, key):
    """Display name of a table row: the framework, and its setting when the
    comparison ran in several."""
    base = key.split("@")[0]
    name = NAMES[base]
    if base in ("mlcnn", "pytorch") and len(doc["runs"]) > 1:
        setting = next(r["setting"] for r in doc["runs"] if key in (r["mlcnn"], r["pytorch"]))
        name += ", " + setting_label(doc["kernels"], setting)
    return name


def write_markdown(path, ds, doc):
    """The Markdown report of one data set."""
    fw, mach, st, kern = doc["frameworks"], doc["machine"], doc["settings"], doc["kernels"]
    m = fw["mlcnn"]
    L = []
    L.append("# %s: mlcnn vs PyTorch%s, tiny-dnn and dlib" % (
        dataset_title(ds), ", TensorFlow" if fw["tensorflow"].get("installed") else ""))
    L.append("")
    L.append("Measured %s on %s (%s cores), one framework at a time. "
             "The reference CNN `%s` (%s parameters), %d epoch(s), batch %d, Adam, learning rate %g "
             "(constant), pixels scaled to [0, 1], %d thread(s) each; %d training rows, %d test rows%s."
             % (mach.get("date", "?"), mach.get("cpu_model", "?"), mach.get("cores", "?"),
                st["layers"], "{:,}".format(m["parameters"]) if m.get("parameters") else "?", m["epochs"],
                st["batch_size"], st["learning_rate"], st["threads"], m["train_rows"], m["test_rows"],
                " (capped by BENCH_TRAIN_ROWS)" if st.get("train_rows_cap") else ""))
    L.append("")
    if kern.get("recorded") is False:
        L.append("OpenBLAS settings: not recorded (results older than the pinned/lifted runs).")
    elif len(doc["runs"]) > 1:
        L.append("OpenBLAS settings: mlcnn and PyTorch ran in %s, each side in the same environment "
                 "(mlcnn's server restarted in it): %s. The other rows ran in the machine's environment (%s)."
                 % (" and ".join("**%s**" % setting_label(kern, r["setting"]) for r in doc["runs"]),
                    "; ".join("%s = %s" % (setting_label(kern, s), env_text((kern.get("envs") or {}).get(s)))
                              for s in [r["setting"] for r in doc["runs"]]),
                    env_text((kern.get("envs") or {}).get("machine"))))
    else:
        s = doc["runs"][0]["setting"]
        why = ""
        if ds == kern.get("comparison_dataset") and kern.get("skipped_reason"):
            why = " The other setting was not measured: %s." % kern["skipped_reason"]
        L.append("OpenBLAS settings: every row ran in the machine's environment, **%s** (%s) for both sides.%s"
                 % (setting_label(kern, s), env_text((kern.get("envs") or {}).get("machine")), why))
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
    for key in row_keys(doc):
        f = fw.get(key, {"installed": False, "reason": "not run"})
        if not f.get("installed"):
            reason = f.get("reason") or "not installed"
            if key == "tensorflow" and "reason" in f and "Error" in reason:
                reason = "not installed (%s)" % reason
            L.append("| %s | %s | | | | | | | |" % (row_name(doc, key), reason.replace("|", "/")))
            continue
        spe, accs = "%.2f" % f["seconds_per_epoch"], "%.2f" % (f["test_accuracy"] * 100)
        if f.get("train_rows") and f["train_rows"] != m["train_rows"]:
            spe += " (%s rows; ≈ %.0f for %s)" % ("{:,}".format(f["train_rows"]),
                                                  m["train_rows"] / f["train_images_per_second"],
                                                  "{:,}".format(m["train_rows"]))
            accs += " (%s rows)" % "{:,}".format(f["train_rows"])
        L.append("| %s | %.1f | %s | %s | %.4f | %.4f | %.0f | %.0f | %.0f |" % (
            row_name(doc, key), f["training_seconds"], spe, accs,
            f["predict100_single_seconds"], f["predict100_batch_seconds"], f["peak_mb"],
            f["train_images_per_second"], f["infer_images_per_second"]))
    cv = fw.get("opencv", {})
    if cv.get("installed"):
        L.append("| %s | — (runs mlcnn's model) | — | %.2f | %.4f | %.4f | %.0f | — | %.0f |" % (
            NAMES["opencv"], cv["test_accuracy"] * 100, cv["predict100_single_seconds"],
            cv["predict100_batch_seconds"], cv["peak_mb"], cv["infer_images_per_second"]))
    L.append("")
    L.append("- training time: mlcnn, the `train_conv2d` statement timed in the server (table scan, "
             "buffering and training; the epochs alone took %.1f s); the others, the epoch loops "
             "with the data already in memory. s/epoch: the epochs alone, for every framework; a framework "
             "trained on fewer rows (BENCH_TINYDNN_ROWS, BENCH_DLIB_ROWS) shows its rows and, after ≈, its "
             "epoch scaled to this table's rows at its measured images/s."
             % m["core_training_seconds"])
    L.append("- predict 100, one row at a time: mlcnn, `SELECT predict(m.model, t.pixels) FROM "
             "(SELECT pixels FROM test ORDER BY id LIMIT 100) t, models m` timed inside the server "
             "(clock_timestamp() around EXECUTE in PL/pgSQL, no client start-up, a warm session); PyTorch, 100 "
             "calls `model(x[i:i+1])` under `torch.no_grad()`; tiny-dnn `net.predict(x)`, dlib `net(x)`. "
             "One batch: mlcnn, `evaluate()` over the same 100 rows (it batches internally); the others, the "
             "100 rows as one batch. Medians of %d runs after a warm-up, %d thread(s) (`mlcnn.threads`, "
             "`torch.set_num_threads`, OpenMP for tiny-dnn, OpenBLAS for dlib)."
             % (st["repeats"], st.get("predict_threads", 0)))
    firsts = [(r, fw[r["mlcnn"]]) for r in doc["runs"] if fw[r["mlcnn"]].get("first_query_ms") is not None]
    if firsts:
        L.append("- a new session's first prediction query: `%s` as the first statement of a fresh psql "
                 "connection, timed by psql's `\\timing` in the client (the round trip of that query: loading "
                 "mlcnn.so and OpenBLAS into the new backend, reading the model, predicting); beside it the whole "
                 "`psql -c` command (start-up, connection, backend start, query, exit), timed by the shell. Medians "
                 "of %d fresh connections after one untimed one: %s."
                 % (firsts[0][1].get("first_query", "?"), len(firsts[0][1]["first_query_runs_ms"]),
                    "; ".join("%s%.2f ms (runs %s), psql command %s ms" % (
                        setting_label(kern, r["setting"]) + " " if len(doc["runs"]) > 1 else "",
                        f["first_query_ms"], ", ".join("%.1f" % x for x in f["first_query_runs_ms"]),
                        fmt(f.get("first_query_psql_wall_ms"), "%.1f")) for r, f in firsts)))
    L.append("- peak memory: mlcnn, VmHWM of the backend that trained (a fresh connection; %.0f MB right "
             "after connecting); the others, ru_maxrss of their process (libraries, data, training, inference)."
             % m["backend_start_mb"])
    L.append("- inference images/s: the whole test set (mlcnn `evaluate()`, the others batches of 1,000).")
    if cv.get("installed"):
        L.append("- OpenCV %s: `cv2.dnn.readNetFromONNX` on `model_to_onnx` of the model mlcnn trained "
                 "(%d bytes), raw pixels in, batches of 1,000 for the test set, `net.forward()` per row or "
                 "for the 100 rows at once, %d thread(s) (`cv2.setNumThreads`); peak memory: ru_maxrss of "
                 "its process (bench/opencv_bench.py)." % (cv["version"], cv["onnx_bytes"], cv["threads"]))
    for key in ("tinydnn", "dlib"):
        f = fw.get(key, {})
        if f.get("installed"):
            th = f.get("threading") or {}
            L.append("- %s %s: %s; %s; %s; built with `%s`; %s thread(s) in the process while training; peak "
                     "memory %.0f MB after training (the test pass in batches of 1,000 comes after it); "
                     "bench/%s_bench.cpp."
                     % (NAMES[key], f.get("version"), f.get("kernels"), th.get("model"), f.get("optimizer"),
                        f.get("compile_flags", "?"),
                        th.get("threads_seen_while_training", th.get("threads_seen_after_training", "?")),
                        f.get("train_peak_mb", 0), key))
    cpu = []
    for key in row_keys(doc):
        f = fw.get(key, {})
        if f.get("installed") and f.get("training_cpu_seconds") is not None:
            cpu.append("%s %.1f CPU s in %.1f s (%.1f cores busy)" % (
                row_name(doc, key), f["training_cpu_seconds"], f["training_seconds"],
                f["training_cpu_seconds"] / f["training_seconds"]))
    if cpu:
        L.append("- CPU used while training: %s. Fewer cores busy than threads means the process "
                 "waited for the CPU (other work) or for memory, or ran serial code." % "; ".join(cpu))
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
    L.append("## Targets (issue 16)")
    L.append("")
    L.append("| target | result | measured | ratio |")
    L.append("|---|---|---|---|")
    for t in doc["targets"]:
        L.append("| %s | **%s** | %s | %s |" % (t["target"], t["status"], t["measured"], t["ratio_text"]))
    L.append("")
    L += kernels_section(doc)
    L.append("## Machine")
    L.append("")
    ob = mach.get("openblas", {})
    L.append("- CPU: %s, %s cores (%s usable), %s GB memory; %s, kernel %s"
             % (mach.get("cpu_model"), mach.get("cores"), mach.get("cores_usable"),
                mach.get("memory_gb"), mach.get("os"), mach.get("kernel")))
    L.append("- PostgreSQL: %s" % mach.get("postgresql"))
    L.append("- OpenBLAS: %s; %s; kernel %s in the machine's environment (server environment at the start: %s)"
             % (", ".join(ob.get("debian_packages") or []) or "?", ob.get("config", "?"),
                ob.get("core_in_bench_env", "?"), env_text(mach.get("openblas_env_server"))))
    t = fw["pytorch"]
    if t.get("installed"):
        L.append("- PyTorch %s (Debian python3-torch, CPU), Python %s, NumPy %s; OPENBLAS_NUM_THREADS=%s "
                 "(PyTorch's own %s OpenMP threads do the parallel work), OMP_WAIT_POLICY=%s"
                 % (t.get("version"), t.get("python"), t.get("numpy"),
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


def torch_libs_text(t):
    """PyTorch's libraries and kernels, in a line."""
    tl = t.get("torch") or {}
    dn = tl.get("onednn") or {}
    k = t.get("kernels") or {}

    def conv(ops):
        if any("mkldnn_convolution" in o for o in ops):
            return "oneDNN"
        if any("thnn_conv2d" in o or "slow_conv2d" in o for o in ops):
            return "im2col + BLAS (thnn_conv2d)"
        return "?"
    parts = []
    if dn:
        parts.append("oneDNN %s (%s, ISA %s)" % (dn.get("version", "?"), dn.get("cpu_runtime", "?"),
                                                dn.get("isa", "?")))
    if k:
        parts.append("convolutions: training %s, batch prediction %s, single-row prediction %s; linear layers: "
                     "addmm (BLAS)" % (conv(k.get("training_step", [])), conv(k.get("batch_prediction", [])),
                                       conv(k.get("single_row_prediction", []))))
    m = re.search(r"ATen parallel backend: (\S+)", tl.get("parallel_info", ""))
    if m:
        parts.append("ATen parallel backend %s, %s thread(s)" % (m.group(1), t.get("threads")))
    libs = [os.path.basename(p) for p in tl.get("libraries", [])]
    if libs:
        parts.append("libraries: " + ", ".join(libs))
    return "; ".join(parts) or "—"


def mlcnn_kernels_text(prof):
    """mlcnn's kernels as nn_bench reported them (its convolutions line and
    each layer's kernel column), or what is known without a profile."""
    if not prof or prof.get("failed"):
        return "mlcnn's core (no profile in this setting: see profile.md)"
    parts = ["mlcnn's core"]
    if prof.get("convolutions"):
        parts.append("convolutions: " + prof["convolutions"])
    per = ["%s: %s" % (x["layer"], x["kernels"]) for x in prof.get("layers", []) if x.get("kernels")]
    if per:
        parts.append("per layer (nn_bench): " + ", ".join(per))
    return "; ".join(parts)


def kernels_section(doc):
    """The section naming, per side and setting, the OpenBLAS kernel and the other libraries."""
    fw, kern = doc["frameworks"], doc["kernels"]
    L = ["## Kernels and libraries, per side and setting", ""]
    L.append("| side | setting | OPENBLAS_ variables | OpenBLAS kernel | threads | other libraries, kernels |")
    L.append("|---|---|---|---|---|---|")
    for r in doc["runs"]:
        s = r["setting"]
        kf = doc.get("kernel_facts", {}).get(s)
        if kf is None and r["mlcnn"] == "mlcnn":  # older results: the machine facts of the start
            mo = doc["machine"].get("openblas") or {}
            kf = {"server_env": doc["machine"].get("openblas_env_server"),
                  "openblas": {"core_in_bench_env": "%s (in the bench's environment)" % mo.get("core_in_bench_env", "?")}}
        kf = kf or {}
        ob = kf.get("openblas") or {}
        prof = (doc.get("profile") or {}).get(s) or {}
        m = fw[r["mlcnn"]]
        L.append("| mlcnn (the server's backends) | %s | %s | %s | %s (\"threads\"; OpenBLAS single-threaded per "
                 "part) | %s |" % (
                     setting_label(kern, s), env_text(kf.get("server_env")), ob.get("core_in_bench_env", "?"),
                     m.get("threads"), mlcnn_kernels_text(prof)))
        t = fw.get(r["pytorch"], {})
        if t.get("installed"):
            L.append("| PyTorch %s | %s | %s | %s | %s OpenMP, OpenBLAS %s | %s |" % (
                t.get("version"), setting_label(kern, s),
                env_text({k: v for k, v in (t.get("env") or {}).items() if k.startswith("OPENBLAS_")}),
                (t.get("openblas") or {}).get("core", "?"), t.get("threads"),
                (t.get("env") or {}).get("OPENBLAS_NUM_THREADS"), torch_libs_text(t)))
    tf = fw.get("tensorflow", {})
    if tf.get("installed"):
        L.append("| TensorFlow %s | the machine's | %s | %s | %s | — |" % (
            tf.get("version"), env_text({k: v for k, v in (tf.get("env") or {}).items() if k.startswith("OPENBLAS_")}),
            (tf.get("openblas") or {}).get("core", "?"), tf.get("threads")))
    for key in ("tinydnn", "dlib"):
        f = fw.get(key, {})
        if not f.get("installed"):
            continue
        th = f.get("threading") or {}
        L.append("| %s %s | the machine's | %s | %s | %s | %s; %s; %s |" % (
            NAMES[key], f.get("version"),
            env_text({k: v for k, v in (f.get("env") or {}).items() if k.startswith("OPENBLAS_")}),
            (f.get("openblas") or {}).get("core", "none loaded") if f.get("openblas") else "none (no BLAS)",
            f.get("threads"), f.get("kernels"), th.get("model"),
            ", ".join(os.path.basename(p) for p in f.get("libraries", []))))
    cv = fw.get("opencv", {})
    if cv.get("installed"):
        L.append("| OpenCV %s | the machine's | — | — (its own dnn kernels) | %s | %s |" % (
            cv.get("version"), cv.get("threads"), cv.get("build", "—")))
    L.append("")
    L.append("mlcnn's kernel is what the module's OpenBLAS picks in the server's environment (report.py kernel, "
             "run in that environment; the server's variables read from the postmaster's /proc/<pid>/environ). "
             "PyTorch's: openblas_get_corename() of the OpenBLAS mapped into its process; its kernels: the "
             "profiler's aten operators of one training step and one prediction.")
    L.append("")
    return L


# ------------------------------------------------------------------ charts

def bar_labels(ax, bars, fmtstr):
    """Write each bar's value above it."""
    for b in bars:
        h = b.get_height()
        ax.annotate(fmtstr % h, (b.get_x() + b.get_width() / 2, h), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 2), textcoords="offset points")


def write_chart(path, ds, doc):
    """A 2x2 PNG: training s/epoch, accuracy, predicting 100 samples, peak memory."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fw = doc["frameworks"]
    keys = [k for k in row_keys(doc) if fw.get(k, {}).get("installed")]
    main_rows = fw["mlcnn"]["train_rows"]
    names = []
    for k in keys:
        n = row_name(doc, k).replace(", ", "\n").replace(" (SQL)", "")
        if fw[k].get("train_rows") and fw[k]["train_rows"] != main_rows:
            n += "*"
        names.append(n)
    colors = [COLORS[k.split("@")[0]] for k in keys]
    pinned = set()
    if len(doc["runs"]) > 1:
        pinned = {k for r in doc["runs"] if r["setting"] == "pinned" for k in (r["mlcnn"], r["pytorch"])}
    hatches = ["//" if k in pinned else "" for k in keys]
    fig, axes = plt.subplots(2, 2, figsize=(max(11, 1.6 * len(keys) + 3), 8.5))
    fig.suptitle("%s, %d training rows, %d epoch(s), %d thread(s) (%d for inference), measured on this machine"
                 % (dataset_title(ds), main_rows, fw["mlcnn"]["epochs"],
                    doc["settings"]["threads"], doc["settings"].get("predict_threads", 0)), fontsize=12)

    def bars(ax, xs, vals, **kw):
        b = ax.bar(xs, vals, color=colors, **kw)
        for bar, h in zip(b, hatches):
            bar.set_hatch(h)
        return b

    xs = list(range(len(keys)))
    ax = axes[0][0]
    spe = [main_rows / fw[k]["train_images_per_second"] if fw[k].get("train_rows") != main_rows
           else fw[k]["seconds_per_epoch"] for k in keys]
    b = bars(ax, xs, spe)
    bar_labels(ax, b, "%.1f")
    if max(spe) > 20 * min(spe):
        ax.set_yscale("log")
    ax.set_title("training: seconds per epoch (lower is better)")
    ax.set_ylabel("s")

    ax = axes[0][1]
    acc = [fw[k]["test_accuracy"] * 100 for k in keys]
    b = bars(ax, xs, acc)
    bar_labels(ax, b, "%.2f")
    lo = max(0.0, min(acc) - 5)
    ax.set_ylim(lo, min(100.0, max(acc) + (100 - lo) * 0.08 + 0.5))
    ax.set_title("test accuracy (higher is better)")
    ax.set_ylabel("%")

    ax = axes[1][0]
    w = 0.38
    b1 = bars(ax, [x - w / 2 for x in xs], [fw[k]["predict100_single_seconds"] * 1000 for k in keys], width=w,
              label="100 single-row calls")
    b2 = ax.bar([x + w / 2 for x in xs], [fw[k]["predict100_batch_seconds"] * 1000 for k in keys],
                w, color=colors, alpha=0.45, hatch="..", label="one batch of 100")
    bar_labels(ax, b1, "%.1f")
    bar_labels(ax, b2, "%.1f")
    ax.set_yscale("log")
    vals = [x.get_height() for x in list(b1) + list(b2)] + [TARGET_PREDICT_MS]
    lo, hi = min(vals) / 3, max(vals) * 4
    ax.set_ylim(lo, hi)
    ax.axhline(TARGET_PREDICT_MS, color="gray", ls="--", lw=1,
               label="target: mlcnn 100 single-row, %g ms" % TARGET_PREDICT_MS)
    ticks = [mm * 10 ** e for e in range(-2, 6) for mm in (1, 2, 5)]
    ax.set_yticks([t for t in ticks if lo <= t <= hi])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "%g" % v))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title("time to predict 100 samples, log scale (lower is better)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[1][1]
    b = bars(ax, xs, [fw[k]["peak_mb"] for k in keys])
    bar_labels(ax, b, "%.0f")
    ax.set_title("peak memory (lower is better)")
    ax.set_ylabel("MB")

    for row in axes:
        for ax in row:
            ax.set_xticks(xs)
            ax.set_xticklabels(names, fontsize=7)
            if ax.get_yscale() == "linear":
                ymin, ymax = ax.get_ylim()
                ax.set_ylim(ymin, ymax + (ymax - ymin) * 0.08)
            ax.grid(axis="y", alpha=0.3)
    note = ("mlcnn peak: VmHWM of the PostgreSQL backend that trained; the others: ru_maxrss of the process. "
            "mlcnn batch: evaluate() over 100 rows." + (" Hatched: the pinned OpenBLAS setting." if pinned else ""))
    if any(n.endswith("*") for n in names):
        note += " *: trained on fewer rows; its epoch scaled to %s rows at its images/s." % "{:,}".format(main_rows)
    fig.text(0.5, 0.01, note, ha="center", fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ profile

def parse_nn_bench(text):
    """bench/nn_bench's output: its "key: value" lines and the per-layer table
    (the lines after the header that starts with "#" and names "layer"; each
    row an index, a description, then numbers: forward s, backward s, and
    whatever columns follow, named by the header, numbers or text such as
    the kernel a layer used). Other lines are kept in "lines"."""
    out = {"layers": [], "fields": {}, "lines": []}
    number = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
    cols = []
    in_table = False
    for line in text.splitlines():
        s = line.strip()
        if in_table:
            tok = s.split()
            k = 1
            while k < len(tok) and not number.match(tok[k]):
                k += 1
            nums = []
            while k < len(tok) and number.match(tok[k]):
                nums.append(float(tok[k]))
                k += 1
            if len(tok) >= 3 and tok[0].isdigit() and len(nums) >= 2:
                row = {"index": int(tok[0]), "layer": " ".join(tok[1:k - len(nums)]),
                       "forward_s": nums[0], "backward_s": nums[1], "values": nums}
                if tok[k:]:  # text columns after the numbers (the header names them)
                    row[(cols[len(nums):] or ["extra"])[0]] = " ".join(tok[k:])
                out["layers"].append(row)
                continue
            in_table = False
        if re.match(r"^#\s+layer\b", s):
            in_table = True
            out["header"] = s
            # the column names after "# layer", separated by two spaces or more
            cols = [c for c in re.split(r"\s{2,}", re.sub(r"^#\s+layer\s*", "", s)) if c]
            continue
        mm = re.match(r"^([A-Za-z][\w ()/-]*?):\s+(.*)$", s)
        if mm:
            out["fields"][mm.group(1)] = mm.group(2)
        elif s:
            out["lines"].append(s)
    out["columns"] = cols
    f = out["fields"]

    def num(key):
        v = re.match(r"^\s*(-?[\d.]+)", f.get(key, ""))
        return float(v.group(1)) if v else None
    out["seconds_per_epoch"] = num("seconds per epoch")
    out["images_per_second"] = num("images per second")
    out["gflops"] = num("GFLOPS achieved")
    out["convolutions"] = f.get("convolutions")
    ph = {}
    for k, v in re.findall(r"(\w+) (-?[\d.]+)", f.get("phases (s)", "")):
        ph[k] = float(v)
    out["phases"] = ph
    return out


def profile_doc(raw, kern):
    """The profiles of raw/profile-<setting>.txt, by setting, or None."""
    prof = {}
    for p in sorted(glob.glob(os.path.join(raw, "profile-*.txt"))):
        name = os.path.basename(p)[len("profile-"):-len(".txt")]
        with open(p) as f:
            d = parse_nn_bench(f.read())
        d["setting"] = name
        meta = load_json(os.path.join(raw, "profile-%s.json" % name)) or {}
        d.update({k: v for k, v in meta.items() if k not in d})
        d["kernel"] = load_json(os.path.join(raw, "profile-%s.kernel.json" % name))
        prof[name] = d
    for p in sorted(glob.glob(os.path.join(raw, "profile-*.failed"))):
        name = os.path.basename(p)[len("profile-"):-len(".failed")]
        with open(p) as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        why = re.sub(r"^nn_bench failed:\s*", "", lines[-1]) if lines else "no output"
        prof[name] = {"setting": name, "failed": why, "output_tail": lines[-5:],
                      "layers": []}
    return prof or None


def write_profile(out_dir, prof, kern, machine, fashion):
    """profile.{json,md}: nn_bench's per-layer forward/backward seconds in each
    setting, beside PyTorch's epoch where the Fashion-MNIST run has it."""
    with open(os.path.join(out_dir, "profile.json"), "w") as f:
        json.dump({"profile": prof, "kernels": kern, "machine": machine}, f, indent=1)
    failed = [n for n in prof if prof[n].get("failed")]
    names = [n for n in ("pinned", "lifted", "machine") if n in prof and n not in failed] + \
            [n for n in prof if n not in ("pinned", "lifted", "machine") and n not in failed]
    L = ["# Per-layer profile: mlcnn's core without PostgreSQL (bench/nn_bench)", ""]
    for n in failed:
        L.append("**%s: nn_bench failed** (%s); no figures for this setting (its output: `raw/profile-%s.failed`)."
                 % (setting_label(kern, n), prof[n]["failed"], n))
        L.append("")
    if not names:
        with open(os.path.join(out_dir, "profile.md"), "w") as f:
            f.write("\n".join(L) + "\n")
        print("\n".join(L))
        return
    first = prof[names[0]]
    L.append("One epoch of the reference CNN on Fashion-MNIST: %s rows, batch 64, Adam 1e-3 constant, %s thread(s), "
             "in each OpenBLAS setting (%s). Command: `%s`. Measured %s on %s."
             % ("{:,}".format(first.get("rows", 0)) if first.get("rows") else "?", first.get("threads", "?"),
                "; ".join("%s: %s" % (setting_label(kern, n), env_text(prof[n].get("env"))) for n in names),
                first.get("command", "?"), machine.get("date"), machine.get("cpu_model")))
    if any(prof[n].get("note") for n in names):
        L.append("")
        L.append("**Note:** " + " ".join(prof[n]["note"] for n in names if prof[n].get("note")))
    L.append("")
    text_cols = []
    for n in names:
        for x in prof[n]["layers"]:
            for c in x:
                if c not in ("index", "layer", "forward_s", "backward_s", "values") and c not in text_cols:
                    text_cols.append(c)
    head = "| # | layer |"
    sep = "|---:|---|"
    for n in names:
        lab = setting_label(kern, n)
        head += " forward s (%s) | backward s (%s) | share (%s) |" % (lab, lab, lab)
        sep += "---:|---:|---:|"
        for c in text_cols:
            head += " %s (%s) |" % (c, lab)
            sep += "---|"
    L.append(head)
    L.append(sep)
    nl = max(len(prof[n]["layers"]) for n in names)
    for i in range(nl):
        lay = next((prof[n]["layers"][i] for n in names if i < len(prof[n]["layers"])), None)
        row = "| %d | %s |" % (lay["index"], lay["layer"])
        for n in names:
            p = prof[n]
            if i < len(p["layers"]):
                x = p["layers"][i]
                tot = p.get("seconds_per_epoch") or 0
                share = (x["forward_s"] + x["backward_s"]) / tot * 100 if tot else None
                row += " %.3f | %.3f | %s |" % (x["forward_s"], x["backward_s"], fmt(share, "%.1f%%"))
                row += "".join(" %s |" % x.get(c, "") for c in text_cols)
            else:
                row += " | | |" + " |" * len(text_cols)
        L.append(row)
    L.append("")
    for n in names:
        p = prof[n]
        ph = p.get("phases") or {}
        L.append("- %s: %s s/epoch, %s images/s, %s GFLOPS; phases (s): %s; convolutions: %s; OpenBLAS kernel %s"
                 % (setting_label(kern, n), fmt(p.get("seconds_per_epoch"), "%.2f"),
                    fmt(p.get("images_per_second"), "%.0f"), fmt(p.get("gflops"), "%.1f"),
                    ", ".join("%s %.2f" % kv for kv in ph.items()) or "?", p.get("convolutions") or "?",
                    ((p.get("kernel") or {}).get("openblas") or {}).get("core_in_bench_env", "?")))
        top = sorted(p["layers"], key=lambda x: -(x["forward_s"] + x["backward_s"]))[:3]
        if top and p.get("seconds_per_epoch"):
            L.append("  - the largest: %s" % "; ".join(
                "%s (#%d) %.2f s = %.0f%%" % (x["layer"], x["index"], x["forward_s"] + x["backward_s"],
                                               (x["forward_s"] + x["backward_s"]) / p["seconds_per_epoch"] * 100)
                for x in top))
    if fashion:
        L.append("")
        for r in fashion["runs"]:
            t = fashion["frameworks"].get(r["pytorch"], {})
            p = prof.get(r["setting"]) or (prof.get(names[0]) if fashion["kernels"].get("identical") else None)
            if t.get("installed") and p and not p.get("failed") and p.get("images_per_second"):
                per = (p.get("rows") or t["train_rows"])
                tsec = per / t["train_images_per_second"]
                L.append("- against PyTorch (%s): its epoch over %s rows would take %.2f s at its %.0f images/s; "
                         "the core's took %s s (%.2fx); mlcnn through SQL: %.2f s/epoch."
                         % (setting_label(fashion["kernels"], r["setting"]), "{:,}".format(per), tsec,
                            t["train_images_per_second"], fmt(p.get("seconds_per_epoch"), "%.2f"),
                            (p["seconds_per_epoch"] or 0) / tsec,
                            fashion["frameworks"][r["mlcnn"]]["seconds_per_epoch"]))
    L.append("")
    L.append("Raw output: `raw/profile-<setting>.txt`; figures: `profile.json`.")
    with open(os.path.join(out_dir, "profile.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))


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
            L.append("- target: backend peak training on 60,000 rows <= %g MB (goal %g MB): **%s** (%.1f MB, %.2fx)"
                     % (TARGET_MEMORY_MB, GOAL_MEMORY_MB,
                        "PASS (goal met)" if p["peak_mb"] <= GOAL_MEMORY_MB else
                        "PASS" if p["peak_mb"] <= TARGET_MEMORY_MB else "MISS", p["peak_mb"],
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
    ax.annotate("target at 60k rows: %g MB" % TARGET_MEMORY_MB, (0, TARGET_MEMORY_MB), fontsize=7, color="red",
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


def framework_doc(raw, ds, kern, scaling, machine, settings):
    """The document of one data set: every framework's figures, the runs of the
    reference comparison (one per OpenBLAS setting), the targets; None without
    mlcnn's measurements."""
    def mlcnn(prefix):
        train = load_json(os.path.join(raw, prefix + "-mlcnn-train.json"))
        infer = load_json(os.path.join(raw, prefix + "-mlcnn-infer.json"))
        if train is None or infer is None:
            return None
        return mlcnn_figures(train, infer, load_json(os.path.join(raw, ds + "-load.json")),
                             load_json(os.path.join(raw, prefix + "-mlcnn-first.json")))
    m = mlcnn(ds)
    if m is None:
        return None
    fw = {
        "mlcnn": m,
        "pytorch": python_figures(load_json(os.path.join(raw, ds + "-pytorch.json"))),
        "tensorflow": python_figures(load_json(os.path.join(raw, ds + "-tensorflow.json"))),
        "tinydnn": cxx_figures(load_json(os.path.join(raw, ds + "-tinydnn.json"))),
        "dlib": cxx_figures(load_json(os.path.join(raw, ds + "-dlib.json"))),
        "opencv": load_json(os.path.join(raw, ds + "-opencv.json")) or {"installed": False, "reason": "not run"},
    }
    runs = [{"setting": kern["machine_setting"], "mlcnn": "mlcnn", "pytorch": "pytorch"}]
    if ds == kern["comparison_dataset"]:
        for s in kern["extra"]:
            ms = mlcnn(ds + "@" + s)
            if ms is None:
                continue
            fw["mlcnn@" + s] = ms
            fw["pytorch@" + s] = python_figures(load_json(os.path.join(raw, "%s@%s-pytorch.json" % (ds, s))))
            runs.append({"setting": s, "mlcnn": "mlcnn@" + s, "pytorch": "pytorch@" + s})
    order = {"pinned": 0, "lifted": 1, "machine": 2}
    runs.sort(key=lambda r: order.get(r["setting"], 3))
    facts = {}
    for r in runs:
        kf = load_json(os.path.join(raw, "kernel-%s.json" % r["setting"]))
        if kf:
            facts[r["setting"]] = kf
    doc = {"dataset": ds, "machine": machine, "settings": settings, "kernels": kern, "runs": runs,
           "kernel_facts": facts, "frameworks": fw, "loadavg_at_report": loadavg(),
           "published": {"source": "the paper; other hardware (Google Colab); MNIST", "rows": PUBLISHED}}
    doc["targets"] = target_rows(doc, scaling)
    return doc


def cmd_report(args):
    """Write every report that the raw measurements allow."""
    raw = os.path.join(args.results, "raw")
    machine = load_json(os.path.join(raw, "machine.json")) or {}
    settings = load_json(os.path.join(raw, "settings.json")) or {}
    kern = kernel_settings(raw)
    scaling = scaling_doc(raw, machine, settings) if args.scaling else None
    if scaling is None:
        scaling = load_json(os.path.join(args.results, "scaling.json"))
    elif args.scaling:
        write_scaling(args.results, scaling)
        print(open(os.path.join(args.results, "scaling.md")).read())

    prof = profile_doc(raw, kern) if args.profile else None
    fashion = None
    for ds in args.datasets or []:
        doc = framework_doc(raw, ds, kern, scaling, machine, settings)
        if doc is None:
            print("report.py: %s: no mlcnn measurements in %s; skipped" % (ds, raw), file=sys.stderr)
            continue
        if prof:
            doc["profile"] = prof
        if ds == kern["comparison_dataset"]:
            fashion = doc
        with open(os.path.join(args.results, ds + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
        write_markdown(os.path.join(args.results, ds + ".md"), ds, doc)
        write_chart(os.path.join(args.results, ds + ".png"), ds, doc)
        print(open(os.path.join(args.results, ds + ".md")).read())
    if args.profile:
        if prof:
            write_profile(args.results, prof, kern, machine, fashion)
        else:
            print("report.py: profile: no raw/profile-*.txt in %s; skipped" % raw, file=sys.stderr)
    if args.resnet:
        write_resnet(raw, args.results, machine)
    if args.tune:
        write_tune(raw, args.results, machine)
    if args.dist:
        write_dist(raw, args.results, machine)
    print("report.py: wrote %s" % args.results)
    return 0


def cmd_kernel(args):
    """Write the OpenBLAS facts of one setting: this process's OPENBLAS_ variables
    (run.sh runs it in the setting's environment), the kernel the module's
    OpenBLAS picks with them, and the server's variables."""
    facts = {"setting": args.name,
             "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
             "openblas": openblas_of(args.module),
             "server_env": proc_env(args.postmaster_pid) if args.postmaster_pid else None}
    with open(args.out, "w") as f:
        json.dump(facts, f, indent=1)
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
    k = sub.add_parser("kernel")
    k.add_argument("--name", required=True, help="the setting: pinned, lifted or machine")
    k.add_argument("--out", required=True)
    k.add_argument("--module", required=True, help="mlcnn.so, to find its OpenBLAS")
    k.add_argument("--postmaster-pid", type=int, default=0)
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--datasets", nargs="*")
    r.add_argument("--scaling", action="store_true")
    r.add_argument("--resnet", action="store_true")
    r.add_argument("--tune", action="store_true")
    r.add_argument("--dist", action="store_true")
    r.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    return {"machine": cmd_machine, "kernel": cmd_kernel, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
