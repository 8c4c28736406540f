#!/usr/bin/python3
"""make_fixtures.py: PyTorch reference values for mlcnn's unit tests.

Run once with the Python that has torch (on the build machine:
/usr/bin/python3 test/make_fixtures.py from the repository root); it writes
test/fixtures/ref_cnn.bin, test/fixtures/layers.bin,
test/fixtures/schedules.bin, the graph core's test/fixtures/ops.bin (batch
norm, average pooling, grouped convolutions), the whole networks built from
mlcnn layer specs and trained three steps (test/fixtures/resnet.bin,
resnet_proj.bin, resnet_nested.bin, graph_net.bin, graph_flat.bin,
graph_dead.bin) and test/fixtures/manifest.txt; with file names as
arguments (make_fixtures.py ops.bin resnet.bin) only those, and the
manifest of every file present. Everything is seeded, so running it again
gives the same inputs and weights (and, on the same torch build and CPU,
the same bytes).
test/unit/test_torch.c reads the .bin files; test/fixtures/README.md says
what each tensor is and why the tolerances are what they are.

File format (all little-endian):
    8 bytes  magic "MLFX0001"
    i32      number of tensors
    then per tensor:
        48 bytes name, NUL-padded
        i32 dtype (0 = float32, 1 = int32)
        i32 ndim (0..4), i32 dims[4] (unused dims 1)
        the values, row-major, prod(dims) * 4 bytes

Layouts are PyTorch's: activations (B,C,H,W), conv weights (OC,C,K,K),
dense weights (N,I). mlcnn keeps activations as (C,B,H,W); the C test
transposes, the fixtures do not.
"""

import copy
import os
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F

SEED = 20240601
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

# post-step parameter samples: the whole first conv plus every 7th value
SAMPLE_STRIDE = 7
SAMPLE_HEAD = 320


class FixtureFile:
    """Collects named tensors and writes them in the MLFX format."""

    def __init__(self, path):
        self.path = path
        self.tensors = []

    def add(self, name, value, dtype=np.float32):
        # a copy: a tensor's numpy view would follow later in-place updates (optimizer steps,
        # running statistics); reshape keeps a 0-dim tensor 0-dim (ascontiguousarray makes it 1-dim)
        src = np.array(value.detach().cpu().numpy() if torch.is_tensor(value) else value, dtype=dtype)
        arr = np.ascontiguousarray(src).reshape(src.shape)
        assert len(name.encode()) < 48, name
        assert arr.ndim <= 4, name
        self.tensors.append((name, arr))

    def write(self):
        with open(self.path, "wb") as f:
            f.write(b"MLFX0001")
            f.write(struct.pack("<i", len(self.tensors)))
            for name, arr in self.tensors:
                dims = list(arr.shape) + [1] * (4 - arr.ndim)
                f.write(name.encode().ljust(48, b"\0"))
                f.write(struct.pack("<6i", 0 if arr.dtype == np.float32 else 1,
                                    arr.ndim, *dims))
                f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def flat_params(model):
    """All parameters in state_dict order, concatenated (mlcnn's buffer)."""
    return torch.cat([t.detach().reshape(-1) for t in model.state_dict().values()])


def sample_index(n):
    """Indices of the post-step samples: [0, SAMPLE_HEAD) then every SAMPLE_STRIDE-th."""
    idx = [i for i in range(n) if i < SAMPLE_HEAD or i % SAMPLE_STRIDE == 0]
    return np.array(idx, dtype=np.int32)


def optimizer_steps(model, grads, make_opt, steps):
    """Parameters after each of `steps` steps of make_opt with the same gradients."""
    m = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    opt = make_opt(m)
    out = []
    for _ in range(steps):
        for p, g in zip(m, grads):
            p.grad = g.clone()
        opt.step()
        out.append(torch.cat([p.detach().reshape(-1) for p in m]))
    return out


