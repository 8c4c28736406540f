#!/usr/bin/python3
"""test/images/decode.py: decode_image against images written by Pillow and OpenCV.

PNG (grey, RGB, 16-bit, palette, RGBA, grey+alpha) and JPEG (baseline and
progressive) written with Debian's python3-pil decode to their exact pixels
(JPEG: within 2 grey levels on average of its source); a 2x nearest-upscaled
PNG shrinks back to the exact original; resizing agrees with OpenCV's
INTER_AREA and INTER_LINEAR within one level; training on decode_image(png)
gives the same model bytes as training on the raw pixels; the bad-image
matrix (truncated, a decompression-bomb header, random bytes, a JPEG header
alone, bad arguments) gives its ERRORs within a second and the backend still
answers. Connects with psql to the database the environment names. Prints
TAP lines and "N passed, N failed".
"""
import io
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import ok, sqlstate, summary, try_psql as psql  # noqa: E402


def decode(data, h, w, c):
    """decode_image's bytes as an array (h, w, c), or the error text."""
    rows, err = psql("SELECT encode(decode_image('\\x%s'::bytea, %d, %d, %d), 'hex')" % (data.hex(), h, w, c))
    if not rows:
        return err.strip()
    return np.frombuffer(bytes.fromhex(rows[0][0]), dtype=np.uint8).reshape(h, w, c)


def encode(arr, mode, fmt="PNG", **kw):
    """arr as an image file through Pillow."""
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(arr, mode).save(b, fmt, **kw)
    return b.getvalue()


