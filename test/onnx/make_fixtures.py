#!/usr/bin/python3
"""test/onnx/make_fixtures.py: ONNX files exported by PyTorch, for model_from_onnx's tests.

Writes test/fixtures/onnx/<name>.onnx (torch.onnx.export, opset 13) and
<name>.json: the network's input shape, classes, the byte pixels of four
rows (HWC, 0-255) and PyTorch's logits for them, the network fed x/255
(what mlcnn's "normalize": "minmax" feeds). Run once with Debian's
python3-torch and commit the output; the tests need no torch.

  - cnn_bn_kept: conv, batch norm (kept as BatchNormalization nodes: exported
    in training-preserving mode), relu, max pooling, flatten, linear
  - cnn_bn_folded: the same network exported in eval mode, where PyTorch folds
    batch norm into the convolutions
  - resnet: a residual block with a strided projection shortcut, batch norm,
    average and global average pooling, dropout, x.view(N, -1)
"""
import json
import os

import numpy as np
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "onnx")


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus a 1x1 strided projection of the input."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout))
        self.proj = nn.Conv2d(cin, cout, 1, stride)

    def forward(self, x):
        return self.body(x) + self.proj(x)


class ResNet(nn.Module):
    """stem, one block, pooling, a classifier that flattens with view."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = Block(8, 12, 2)
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = torch.relu(self.block(self.stem(x)))
        x = self.gap(self.pool(x))
        return self.fc(self.drop(x.view(x.size(0), -1)))


def cnn():
    """The small CNN with batch norm."""
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(10 * 3 * 3, 16), nn.ReLU(), nn.Linear(16, 5))


def settle(model, shape, gen):
    """A few training steps so the batch norm statistics are not the defaults, then eval mode."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(5):
        x = torch.rand((16,) + shape, generator=gen)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def write(name, model, shape, classes, gen, training):
    """The .onnx and the .json of one network."""
    c, h, w = shape
    pixels = torch.randint(0, 256, (4, h, w, c), generator=gen, dtype=torch.uint8)
    x = pixels.permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        logits = model(x)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, training=training,
                      do_constant_folding=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({"input": [h, w, c], "classes": classes,
                   "pixels": [p.flatten().tolist() for p in pixels],
                   "logits": logits.tolist()}, f)
    import onnx
    print(name, [n.op_type for n in onnx.load(path).graph.node])


def main():
    """Every fixture."""
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    m = cnn()
    settle(m, (1, 14, 14), gen)
    write("cnn_bn_kept", m, (1, 14, 14), 5, gen, torch.onnx.TrainingMode.PRESERVE)
    write("cnn_bn_folded", m, (1, 14, 14), 5, gen, torch.onnx.TrainingMode.EVAL)
    r = ResNet()
    settle(r, (3, 12, 12), gen)
    write("resnet", r, (3, 12, 12), 4, gen, torch.onnx.TrainingMode.PRESERVE)


if __name__ == "__main__":
    main()