def reference_cnn(fx):
    """The reference CNN on 8 MNIST-sized images: logits, loss, gradients, optimizer steps."""
    torch.manual_seed(SEED)
    model = tnn.Sequential(
        tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(1600, 128), tnn.ReLU(), tnn.Linear(128, 10))
    B = 8
    # pixel bytes, so the test can also run them through nn_load_pixels (minmax)
    pixels = torch.randint(0, 256, (B, 28, 28), dtype=torch.int32)
    x = (pixels.to(torch.float32) / 255.0).reshape(B, 1, 28, 28)
    labels = torch.randint(0, 10, (B,), dtype=torch.int64)

    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    names = list(model.state_dict().keys())
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias",
                     "7.weight", "7.bias", "9.weight", "9.bias"], names

    fx.add("pixels", pixels, np.int32)
    fx.add("input", x)
    fx.add("labels", labels, np.int32)
    fx.add("params", flat_params(model))
    fx.add("logits", logits)
    fx.add("loss", loss.reshape(1))
    fx.add("grads", torch.cat([g.reshape(-1) for g in grads]))
    # per-tensor sizes in state_dict order, so the test checks the layout
    fx.add("param_sizes", np.array([t.numel() for t in model.state_dict().values()]), np.int32)

    idx = sample_index(sum(p.numel() for p in model.parameters()))
    fx.add("step_index", idx, np.int32)

    # hyper-parameters stored beside the results: lr, beta1/momentum, beta2, eps, weight decay
    adam = (1e-3, 0.9, 0.999, 1e-8, 0.0)
    adam_wd = (1e-3, 0.9, 0.999, 1e-8, 1e-2)
    momentum = (0.01, 0.9, 0.0, 0.0, 5e-4)
    sgd = (0.1, 0.0, 0.0, 0.0, 1e-3)
    runs = [
        ("adam", adam, 2, lambda m: torch.optim.Adam(m, lr=adam[0], betas=(adam[1], adam[2]),
                                                     eps=adam[3], weight_decay=adam[4])),
        ("adam_wd", adam_wd, 1, lambda m: torch.optim.Adam(m, lr=adam_wd[0], betas=(adam_wd[1], adam_wd[2]),
                                                           eps=adam_wd[3], weight_decay=adam_wd[4])),
        ("momentum", momentum, 2, lambda m: torch.optim.SGD(m, lr=momentum[0], momentum=momentum[1],
                                                            weight_decay=momentum[4])),
        ("sgd", sgd, 1, lambda m: torch.optim.SGD(m, lr=sgd[0], weight_decay=sgd[4])),
    ]
    for name, hp, steps, make in runs:
        fx.add(name + ".hp", np.array(hp, dtype=np.float32))
        for t, p in enumerate(optimizer_steps(model, grads, make, steps), 1):
            fx.add("%s.t%d" % (name, t), p.numpy()[idx])


def layer_case(fx, name, module, x, with_params=True):
    """One layer: input, parameters, output, a random upstream gradient and the gradients."""
    x = x.clone().requires_grad_(True)
    y = module(x)
    dout = torch.randn_like(y)
    y.backward(dout)
    fx.add(name + ".inp", x)
    if with_params:
        fx.add(name + ".weight", module.weight)
        fx.add(name + ".bias", module.bias)
    fx.add(name + ".out", y)
    fx.add(name + ".dout", dout)
    fx.add(name + ".dinp", x.grad)
    if with_params:
        fx.add(name + ".dweight", module.weight.grad)
        fx.add(name + ".dbias", module.bias.grad)


def layers(fx):
    """Per-layer fixtures for every layer with parameters or shape logic."""
    torch.manual_seed(SEED + 1)
    # conv: stride 2, 3 input channels, H != W
    layer_case(fx, "conv_stride2", tnn.Conv2d(3, 4, 3, stride=2), torch.randn(2, 3, 9, 7))
    # conv: 'same' padding (1 per side for k = 3), H != W
    layer_case(fx, "conv_same", tnn.Conv2d(3, 5, 3, padding=1), torch.randn(2, 3, 6, 8))
    # conv: valid, kernel 5, two channels
    layer_case(fx, "conv_k5", tnn.Conv2d(2, 3, 5), torch.randn(3, 2, 10, 8))
    # conv: 1x1 (mlcnn skips im2col for it)
    layer_case(fx, "conv_1x1", tnn.Conv2d(3, 4, 1), torch.randn(2, 3, 5, 6))
    # conv: 'same' with kernel 5 (padding 2 per side) on odd sizes
    layer_case(fx, "conv_same_k5", tnn.Conv2d(2, 3, 5, padding=2), torch.randn(2, 2, 7, 5))
    # maxpool: 2 (floors odd sizes), and window 3 stride 2
    layer_case(fx, "maxpool2", tnn.MaxPool2d(2), torch.randn(2, 3, 7, 9), with_params=False)
    layer_case(fx, "maxpool3s2", tnn.MaxPool2d(3, 2), torch.randn(2, 2, 9, 8), with_params=False)
    # dense
    layer_case(fx, "dense", tnn.Linear(12, 5), torch.randn(3, 12))
    # flatten of (B,C,H,W) in PyTorch's (c,h,w) order
    layer_case(fx, "flatten", tnn.Flatten(), torch.randn(2, 3, 4, 5), with_params=False)
    # relu; values kept away from 0 so the kink is not in question
    r = torch.randn(2, 3, 4, 5)
    r = torch.where(r.abs() < 0.01, torch.full_like(r, 0.5), r)
    layer_case(fx, "relu", tnn.ReLU(), r, with_params=False)

    # softmax cross-entropy (mean over the batch), one row with huge logits
    logits = torch.randn(5, 7) * 3
    logits[2] += 1000.0
    logits[3] -= 500.0
    labels = torch.tensor([0, 6, 3, 2, 5])
    lg = logits.clone().requires_grad_(True)
    loss = F.cross_entropy(lg, labels)
    loss.backward()
    fx.add("xent.logits", logits)
    fx.add("xent.labels", labels, np.int32)
    fx.add("xent.probs", torch.softmax(logits, dim=1))
    fx.add("xent.loss", loss.detach().reshape(1))
    fx.add("xent.dlogits", lg.grad)