def luma(rgb):
    """ITU-R BT.601 luma, rounded, as decode_image computes it."""
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    return ((299 * r + 587 * g + 114 * b + 500) // 1000).astype(np.uint8)


def main():
    """Every check, then the summary."""
    try:
        import cv2
        from PIL import Image  # noqa: F401
    except ImportError as e:
        ok(False, "python3-pil and python3-opencv are importable (%s)" % e)
        return summary()
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    rgb = rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)

    got = decode(encode(grey, "L"), 13, 17, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], grey), "grey PNG: the exact pixels")
    got = decode(encode(rgb, "RGB"), 11, 9, 3)
    ok(isinstance(got, np.ndarray) and np.array_equal(got, rgb), "RGB PNG: the exact pixels, interleaved")
    got = decode(encode(rgb, "RGB"), 11, 9, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], luma(rgb)), "RGB PNG to grey: BT.601 luma")
    got = decode(encode(grey, "L"), 13, 17, 3)
    ok(isinstance(got, np.ndarray) and all(np.array_equal(got[..., k], grey) for k in range(3)),
       "grey PNG to RGB: replicated")
    g16 = grey.astype(np.uint16) * 257
    got = decode(encode(g16, "I;16"), 13, 17, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], grey), "16-bit grey PNG: v * 257 reads as v")
    pal = palette_png(rgb)
    got = decode(pal[0], 11, 9, 3)
    ok(isinstance(got, np.ndarray) and np.array_equal(got, pal[1]), "palette PNG: the palette's colours")
    rgba = np.concatenate([rgb, rng.integers(0, 256, (11, 9, 1), dtype=np.uint8)], axis=2)
    want = ((rgb.astype(np.int64) * rgba[..., 3:4] + 127) // 255).astype(np.uint8)
    got = decode(encode(rgba, "RGBA"), 11, 9, 3)
    ok(isinstance(got, np.ndarray) and np.array_equal(got, want), "RGBA PNG: alpha composited on black")
    la = np.stack([grey, rng.integers(0, 256, grey.shape, dtype=np.uint8)], axis=2)
    want = ((la[..., 0].astype(np.int64) * la[..., 1] + 127) // 255).astype(np.uint8)
    got = decode(encode(la, "LA"), 13, 17, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], want), "grey+alpha PNG: composited on black")
    ilace = interlaced_png(grey)
    got = decode(ilace, 13, 17, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], grey), "interlaced (Adam7) PNG: the exact pixels")

    big = np.repeat(np.repeat(grey, 2, axis=0), 2, axis=1)
    got = decode(encode(big, "L"), 13, 17, 1)
    ok(isinstance(got, np.ndarray) and np.array_equal(got[..., 0], grey),
       "a 2x nearest-upscaled PNG shrinks back to the exact original")
    src = rng.integers(0, 256, (37, 29), dtype=np.uint8)
    got = decode(encode(src, "L"), 10, 12, 1)
    want = cv2.resize(src, (12, 10), interpolation=cv2.INTER_AREA)
    ok(isinstance(got, np.ndarray) and int(np.max(np.abs(got[..., 0].astype(int) - want))) <= 1,
       "shrinking 37x29 to 10x12: OpenCV's INTER_AREA within 1 level")
    got = decode(encode(src, "L"), 80, 61, 1)
    want = cv2.resize(src, (61, 80), interpolation=cv2.INTER_LINEAR)
    ok(isinstance(got, np.ndarray) and int(np.max(np.abs(got[..., 0].astype(int) - want))) <= 1,
       "enlarging 37x29 to 80x61: OpenCV's INTER_LINEAR within 1 level")

    yy, xx = np.mgrid[0:48, 0:40]
    smooth = (128 + 60 * np.sin(yy / 6.0) * np.cos(xx / 9.0) + xx).clip(0, 255).astype(np.uint8)
    for prog in (False, True):
        got = decode(encode(smooth, "L", "JPEG", quality=95, progressive=prog), 48, 40, 1)
        err = float(np.mean(np.abs(got[..., 0].astype(int) - smooth))) if isinstance(got, np.ndarray) else 99
        ok(err <= 2, "%s JPEG, quality 95: within 2 grey levels on average of its source (%.2f)"
           % ("progressive" if prog else "baseline", err))
    colour = np.stack([smooth, smooth[::-1], smooth[:, ::-1]], axis=2)
    got = decode(encode(colour, "RGB", "JPEG", quality=95), 48, 40, 3)
    err = float(np.mean(np.abs(got.astype(int) - colour))) if isinstance(got, np.ndarray) else 99
    ok(err <= 3, "RGB JPEG, quality 95: within 3 levels on average (%.2f)" % err)

    # training on decode_image(png) gives the bytes of training on the raw pixels
    vals = []
    for i in range(60):
        img = ((np.arange(64).reshape(8, 8) * (i % 3 + 1) + i * 7) % 256).astype(np.uint8)
        vals.append("(%d, %d, '\\x%s'::bytea, '\\x%s'::bytea)" % (i, i % 3, img.tobytes().hex(), encode(img, "L").hex()))
    opts = '{"layers": "conv(4,3) relu flatten dense(3)", "input": [8, 8, 1], "classes": 3, "epochs": 2, "batch_size": 16, "record_times": false}'
    rows, err = psql("DROP TABLE IF EXISTS img_rows; CREATE TABLE img_rows (i int, label int, raw bytea, png bytea); "
                     "INSERT INTO img_rows VALUES %s; "
                     "SELECT (SELECT train_conv2d(raw, label, '%s') FROM img_rows) = "
                     "(SELECT train_conv2d(decode_image(png, 8, 8, 1), label, '%s') FROM img_rows); "
                     "DROP TABLE img_rows" % (",".join(vals), opts, opts))
    ok(rows == [["t"]], "training on decode_image(png) gives the model bytes of training on the raw pixels %s"
       % (err.strip() if rows != [["t"]] else ""))

    # the bad-image matrix
    png = encode(grey, "L")
    jpg = encode(smooth, "L", "JPEG", quality=90)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
            + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    cases = [
        ("truncated PNG", "decode_image('\\x%s'::bytea, 8, 8, 1)" % png[: len(png) // 2].hex(), "22P02", "PNG"),
        ("decompression bomb (a 100000x100000 header)", "decode_image('\\x%s'::bytea, 8, 8, 1)" % bomb.hex(),
         "54000", "100000x100000"),
        ("random bytes", "decode_image('\\x%s'::bytea, 8, 8, 1)" % bytes(rng.integers(0, 256, 64, dtype=np.uint8)).hex(),
         "22P02", "not a PNG or JPEG"),
        ("a JPEG header alone", "decode_image('\\x%s'::bytea, 8, 8, 1)" % jpg[:40].hex(), "22P02", "JPEG"),
        ("truncated JPEG", "decode_image('\\x%s'::bytea, 8, 8, 1)" % jpg[: len(jpg) * 2 // 3].hex(), "22P02", "JPEG"),
        ("height 0", "decode_image('\\x%s'::bytea, 0, 8, 1)" % png.hex(), "22023", "height and width"),
        ("channels 7", "decode_image('\\x%s'::bytea, 8, 8, 7)" % png.hex(), "22023", "channels"),
    ]
    for what, sql, code, word in cases:
        got = sqlstate(sql)
        ok(got[0] == code and word in got[1] and got[2] < 1.0,
           "bad image (%s): ERROR %s within a second (got %s: %s, %.2f s)" % (what, code, got[0], got[1], got[2]))
    rows, _ = psql("SELECT 1")
    ok(rows == [["1"]], "the backend still answers")
    folder_checks(rng)
    return summary()


def folder_checks(rng):
    """load_images over a folder of class folders, end to end to a colour model."""
    import os
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="mlcnn_images_")
    os.chmod(root, 0o755)
    want = {}
    try:
        for label, base in (("cat", 40), ("dog", 200)):
            d = os.path.join(root, label)
            os.mkdir(d)
            os.chmod(d, 0o755)
            for k in range(12):
                img = np.clip(base + rng.integers(-30, 30, (10 + k, 12, 3)), 0, 255).astype(np.uint8)
                name = os.path.join(d, "%02d.%s" % (k, "png" if k % 2 else "jpg"))
                with open(name, "wb") as f:
                    f.write(encode(img, "RGB", "PNG" if k % 2 else "JPEG", quality=92))
                os.chmod(name, 0o644)
                want[name] = label
        with open(os.path.join(root, "cat", "notes.txt"), "w") as f:
            f.write("not an image")
        os.chmod(os.path.join(root, "cat", "notes.txt"), 0o644)
        os.mkfifo(os.path.join(root, "dog", "a_fifo.png"), 0o644)
        with open(os.path.join(root, "README"), "w") as f:
            f.write("outside the class folders")
        rows, err = psql("SELECT path, label, length(image) FROM load_images('%s')" % root)
        got = {r[0]: r[1] for r in rows}
        ok(got == want and "skipped 3 entries" in err,
           "load_images: 24 images with their class folders as labels, the text file, the FIFO (never "
           "opened) and the file outside the class folders skipped with a NOTICE (%d rows; %s)"
           % (len(rows), err.strip()))
        ok([r[0] for r in rows] == sorted(want), "load_images: rows in bytewise path order")
        rows, err = psql(
            "CREATE TEMP TABLE photos AS SELECT label, decode_image(image, 8, 8, 3) AS px FROM load_images('%s'); "
            "CREATE TEMP TABLE m AS SELECT train_conv2d(px, (label = 'dog')::int, "
            "'{\"input\": [8, 8, 3], \"classes\": 2, \"layers\": \"conv(4,3) relu maxpool(2) dense(2)\", "
            "\"epochs\": 30, \"batch_size\": 8, \"learning_rate\": 0.01, \"optimizer\": \"adam\"}') AS model FROM photos; "
            "SELECT count(*) FILTER (WHERE predict(model, px) = (label = 'dog')::int), count(*) FROM m, photos"
            % root)
        ok(rows and rows[-1][1] == "24" and int(rows[-1][0]) >= 22,
           "a folder of PNG and JPEG photos becomes a trained colour model that predicts its classes in SQL (%s %s)"
           % (rows, err.strip()))
        _, err = psql("SELECT count(*) FROM load_images('%s/nothing_here')" % root)
        ok("could not open image folder" in err, "load_images of a missing folder: an ERROR naming it (%s)" % err.strip())
        _, err = psql("SELECT count(*) FROM load_images('%s/README')" % root)
        ok("is not a folder" in err, "load_images of a file: an ERROR (%s)" % err.strip())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def palette_png(rgb):
    """rgb quantised to a 16-colour palette PNG, and the pixels it stands for."""
    from PIL import Image
    im = Image.fromarray(rgb, "RGB").quantize(16)
    b = io.BytesIO()
    im.save(b, "PNG")
    return b.getvalue(), np.asarray(im.convert("RGB"))


def interlaced_png(grey):
    """grey as an Adam7-interlaced 8-bit PNG (Pillow writes no interlaced files): the seven
    passes' scanlines, each with filter type 0, deflated with zlib."""
    h, w = grey.shape
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
    raw = b""
    for y0, x0, dy, dx in passes:
        sub = grey[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    sys.exit(main())
