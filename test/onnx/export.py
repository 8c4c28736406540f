#!/usr/bin/python3
"""test/onnx/export.py: model_to_onnx and model_from_onnx against onnx, OpenCV and PyTorch.

For each network below, trains a model from SQL on a few synthetic rows,
exports it with model_to_onnx, runs onnx.checker (full check, with shape
inference), loads it with OpenCV's dnn module (cv2.dnn.readNetFromONNX) and
compares its logits for raw pixels with forward_pass's: within 1e-5 of the
row's largest logit. Also checks the graph's interface (input "pixels"
float [N,C,H,W], output "logits"), the metadata and that dropout leaves no
node; and that model_from_onnx of the export gives forward_pass's logits
exactly, and takes the same input type (bytea, or real[] for the
networks trained on float rows, whose graphs take the floats as they are).
Then the files PyTorch exported (test/fixtures/onnx, made by
make_fixtures.py: batch norm kept and folded, a residual block with a
projection, x.view) import and give PyTorch's logits within 1e-5, an
imported model trains on as init_model, and the bad-file matrix (not ONNX,
truncated, an LSTM, absurd dimensions, wrong initializer sizes) gives
ERRORs with their SQLSTATEs. Connects with psql to the database the environment names (PGHOST,
PGPORT, PGUSER, PGDATABASE). Prints TAP lines and "N passed, N failed".
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import ok, psql, sqlstate, summary  # noqa: E402


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
    # real[] rows: the graph takes the floats themselves (no / 255)
    ("real[] rows, zscore", "conv(6,3) relu maxpool(2) dense(4)", (10, 10, 1), 4, "zscore", "real[]"),
    ("real[] rows, minmax, colour", "conv(4,3,1,same) batchnorm relu globalavgpool dense(3)", (8, 8, 3), 3,
     "minmax", "real[]"),
    ("real[] rows as they are", "conv(4,3) relu dense(3)", (7, 9, 2), 3, "none", "real[]"),
]


def real_rows_sql(bytea_rows):
    """The same rows with real[] pixels of signed, fractional values: (byte - 100) / 37."""
    return ("SELECT i, label, (SELECT array_agg((get_byte(pixels, k) - 100)::real / 37::real ORDER BY k) "
            "FROM generate_series(0, length(pixels) - 1) k) AS pixels FROM (%s) r" % bytea_rows)


def rows_sql(h, w, c, classes, n):
    """n synthetic (pixels, label) rows: a pattern per class plus noise, deterministic."""
    size = h * w * c
    return ("SELECT i, i %% %d AS label, decode((SELECT string_agg(lpad(to_hex((i %% %d) * 60 + "
            "((i * 37 + j * 11) %% 50) + (j * (i %% %d + 1)) %% 40), 2, '0'), '' ORDER BY j) "
            "FROM generate_series(1, %d) j), 'hex') AS pixels FROM generate_series(1, %d) i"
            % (classes, classes, classes, size, n))


def check(name, layers, shape, classes, norm, input_type="bytea"):
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
         % (rows_sql(h, w, c, classes, 96) if input_type == "bytea" else real_rows_sql(rows_sql(h, w, c, classes, 96)),
            opts))
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
    ok(props.get("classes") == str(classes) and props.get("normalize") == norm and props.get("layers") and
       props.get("input_type") == ("uint8" if input_type == "bytea" else "float32"),
       "%s: metadata classes, normalize, layers, input_type (%s)" % (name, props))
    ok(model.opset_import[0].version == 13, "%s: opset 13" % name)
    ok(all(n.op_type != "Dropout" for n in g.node), "%s: no dropout node at inference" % name)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    out = [d.dim_value or d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    ok(out == ["N", classes], "%s: shape inference gives logits [N, %d] (%s)" % (name, classes, out))

    path = "build/test-logs/onnx-export.onnx"
    with open(path, "wb") as f:
        f.write(blob)
    net = cv2.dnn.readNetFromONNX(path)
    text = "encode(pixels, 'hex')" if input_type == "bytea" else "array_to_string(pixels, ',')"
    rows = psql("SELECT %s, forward_pass(model, pixels) FROM onnx_model, onnx_rows "
                "WHERE i <= 12 ORDER BY i" % text)
    worst = 0.0
    batch = []
    wants = []
    for hx, fp in rows:
        want = np.array([float(v) for v in fp.strip("{}").split(",")], dtype=np.float32)
        if input_type == "bytea":
            px = np.frombuffer(bytes.fromhex(hx), dtype=np.uint8).astype(np.float32).reshape(h, w, c)
        else:
            px = np.array([float(v) for v in hx.split(",")], dtype=np.float32).reshape(h, w, c)
        batch.append(px.transpose(2, 0, 1))
        wants.append(want)
    net.setInput(np.stack(batch))
    got = net.forward().reshape(len(batch), classes)
    for k, want in enumerate(wants):
        worst = max(worst, float(np.max(np.abs(got[k] - want)) / max(float(np.max(np.abs(want))), 1e-6)))
    ok(worst <= 1e-5, "%s: OpenCV's logits for 12 rows of raw values (one batch) are forward_pass's within 1e-5 "
       "of each row's largest (worst %.2g)" % (name, worst))

    same = psql("SELECT bool_and(forward_pass(m2, pixels) = forward_pass(model, pixels)) FROM onnx_model, "
                "LATERAL (SELECT model_from_onnx(model_to_onnx(model)) AS m2) x, onnx_rows")[0][0]
    ok(same == "t", "%s: model_from_onnx(model_to_onnx(m)) gives m's logits exactly on all 96 rows" % name)
    kind = psql("SELECT model_info(model_from_onnx(model_to_onnx(model)))->>'input_type' FROM onnx_model")[0][0]
    ok(kind == input_type, "%s: the import takes %s pixels, as the export's input_type says (%s)" % (name, input_type, kind))


def fixtures():
    """PyTorch's exports import with PyTorch's logits, train on, and bad files are refused."""
    import json

    import onnx
    from onnx import TensorProto, helper

    base = "test/fixtures/onnx"
    for name in ("cnn_bn_kept", "cnn_bn_folded", "resnet"):
        blob = open(os.path.join(base, name + ".onnx"), "rb").read().hex()
        fx = json.load(open(os.path.join(base, name + ".json")))
        imp = "model_from_onnx('\\x%s'::bytea, '{\"normalize\": \"minmax\"}')" % blob
        worst = 0.0
        for px, want in zip(fx["pixels"], fx["logits"]):
            got = psql("SELECT forward_pass(%s, '\\x%s'::bytea)" % (imp, bytes(px).hex()))[0][0]
            got = np.array([float(v) for v in got.strip("{}").split(",")])
            want = np.array(want)
            worst = max(worst, float(np.max(np.abs(got - want)) / np.max(np.abs(want))))
        ok(worst <= 1e-5, "PyTorch's %s imports and gives its logits within 1e-5 of each row's largest (worst %.2g)"
           % (name, worst))
    # an imported model trains on as init_model
    h, w, c = 14, 14, 1
    blob = open(os.path.join(base, "cnn_bn_kept.onnx"), "rb").read().hex()
    psql("DROP TABLE IF EXISTS onnx_rows, onnx_model; CREATE TABLE onnx_rows AS %s; "
         "CREATE TABLE onnx_model AS SELECT model_from_onnx('\\x%s'::bytea, '{\"normalize\": \"minmax\"}') AS model"
         % (rows_sql(h, w, c, 5, 64), blob))
    r = psql("SELECT model_info(t)->>'rows_trained', model_info(t)->>'layers' = model_info(model)->>'layers', "
             "t <> model FROM onnx_model, LATERAL (SELECT train_conv2d(pixels, label, "
             "jsonb_build_object('layers', model_info(model)->>'layers', 'input', '[14,14,1]'::jsonb, 'classes', 5, "
             "'normalize', 'minmax', 'epochs', 1), model) AS t FROM onnx_rows) x")[0]
    ok(r == ["64", "t", "t"], "an imported model trains on as train_conv2d's init_model (%s)" % r)

    # the bad-file matrix
    good = open(os.path.join(base, "cnn_bn_kept.onnx"), "rb").read()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 2])
    lstm = helper.make_model(helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="my_lstm", hidden_size=2)], "g", [x], [y],
        [helper.make_tensor("W", TensorProto.FLOAT, [1, 8, 4], [0.0] * 32),
         helper.make_tensor("R", TensorProto.FLOAT, [1, 8, 2], [0.0] * 16)]),
        opset_imports=[helper.make_opsetid("", 13)])
    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 1, 4, 4])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2])

    def conv_net(wdims, wvals):
        wt = TensorProto()
        wt.name = "W"
        wt.data_type = TensorProto.FLOAT
        wt.dims.extend(wdims)
        wt.float_data.extend(wvals)
        return helper.make_model(helper.make_graph(
            [helper.make_node("Conv", ["img", "W"], ["c"], name="the_conv", kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "G"], ["out"], transB=1)], "g", [img], [out],
            [wt, helper.make_tensor("G", TensorProto.FLOAT, [2, 4], [0.0] * 8)]),
            opset_imports=[helper.make_opsetid("", 13)])
    cases = [
        ("not ONNX", b"\x00\x01hello, not a protobuf\xff", "XX001", "not an ONNX model"),
        ("truncated", good[: len(good) // 2], "XX001", "not an ONNX model"),
        ("an LSTM", lstm.SerializeToString(), "0A000", 'ONNX operator LSTM (node "my_lstm")'),
        ("absurd dimensions", conv_net([1 << 30, 1 << 30, 3, 3], []).SerializeToString(), "54000", "absurd dimension"),
        ("wrong initializer size", conv_net([1, 1, 3, 3], [0.5] * 5).SerializeToString(), "22023",
         "holds 5 values but its dimensions make 9"),
    ]
    for what, data, code, msg in cases:
        got = sqlstate("model_from_onnx('\\x%s'::bytea)" % data.hex())
        ok(got[0] == code and msg in got[1], "a bad file (%s): ERROR %s naming it (got %s: %s)" % (what, code, got[0], got[1]))
    psql("DROP TABLE IF EXISTS onnx_rows, onnx_model")


def main():
    """Every network, then the summary line."""
    try:
        import cv2  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        ok(False, "python3-onnx and python3-opencv are importable (%s)" % e)
        return summary()
    for net in NETS:
        try:
            check(*net)
        except Exception as e:  # noqa: BLE001
            ok(False, "%s: %s" % (net[0], e))
    try:
        fixtures()
    except Exception as e:  # noqa: BLE001
        ok(False, "PyTorch's files and the bad-file matrix: %s" % e)
    psql("DROP TABLE IF EXISTS onnx_rows, onnx_model")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