def schedules(fx):
    """Learning rates per step of PyTorch's OneCycleLR (defaults) and cosine annealing to 0."""
    for total in (2, 7, 100, 1000):
        for name in ("onecycle", "cosine"):
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=0.01, momentum=0.9)
            if name == "onecycle":
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=total)
            else:
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - 1, eta_min=0.0)
            lrs = []
            for _ in range(total):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            fx.add("lr.%s.%d" % (name, total), np.array(lrs, dtype=np.float32))

# ---------------------------------------------------------------- the graph core's ops


def batchnorm_case(fx, name, C, x):
    """A batch norm in training mode, then a fresh copy in evaluation mode.

    Weight, bias and running statistics are random (not 1, 0, 0, 1), so a
    swapped or missing term shows. Training: output, gradients and the
    running statistics after the update (momentum 0.1, unbiased variance).
    Evaluation: the same module before the update, on the running statistics.
    """
    make = tnn.BatchNorm2d if x.dim() == 4 else tnn.BatchNorm1d
    bn = make(C)
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(C))
        bn.bias.copy_(0.3 * torch.randn(C))
        bn.running_mean.copy_(0.2 * torch.randn(C))
        bn.running_var.copy_(0.5 + torch.rand(C))
    fx.add(name + ".inp", x)
    fx.add(name + ".weight", bn.weight)
    fx.add(name + ".bias", bn.bias)
    fx.add(name + ".running_mean", bn.running_mean)
    fx.add(name + ".running_var", bn.running_var)
    ev = make(C)
    ev.load_state_dict(bn.state_dict())
    dout = None
    for mode, mod in (("train", bn), ("eval", ev)):
        mod.train(mode == "train")
        xi = x.clone().requires_grad_(True)
        y = mod(xi)
        if dout is None:
            dout = torch.randn_like(y)
            fx.add(name + ".dout", dout)
        y.backward(dout)
        fx.add("%s.%s.out" % (name, mode), y)
        fx.add("%s.%s.dinp" % (name, mode), xi.grad)
        fx.add("%s.%s.dweight" % (name, mode), mod.weight.grad)
        fx.add("%s.%s.dbias" % (name, mode), mod.bias.grad)
    fx.add(name + ".train.running_mean", bn.running_mean)
    fx.add(name + ".train.running_var", bn.running_var)
    assert int(bn.num_batches_tracked) == 1 and int(ev.num_batches_tracked) == 0


