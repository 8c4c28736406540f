#!/usr/bin/python3
"""test/onnx/export.py: model_to_onnx against onnx's checker and OpenCV's runtime.

For each network below, trains a model from SQL on a few synthetic rows,
exports it with model_to_onnx, runs onnx.checker (full check, with shape
inference), loads it with OpenCV's dnn module (cv2.dnn.readNetFromONNX) and
compares its logits for raw pixels with forward_pass's: within 1e-5 of the
row's largest logit. Also checks the graph's interface (input "pixels"
float [N,C,H,W], output "logits"), the metadata and that dropout leaves no
node. Connects with psql to the database the environment names (PGHOST,
PGPORT, PGUSER, PGDATABASE). Prints TAP lines and "N passed, N failed".
"""
import subprocess
import sys

import numpy as np

PASSED = 0
FAILED = 0

NETS = [
    # (name, layers, input h w c, classes, normalize)
    ("reference CNN", "conv(32,3) relu maxpool(2) conv(64,3) relu maxpool(2) dense(128) relu dense(10)",
     (28, 28, 1), 10, "minmax"),
    ("residual net with batch norm and a projection shortcut",
     "conv(8,3,1,same) batchnorm relu residual(conv(8,3,1,same) batchnorm relu conv(8,3,1,same) batchnorm) relu "
     "residual(conv(12,3,2,1) batchnorm relu conv(12,3,1,same) batchnorm) relu globalavgpool dense(4)",
     (12, 12, 1), 4, "zscore"),
    ("named DAG: concat, from, grouped convolution, average pooling, dropout, colour input",
     "stem: conv(8,3,1,same) relu a: conv(8,1) from(stem) b: conv(8,3,1,same,groups=8) concat(a, b) relu "
     "avgpool(2) dropout(0.3) dense(6) batchnorm relu dense(3)",
     (10, 10, 3), 3, "none"),
    ("add of labelled branches, strided max pooling",
     "s: conv(6,3,1,same) relu p: conv(6,3,1,same) from(s) q: conv(6,1) from(s) add(p, q) relu maxpool(3,2) dense(5)",
     (9, 11, 2), 5, "minmax"),
]


def ok(cond, what):
    """One TAP line."""
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok %d - %s" % (PASSED + FAILED, what))
    else:
        FAILED += 1
        print("not ok %d - %s" % (PASSED + FAILED, what))
    sys.stdout.flush()
    return cond


def psql(sql):
    """Rows of sql, tab-separated, through psql."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def rows_sql(h, w, c, classes, n):
    """n synthetic (pixels, label) rows: a pattern per class plus noise, deterministic."""
    size = h * w * c
    return ("SELECT i, i %% %d AS label, decode((SELECT string_agg(lpad(to_hex((i %% %d) * 60 + "
            "((i * 37 + j * 11) %% 50) + (j * (i %% %d + 1)) %% 40), 2, '0'), '' ORDER BY j) "
            "FROM generate_series(1, %d) j), 'hex') AS pixels FROM generate_series(1, %d) i"
            % (classes, classes, classes, size, n))


def check(name, layers, shape, classes, norm):
    """Train, export and compare one network."""
    import cv2
    import onnx
    from onnx import shape_inference

    h, w, c = shape
    opts = ('{"layers": "%s", "input": [%d, %d, %d], "classes": %d, "epochs": 2, "batch_size": 16, '
            '"normalize": "%s", "seed": 7}' % (layers, h, w, c, classes, norm))
    psql("DROP TABLE IF EXISTS onnx_rows, onnx_model; "
         "CREATE TABLE onnx_rows AS %s; "
         "CREATE TABLE onnx_model AS SELECT train_conv2d(pixels, label, '%s'::jsonb) AS model FROM onnx_rows"
         % (rows_sql(h, w, c, classes, 96), opts))
    blob = bytes.fromhex(psql("SELECT encode(model_to_onnx(model), 'hex') FROM onnx_model")[0][0])
    try:
        model = onnx.load_from_string(blob)
        onnx.checker.check_model(model, full_check=True)
        checked = True
    except Exception as e:  # noqa: BLE001 - any failure is the test's
        print("# %s" % e)
        checked = False
    if not ok(checked, "%s: onnx's checker passes (full check)" % name):
        return
    g = model.graph
    dims = [d.dim_value or d.dim_param for d in g.input[0].type.tensor_type.shape.dim]
    ok(g.input[0].name == "pixels" and dims == ["N", c, h, w] and g.output[0].name == "logits",
       "%s: input pixels [N, %d, %d, %d], output logits (got %s %s, %s)"
       % (name, c, h, w, g.input[0].name, dims, g.output[0].name))
    props = {p.key: p.value for p in model.metadata_props}
    ok(props.get("classes") == str(classes) and props.get("normalize") == norm and props.get("layers"),
       "%s: metadata classes, normalize, layers (%s)" % (name, props))
    ok(model.opset_import[0].version == 13, "%s: opset 13" % name)
    ok(all(n.op_type != "Dropout" for n in g.node), "%s: no dropout node at inference" % name)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    out = [d.dim_value or d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    ok(out == ["N", classes], "%s: shape inference gives logits [N, %d] (%s)" % (name, classes, out))

    path = "build/test-logs/onnx-export.onnx"
    with open(path, "wb") as f:
        f.write(blob)
    net = cv2.dnn.readNetFromONNX(path)
    rows = psql("SELECT encode(pixels, 'hex'), forward_pass(model, pixels) FROM onnx_model, onnx_rows "
                "WHERE i <= 12 ORDER BY i")
    worst = 0.0
    batch = []
    wants = []
    for hx, fp in rows:
        want = np.array([float(v) for v in fp.strip("{}").split(",")], dtype=np.float32)
        px = np.frombuffer(bytes.fromhex(hx), dtype=np.uint8).astype(np.float32).reshape(h, w, c)
        batch.append(px.transpose(2, 0, 1))
        wants.append(want)
    net.setInput(np.stack(batch))
    got = net.forward().reshape(len(batch), classes)
    for k, want in enumerate(wants):
        worst = max(worst, float(np.max(np.abs(got[k] - want)) / max(float(np.max(np.abs(want))), 1e-6)))
    ok(worst <= 1e-5, "%s: OpenCV's logits for 12 raw-pixel rows (one batch) are forward_pass's within 1e-5 "
       "of each row's largest (worst %.2g)" % (name, worst))


def main():
    """Every network, then the summary line."""
    try:
        import cv2  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        ok(False, "python3-onnx and python3-opencv are importable (%s)" % e)
        print("%d passed, %d failed" % (PASSED, FAILED))
        return 1
    for net in NETS:
        try:
            check(*net)
        except Exception as e:  # noqa: BLE001
            ok(False, "%s: %s" % (net[0], e))
    psql("DROP TABLE IF EXISTS onnx_rows, onnx_model")
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
