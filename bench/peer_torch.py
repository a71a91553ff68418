"""The engine's objective written in PyTorch, as a user of that library would tune it: the peer that
bench/engine.py measures the engine against (ms per step, peak RSS), in its own process.

Same network (VGG19 up to block5_conv2, preprocessing inside), same weights (the engine's seeded
Glorot-uniform random weights, drawn by the same NumPy code, or an ImageNet .h5 file), same losses
(content MSE on block5_conv2, Gram matrices averaged over positions, equal style layer weights,
summed absolute neighbour differences as total variation), same Adam (learning rate 0.02, beta_1
0.99, epsilon 0.1) and clipping to [0, 1]. Tuned the usual way: channels_last, no autograd for the
weights, torch.autocast(bfloat16) for the bf16 variant. Never imported by the product or its tests;
needs the `bench` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's own convention)

# (name, input channels, output channels) up to block5_conv2; "pool" between blocks.
VGG19_TO_BLOCK5_CONV2 = (
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64), ("pool", 0, 0),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128), ("pool", 0, 0),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256),
    ("block3_conv4", 256, 256), ("pool", 0, 0),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512),
    ("block4_conv4", 512, 512), ("pool", 0, 0),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512),
)  # fmt: skip
CONTENT_LAYERS = ("block5_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
BGR_MEAN = (103.939, 116.779, 123.68)


def random_weights(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The engine's random weights (worker/engine/model.py randomize_weights), HWIO kernels: one
    seeded generator drawing Glorot-uniform kernels layer by layer in VGG19's order."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, cin, cout in VGG19_TO_BLOCK5_CONV2:
        if name == "pool":
            continue
        limit = np.sqrt(6.0 / (9 * cin + 9 * cout))
        weights[name] = (
            rng.uniform(-limit, limit, (3, 3, cin, cout)).astype(np.float32),
            np.zeros(cout, np.float32),
        )
    return weights


class VGGFeatures(torch.nn.Module):
    def __init__(self, weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleDict()
        for name, (kernel, bias) in weights.items():
            conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], 3, padding=1)
            conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
            conv.bias.data = torch.from_numpy(bias)
            self.convs[name] = conv
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        x = rgb.flip(1) * 255.0 - self.mean  # RGB [0, 1] -> BGR 0..255 minus the ImageNet mean
        out = {}
        for name, _, _ in VGG19_TO_BLOCK5_CONV2:
            if name == "pool":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[name](x))
            if name in CONTENT_LAYERS or name in STYLE_LAYERS:
                out[name] = x.float()
        return out


def gram(features: torch.Tensor) -> torch.Tensor:
    _, c, h, w = features.shape
    flat = features.reshape(c, h * w)
    return flat @ flat.T / (h * w)


class TorchStylizer:
    """Adam over the pixels of a (1, 3, H, W) image; targets computed once."""

    def __init__(
        self, content: np.ndarray, style: np.ndarray, precision: str = "float32", seed: int = 0
    ) -> None:
        torch.manual_seed(seed)
        self.autocast = precision != "float32"
        self.model = VGGFeatures(random_weights(seed)).to(memory_format=torch.channels_last)
        self.weights = (1e4, 1e-2, 30.0)
        with torch.no_grad(), self._cast():
            content_t = self._tensor(content)
            self.content_target = {
                n: f.detach() for n, f in self.model(content_t).items() if n in CONTENT_LAYERS
            }
            style_features = self.model(self._tensor(style))
            self.style_target = {n: gram(style_features[n]).detach() for n in STYLE_LAYERS}
        self.image = content_t.clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.image], lr=0.02, betas=(0.99, 0.999), eps=0.1)

    def _cast(self) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast)

    @staticmethod
    def _tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image.transpose(2, 0, 1)[None].copy()).contiguous(
            memory_format=torch.channels_last
        )

    def loss(self) -> torch.Tensor:
        content_weight, style_weight, tv_weight = self.weights
        with self._cast():
            out = self.model(self.image)
        content = sum(F.mse_loss(out[n], t) for n, t in self.content_target.items()) / len(
            self.content_target
        )
        style = sum(F.mse_loss(gram(out[n]), t) for n, t in self.style_target.items()) / len(STYLE_LAYERS)
        image = self.image
        tv = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().sum() + (
            image[:, :, :, 1:] - image[:, :, :, :-1]
        ).abs().sum()
        return content_weight * content + style_weight * style + tv_weight * tv

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            self.image.clamp_(0.0, 1.0)
        return float(loss.detach())

    def output(self) -> np.ndarray:
        return self.image.detach()[0].permute(1, 2, 0).contiguous().numpy()