def graph_ops(fx):
    """Per-op fixtures of the graph core: batch norm, average pooling, grouped convolutions."""
    torch.manual_seed(SEED + 3)
    # channels with different means and spreads; BatchNorm2d over (B,H,W), BatchNorm1d over B
    x2 = torch.randn(4, 3, 5, 6) * torch.tensor([1.0, 2.5, 0.4]).reshape(1, 3, 1, 1) \
        + torch.tensor([0.5, -1.0, 3.0]).reshape(1, 3, 1, 1)
    batchnorm_case(fx, "bn2d", 3, x2)
    x1 = torch.randn(6, 5) * torch.tensor([1.0, 3.0, 0.2, 1.5, 0.7]) + torch.tensor([0.0, 1.0, -2.0, 0.5, 4.0])
    batchnorm_case(fx, "bn1d", 5, x1)
    # average pooling: window 3 stride 2 (overlapping), window 2 on odd sizes (floor), window 2 stride 1
    layer_case(fx, "avgpool3s2", tnn.AvgPool2d(3, 2), torch.randn(2, 3, 9, 8), with_params=False)
    layer_case(fx, "avgpool2", tnn.AvgPool2d(2), torch.randn(2, 2, 7, 9), with_params=False)
    layer_case(fx, "avgpool2s1", tnn.AvgPool2d(2, 1), torch.randn(2, 2, 5, 4), with_params=False)
    layer_case(fx, "gap", tnn.AdaptiveAvgPool2d(1), torch.randn(3, 4, 5, 7), with_params=False)
    # grouped: 4 -> 6 channels in 2 groups, padding 1; depthwise: 4 -> 4 in 4 groups, stride 2,
    # padding 1; depthwise with multiplier 2: 3 -> 6 in 3 groups, valid
    layer_case(fx, "conv_groups2", tnn.Conv2d(4, 6, 3, padding=1, groups=2), torch.randn(2, 4, 7, 6))
    layer_case(fx, "conv_depthwise", tnn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4), torch.randn(2, 4, 9, 8))
    layer_case(fx, "conv_depthwise_x2", tnn.Conv2d(3, 6, 3, groups=3), torch.randn(2, 3, 6, 7))


# ---------------------------------------------------------------- whole nets from mlcnn specs


class Residual(tnn.Module):
    """residual(LAYERS) as names.c names it: body(x) + x, or body(x) + proj(x)."""

    def __init__(self, body, proj):
        super().__init__()
        self.body = body
        self.proj = proj

    def forward(self, x):
        return self.body(x) + (x if self.proj is None else self.proj(x))


class Graph(tnn.Module):
    """A net in the named form (labels, from, add, concat): children numbered as names.c numbers the nodes."""

    def __init__(self):
        super().__init__()
        self.nodes = []         # (kind, child name or None, input tensor ids); tensor 0 is the input

    def forward(self, x):
        t = [x]
        for kind, child, inputs in self.nodes:
            if kind == "add":
                y = t[inputs[0]]
                for k in inputs[1:]:
                    y = y + t[k]
            elif kind == "concat":
                y = torch.cat([t[k] for k in inputs], dim=1)
            else:
                y = self._modules[child](t[inputs[0]])
            t.append(y)
        return t[-1]


def parse_spec(text):
    """mlcnn's layer-spec grammar (src/nn/spec.c) into items: ("layer", label, name, args),
    ("residual", label, items) and ("from", label); args are ints or words, key=value as (key, value)."""
    pos = [0]

    def skip(extra=""):
        while pos[0] < len(text) and (text[pos[0]].isspace() or text[pos[0]] in extra):
            pos[0] += 1

    def word():
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, pos[0])
        assert m, "a name at %d of %r" % (pos[0], text)
        pos[0] = m.end()
        return m.group(0)

    def expect(ch):
        skip()
        assert text[pos[0]] == ch, "%r at %d of %r" % (ch, pos[0], text)
        pos[0] += 1

    def value(v):
        v = v.strip()
        return int(v) if re.fullmatch(r"-?\d+", v) else v.lower()

    def items():
        out = []
        while True:
            skip(",")
            if pos[0] >= len(text) or text[pos[0]] == ")":
                return out
            name, label = word(), None
            skip()
            if pos[0] < len(text) and text[pos[0]] == ":":
                pos[0] += 1
                skip()
                label, name = name.lower(), word()
            name = name.lower()
            if name == "from":
                expect("(")
                skip()
                out.append(("from", word().lower()))
                expect(")")
            elif name == "residual":
                expect("(")
                out.append(("residual", label, items()))
                expect(")")
            else:
                args = []
                skip()
                if pos[0] < len(text) and text[pos[0]] == "(":
                    end = text.index(")", pos[0])
                    for a in filter(None, (a.strip() for a in text[pos[0] + 1:end].split(","))):
                        args.append(tuple(value(v) if i else v.strip().lower() for i, v in enumerate(a.split("=")))
                                    if "=" in a else value(a))
                    pos[0] = end + 1
                out.append(("layer", label, name, args))

    return items()


