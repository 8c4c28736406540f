#!/usr/bin/python3
"""test/images/make_photos.py: the real photographs of test/images/photos.

Cuts crops out of four photographs that Debian ships in python3-skimage
(scikit-image 0.19.3's sample data; see photos/LICENSE) into the
one-folder-per-class layout load_images reads: train/<class>/ from the left
65% of each photo, test/<class>/ from the right 35%, so no test pixel was
seen in training. Crops are 56 to 120 pixels square at seeded random
places; even ones are saved as JPEG (quality 88) at their size, odd ones as
PNG shrunk to 40x40 by Pillow, so decode_image meets both formats and both
resizing directions at 32x32. Run once to (re)make the committed files:

    python3 test/images/make_photos.py [/usr/lib/python3/dist-packages/skimage/data]
"""
import os
import shutil
import sys

import numpy as np
from PIL import Image

PHOTOS = {  # class: file in skimage/data
    "astronaut": "astronaut.png",
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
}
COUNTS = {"train": 16, "test": 6}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/python3/dist-packages/skimage/data"
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photos")
    rng = np.random.default_rng(20261202)
    for split in COUNTS:
        shutil.rmtree(os.path.join(out, split), ignore_errors=True)
    for cls, name in sorted(PHOTOS.items()):
        im = Image.open(os.path.join(src, name)).convert("RGB")
        w, h = im.size
        for split, n in COUNTS.items():
            lo, hi = (0, int(w * 0.65)) if split == "train" else (int(w * 0.65), w)
            d = os.path.join(out, split, cls)
            os.makedirs(d)
            for k in range(n):
                s = int(rng.integers(56, 121))
                s = min(s, hi - lo, h)
                x = int(rng.integers(lo, hi - s + 1))
                y = int(rng.integers(0, h - s + 1))
                crop = im.crop((x, y, x + s, y + s))
                if k % 2 == 0:
                    crop.save(os.path.join(d, "%s-%02d.jpg" % (cls, k)), "JPEG", quality=88)
                else:
                    crop.resize((40, 40), Image.LANCZOS).save(os.path.join(d, "%s-%02d.png" % (cls, k)), "PNG")


if __name__ == "__main__":
    main()
