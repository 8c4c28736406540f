#!/usr/bin/python3
"""opencv_bench.py: OpenCV's dnn module running mlcnn's ONNX export, for `make bench`.

    /usr/bin/python3 bench/opencv_bench.py --onnx-hex FILE --data DIR --out FILE.json \
        [--threads 2] [--repeats 5]

FILE holds the model_to_onnx bytes of the model mlcnn trained, in hex (what
psql prints for encode(..., 'hex')). Measured, as torch_bench.py measures
PyTorch's inference: test accuracy over the whole test set in batches of
1,000 and its seconds; the first 100 test images predicted one row at a
time and as one batch, each the median of --repeats runs after one
warm-up; the peak memory of this process. Input: raw pixels as floats
[N, C, H, W] (the export normalises inside). There is no training row:
OpenCV runs the model mlcnn trained.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_bench as tb  # noqa: E402  (its IDX reader, timer and peak memory)

import numpy as np  # noqa: E402


def build_info(cv2):
    """What OpenCV was built with, from getBuildInformation(): its parallel
    framework (the threads of cv2.setNumThreads), its CPU baseline and
    dispatched instruction sets, its BLAS/LAPACK."""
    want = ("Parallel framework", "Baseline", "Dispatched code generation", "Lapack")
    parts = []
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() in want and value.strip():
            parts.append("%s: %s" % (key.strip(), " ".join(value.split())))
    return "; ".join(parts)


def main():
    """Load, measure, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onnx-hex", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        import cv2
    except ImportError as e:
        with open(args.out, "w") as f:
            json.dump({"framework": "opencv", "installed": False, "reason": str(e)}, f)
        return 0
    cv2.setNumThreads(args.threads)
    blob = bytes.fromhex(open(args.onnx_hex).read().strip())
    path = args.out + ".onnx"
    with open(path, "wb") as f:
        f.write(blob)
    net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    xte = tb.read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    yte = tb.read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    x = xte.astype(np.float32)
    x = x[:, None, :, :] if x.ndim == 3 else x.transpose(0, 3, 1, 2)

    def run(batch):
        net.setInput(np.ascontiguousarray(batch))
        return net.forward()

    t0 = tb.time.perf_counter()
    correct = 0
    for i in range(0, x.shape[0], tb.INFER_BATCH):
        correct += int((run(x[i:i + tb.INFER_BATCH]).argmax(1) == yte[i:i + tb.INFER_BATCH]).sum())
    eval_secs = tb.time.perf_counter() - t0
    x100 = x[:100]
    single_med, single_runs = tb.timed_median(lambda: [run(x100[i:i + 1]).argmax(1) for i in range(100)],
                                              args.repeats)
    batch_med, batch_runs = tb.timed_median(lambda: run(x100).argmax(1), args.repeats)
    out = {"framework": "opencv", "installed": True, "version": cv2.__version__, "threads": args.threads,
           "model": "mlcnn's model_to_onnx export", "onnx_bytes": len(blob),
           "eval_seconds": eval_secs, "test_correct": correct, "test_rows": int(x.shape[0]),
           "test_accuracy": correct / x.shape[0], "infer_images_per_second": x.shape[0] / eval_secs,
           "predict100_single_seconds": single_med, "predict100_single_runs": single_runs,
           "predict100_batch_seconds": batch_med, "predict100_batch_runs": batch_runs,
           "peak_mb": tb.peak_mb(), "build": build_info(cv2)}
    os.unlink(path)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("opencv: test accuracy %.4f, 100 single predictions %.4f s, one batch %.4f s, %.0f images/s"
          % (out["test_accuracy"], single_med, batch_med, out["infer_images_per_second"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