def spec_modules(name, args, shape):
    """The PyTorch modules of one mlcnn layer on shape ("img", C, H, W) or ("flat", N), each with
    its output shape (a dense layer on an image is a Flatten and a Linear, as in names.c)."""
    kw = dict(a for a in args if isinstance(a, tuple))
    pos = [a for a in args if not isinstance(a, tuple)]
    if name == "conv":
        F, K = pos[0], pos[1]
        S = pos[2] if len(pos) > 2 else 1
        P = pos[3] if len(pos) > 3 else 0
        P = (K - 1) // 2 if P == "same" else 0 if P == "valid" else P
        _, C, H, W = shape
        return [(tnn.Conv2d(C, F, K, stride=S, padding=P, groups=kw.get("groups", 1)),
                 ("img", F, (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1))]
    if name in ("maxpool", "avgpool"):
        K = pos[0]
        S = pos[1] if len(pos) > 1 else K
        _, C, H, W = shape
        return [((tnn.MaxPool2d if name == "maxpool" else tnn.AvgPool2d)(K, S),
                 ("img", C, (H - K) // S + 1, (W - K) // S + 1))]
    if name == "globalavgpool":
        return [(tnn.AdaptiveAvgPool2d(1), ("img", shape[1], 1, 1))]
    if name == "batchnorm":
        return [(tnn.BatchNorm2d(shape[1]) if shape[0] == "img" else tnn.BatchNorm1d(shape[1]), shape)]
    if name == "relu":
        return [(tnn.ReLU(), shape)]
    if name == "flatten":
        return [(tnn.Flatten(), ("flat", shape[1] * shape[2] * shape[3]))]
    if name == "dense":
        pre = spec_modules("flatten", [], shape) if shape[0] == "img" else []
        n = pre[0][1][1] if pre else shape[1]
        return pre + [(tnn.Linear(n, pos[0]), ("flat", pos[0]))]
    raise ValueError("no PyTorch module for mlcnn layer " + name)


def sequential_from(items, shape):
    """A Sequential of items (residual blocks as Residual children), and the output shape."""
    mods = []
    for it in items:
        if it[0] == "residual":
            body, out = sequential_from(it[2], shape)
            proj = None
            if out != shape:
                # mlcnn's projection: a 1x1 convolution with bias and the stride that matches the size
                s = next(s for s in range(1, 65)
                         if (shape[2] - 1) // s + 1 == out[2] and (shape[3] - 1) // s + 1 == out[3])
                proj = tnn.Conv2d(shape[1], out[1], 1, stride=s)
            mods.append(Residual(body, proj))
            shape = out
        else:
            assert it[0] == "layer" and it[1] is None and it[2] not in ("add", "concat"), it
            for m, shape in spec_modules(it[2], it[3], shape):
                mods.append(m)
    return tnn.Sequential(*mods), shape


def graph_from(items, shape):
    """A Graph of a spec in the named form (no residual blocks), and the output shape."""
    g = Graph()
    shapes = [shape]            # per tensor
    labels = {"input": 0}
    cur = 0
    for it in items:
        if it[0] == "from":
            cur = labels[it[1]]
            continue
        assert it[0] == "layer", it
        _, label, name, args = it
        if name in ("add", "concat"):
            ins = [labels[a] for a in args]
            s = shapes[ins[0]]
            if name == "concat":
                s = (s[0], sum(shapes[k][1] for k in ins)) + tuple(s[2:])
            g.nodes.append((name, None, ins))
            shapes.append(s)
        else:
            for m, s in spec_modules(name, args, shapes[cur]):
                child = str(len(g.nodes))
                g.add_module(child, m)
                g.nodes.append(("module", child, [cur]))
                shapes.append(s)
                cur = len(shapes) - 1
        cur = len(shapes) - 1
        if label:
            labels[label] = cur
    return g, shapes[-1]


def net_from_spec(spec, in_shape):
    """The PyTorch module tree of an mlcnn spec on (C,H,W), as names.c documents it."""
    items = parse_spec(spec)
    named = any(it[0] == "from" or it[1] or (it[0] == "layer" and it[2] in ("add", "concat")) for it in items)
    return (graph_from if named else sequential_from)(items, ("img",) + tuple(in_shape))[0]


def randomize_norms(model):
    """Batch norms as if trained a little: random weight, bias, running statistics, 5 batches seen."""
    for m in model.modules():
        if isinstance(m, (tnn.BatchNorm1d, tnn.BatchNorm2d)):
            C = m.num_features
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(C))
                m.bias.copy_(0.2 * torch.randn(C))
                m.running_mean.copy_(0.1 * torch.randn(C))
                m.running_var.copy_(0.5 + torch.rand(C))
                m.num_batches_tracked.fill_(5)


def flat_buffers(model):
    """The buffers (running statistics, num_batches_tracked as float) in state_dict order: mlcnn's buffer array."""
    bufs = [t.detach().to(torch.float32).reshape(-1) for k, t in model.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    return torch.cat([torch.zeros(0)] + bufs)


def flat_params_only(model):
    """The parameters (no buffers) in state_dict order, concatenated: mlcnn's parameter array."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def zero_missing_grads(model):
    """Zero gradients for the parameters of a branch that leads nowhere (autograd leaves them None),
    so that SGD still applies weight decay and momentum to them, as mlcnn's optimizer does."""
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)


def net_case(fx, spec, in_shape, classes, B, seed, eval_grads=True, sample_stride=1):
    """A whole network from an mlcnn spec: the initial state by state_dict key, then three
    training steps on one batch (SGD with momentum) and an evaluation-mode pass."""
    torch.manual_seed(seed)
    model = net_from_spec(spec, in_shape)
    randomize_norms(model)
    C, H, W = in_shape
    pixels = torch.randint(0, 256, (B, C, H, W), dtype=torch.int32)
    x = pixels.to(torch.float32) / 255.0
    labels = torch.randint(0, classes, (B,), dtype=torch.int64)
    fx.add("input", x)
    fx.add("labels", labels, np.int32)
    for k, t in model.state_dict().items():
        fx.add("sd." + k, t, np.int32 if k.endswith("num_batches_tracked") else np.float32)

    ev = copy.deepcopy(model)
    # training: lr 0.05, momentum 0.9, weight decay 5e-4, on every parameter (mlcnn's optimizer does the same)
    hp = (0.05, 0.9, 0.0, 0.0, 5e-4)
    fx.add("sgd.hp", np.array(hp, dtype=np.float32))
    opt = torch.optim.SGD(model.parameters(), lr=hp[0], momentum=hp[1], weight_decay=hp[4])
    model.train()
    for t in (1, 2, 3):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        zero_missing_grads(model)
        fx.add("t%d.logits" % t, logits)
        fx.add("t%d.loss" % t, loss.reshape(1))
        fx.add("t%d.buffers" % t, flat_buffers(model))
        if t == 1:
            for k, p in model.named_parameters():
                fx.add("grad." + k, p.grad)
        opt.step()
    fx.add("sample_stride", np.array([sample_stride]), np.int32)
    fx.add("t3.params", flat_params_only(model)[::sample_stride])

    # evaluation mode on the initial state: running statistics, which stay as they are
    ev.eval()
    logits = ev(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    zero_missing_grads(ev)
    fx.add("eval.logits", logits)
    fx.add("eval.loss", loss.reshape(1))
    if eval_grads:
        for k, p in ev.named_parameters():
            fx.add("eval.grad." + k, p.grad)


# the specs test_torch.c builds the same nets from
RESNET_SPEC = ("conv(16,3,1,same) batchnorm relu "
               "residual(conv(16,3,1,same) batchnorm relu conv(16,3,1,same) batchnorm) relu maxpool(2) "
               "conv(32,3,1,same) batchnorm relu "
               "residual(conv(32,3,1,same) batchnorm relu conv(32,3,1,same) batchnorm) relu maxpool(2) "
               "globalavgpool dense(10)")
RESNET_PROJ_SPEC = ("conv(8,3) relu residual(conv(16,3,2,1) batchnorm relu conv(16,3,1,same) batchnorm) relu "
                    "globalavgpool dense(4)")
GRAPH_SPEC = ("conv(8,3,1,same) batchnorm a: relu b: conv(8,3,1,same,groups=8) from(a) c: conv(8,1,groups=2) "
              "s: add(b, c) relu t: avgpool(3,2) from(s) u: maxpool(3,2) concat(t, u) dense(8) batchnorm relu dense(3)")
RESNET_NESTED_SPEC = ("conv(4,3,1,same) residual(residual(conv(4,3,1,same) batchnorm relu) conv(8,3,1,same) batchnorm) "
                      "relu globalavgpool dense(3)")
GRAPH_FLAT_SPEC = ("conv(4,3,2) relu f: flatten a: dense(6) from(f) b: dense(5) c: concat(a, b) from(f) e: dense(11) "
                   "add(c, e) batchnorm relu dense(3)")
GRAPH_DEAD_SPEC = ("conv(4,3,1,same) a: relu conv(4,3,1,same) batchnorm from(a) b: conv(4,1) s: add(a, b) "
                   "from(b) maxpool(2) concat(a, b) from(s) batchnorm relu dense(3)")


def resnet(fx):
    """The residual network with batch norm on 4 MNIST-sized images (post-step parameters sampled)."""
    net_case(fx, RESNET_SPEC, (1, 28, 28), 10, 4, SEED + 10, eval_grads=False, sample_stride=7)


def resnet_proj(fx):
    """A residual block with a projection shortcut (stride 2, 8 -> 16 channels) on 6 12x12x2 images."""
    net_case(fx, RESNET_PROJ_SPEC, (2, 12, 12), 4, 6, SEED + 11)


def graph_net(fx):
    """The named form: labels, from, add, concat, depthwise and grouped convs, avgpool(3,2), BatchNorm1d."""
    net_case(fx, GRAPH_SPEC, (3, 10, 10), 3, 6, SEED + 12)



def resnet_nested(fx):
    """A residual block inside another; the outer one widens 4 -> 8 channels at stride 1 (a pointwise proj)."""
    net_case(fx, RESNET_NESTED_SPEC, (2, 8, 8), 3, 5, SEED + 13)


def graph_flat(fx):
    """Flat vectors joined: concat and add of dense layers' outputs, then BatchNorm1d."""
    net_case(fx, GRAPH_FLAT_SPEC, (2, 9, 9), 3, 5, SEED + 14)


def graph_dead(fx):
    """Branches that lead nowhere: a batch norm, a maxpool and a concat whose outputs nothing reads
    (the concat the last reader of a and b); their parameters get zero gradients, the running
    statistics of the batch norm are still updated."""
    net_case(fx, GRAPH_DEAD_SPEC, (2, 6, 6), 3, 5, SEED + 15)


def manifest_of(path):
    """The manifest lines of a fixture file on disk (its tensor names, dtypes and shapes)."""
    lines = []
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"MLFX0001", path
    pos = 12
    for _ in range(struct.unpack("<i", data[8:12])[0]):
        name = data[pos:pos + 48].rstrip(b"\0").decode()
        dtype, ndim, *dims = struct.unpack("<6i", data[pos + 48:pos + 72])
        pos += 72 + 4 * int(np.prod(dims))
        lines.append("%s %s %s %s" % (os.path.basename(path), name, "f32" if dtype == 0 else "i32",
                                      "x".join(str(d) for d in dims[:ndim]) or "scalar"))
    return lines


FILES = (("ref_cnn.bin", reference_cnn), ("layers.bin", layers), ("schedules.bin", schedules),
         ("ops.bin", graph_ops), ("resnet.bin", resnet), ("resnet_proj.bin", resnet_proj),
         ("graph_net.bin", graph_net), ("resnet_nested.bin", resnet_nested), ("graph_flat.bin", graph_flat),
         ("graph_dead.bin", graph_dead))


def main():
    """Write the files named on the command line (all without arguments), then the manifest of all."""
    os.makedirs(OUT, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    wanted = sys.argv[1:] or [f for f, _ in FILES]
    unknown = set(wanted) - {f for f, _ in FILES}
    if unknown:
        sys.exit("make_fixtures.py: no fixture file %s (the files: %s)" % (
            ", ".join(sorted(unknown)), ", ".join(f for f, _ in FILES)))
    for fname, fn in FILES:
        if fname in wanted:
            fx = FixtureFile(os.path.join(OUT, fname))
            fn(fx)
            fx.write()
    lines = ["# file tensor dtype shape (written by test/make_fixtures.py, torch %s)" % torch.__version__]
    for fname, _ in FILES:
        if os.path.exists(os.path.join(OUT, fname)):
            lines += manifest_of(os.path.join(OUT, fname))
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f, _ in FILES if os.path.exists(os.path.join(OUT, f)))
    print("wrote %s (%s; %d bytes of fixtures in all)" % (OUT, ", ".join(wanted), total), file=sys.stderr)


if __name__ == "__main__":
    main()
