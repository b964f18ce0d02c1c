"""Border and tiling accuracy of inference (issue 12, kinds 2 and 5): prints numbers, asserts nothing.

1. Border: the cartoon of a 256x256 crop of a photo against the same region cut from the
   cartoon of the whole photo, by distance from the crop's border (0-3, 4-7, 8-15, 16-31 px and
   the rest). Without context the generator's zero padding changes the outer pixels; with it
   only what lies outside the crop is unknown.
2. Flat image: a uniform 128x128 white image; rows 0-3 against the centre.
3. Tiling: ``stylize`` tiled vs untiled on a whole photo, max and mean |difference| in levels,
   for several ``--tile`` / ``--overlap`` pairs (as accepted or raised by the Cartoonizer).
4. Tile layout on a 2896x1932 image at the defaults: tiles, pixels the generator computes / image
   pixels, and the spread of tile origins (counted with an identity "generator", so no compute).

    .venv/bin/python bench/bench_borders.py --checkpoint checkpoints/<run>/generator/latest.pt

Uses only the public Cartoonizer API, so the same script measures any version of it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
BANDS = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 10**6))


def border_profile(toon, photo: np.ndarray, side: int = 256, origins=None) -> dict[str, tuple[float, int]]:
    """{band: (mean, max)} of max-over-channels |crop result - region of the whole result|."""
    whole = toon.stylize(photo).astype(int)
    h, w = photo.shape[:2]
    origins = origins or [(h // 2 - side // 2, w // 2 - side // 2), (h // 4, w // 4), (h // 3, w // 2)]
    yy, xx = np.mgrid[0:side, 0:side]
    dist = np.minimum(np.minimum(yy, side - 1 - yy), np.minimum(xx, side - 1 - xx))
    per_band: dict[str, list[np.ndarray]] = {f"{a}-{b - 1}" if b < 10**6 else f"{a}+": [] for a, b in BANDS}
    for y0, x0 in origins:
        y0, x0 = y0 // 4 * 4, x0 // 4 * 4  # same phase of the stride-4 grid as in the whole image
        crop = toon.stylize(np.ascontiguousarray(photo[y0:y0 + side, x0:x0 + side])).astype(int)
        d = np.abs(crop - whole[y0:y0 + side, x0:x0 + side]).max(-1)
        for key, (a, b) in zip(per_band, BANDS):
            per_band[key].append(d[(dist >= a) & (dist < b)])
    return {k: (float(np.concatenate(v).mean()), int(np.concatenate(v).max())) for k, v in per_band.items()}


def coordinate_image(h: int, w: int) -> np.ndarray:
    """uint8 RGB whose pixels spell their own position: R = x % 256, G = y % 256,
    B = 16 * (x // 256) + y // 256 (for x < 4096, y < 4096)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, 16 * (xx // 256) + yy // 256], -1).astype(np.uint8)


class CountingIdentity(torch.nn.Module):
    """Returns its input; records each call's size and the image position of its centre pixel
    (read from a :func:`coordinate_image`), so tile origins are known without any compute."""

    def __init__(self):
        super().__init__()
        self.pixels, self.shapes, self.centres = 0, [], []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pixels += x.shape[0] * x.shape[-2] * x.shape[-1]
        self.shapes.append(tuple(x.shape[-2:]))
        r, g, b = (int(round((float(v) + 1.0) * 127.5)) for v in x[0, :, x.shape[-2] // 2, x.shape[-1] // 2])
        self.centres.append((g + 256 * (b % 16), r + 256 * (b // 16)))
        return x


def main() -> None:
    from media.decode import decode_image
    from inference.cartoonizer import DEFAULT_OVERLAP, DEFAULT_TILE, Cartoonizer
    from models.checkpoint import load_generator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a trained generator file")
    ap.add_argument("--photo", default=str(FIXTURES / "scenes" / "wb_actress2.jpg"))
    ap.add_argument("--tiling-photo", default=str(FIXTURES / "scenes" / "wb_party7.jpg"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    G, _ = load_generator(args.checkpoint)
    print(f"generator: {args.checkpoint}")

    photo = decode_image(args.photo).rgb
    toon = Cartoonizer(G, tile=0)
    print(f"1. border, 256x256 crops of {Path(args.photo).name} {photo.shape[1]}x{photo.shape[0]} "
          "vs the whole image's result (mean / max levels):")
    for band, (mean, mx) in border_profile(toon, photo).items():
        print(f"   {band:>6} px from the border: {mean:6.2f} / {mx:3d}")

    white = np.full((128, 128, 3), 255, np.uint8)
    out = toon.stylize(white).astype(float).mean(-1)
    print(f"2. flat white 128x128: rows 0-3 {[round(v) for v in out[:4, 64]]}, centre {round(out[64, 64])}")

    big = decode_image(args.tiling_photo).rgb
    whole = toon.stylize(big).astype(int)
    print(f"3. tiled vs untiled on {Path(args.tiling_photo).name} {big.shape[1]}x{big.shape[0]}:")
    notes: list[str] = []
    for tile, overlap in ((256, 32), (64, 16), (512, 64), (256, 128)):
        notes.clear()
        try:
            tiled = Cartoonizer(G, tile=tile, overlap=overlap, notice=notes.append)
        except Exception as exc:  # noqa: BLE001 - a refused tiling is a result too
            print(f"   --tile {tile} --overlap {overlap}: refused ({exc})")
            continue
        d = np.abs(tiled.stylize(big).astype(int) - whole)
        used = f" (overlap used: {tiled.overlap})" if tiled.overlap != overlap else ""
        print(f"   --tile {tile} --overlap {overlap}{used}: max {d.max()}, mean {d.mean():.4f}"
              + (f"  [{notes[0]}]" if notes else ""))

    ident = CountingIdentity()
    layout = Cartoonizer(ident, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP)
    layout.stylize(coordinate_image(1932, 2896))
    origins_y = sorted({cy - th // 2 for (cy, _), (th, _) in zip(ident.centres, ident.shapes)})
    origins_x = sorted({cx - tw // 2 for (_, cx), (_, tw) in zip(ident.centres, ident.shapes)})
    print(f"4. layout on 2896x1932 at --tile {DEFAULT_TILE} --overlap {DEFAULT_OVERLAP}: "
          f"{len(ident.shapes)} tiles of {sorted(set(ident.shapes))}, "
          f"computed pixels / image pixels = {ident.pixels / (2896 * 1932):.3f}; strides between "
          f"tile origins: x {np.diff(origins_x).tolist()}, y {np.diff(origins_y).tolist()}")


if __name__ == "__main__":
    main()
