"""How hard each generator term pulls on the output at a trained checkpoint, per content network.

The recipe's weights (white-box's train.py: tv 1e4, surface 0.1, texture 1, content and
structure 200) were tuned on ImageNet VGG19's conv4_4 features. Another content network
changes the content and structure terms' scale and so their pull against the adversarial
terms. A term's pull is the norm of its weighted gradient with respect to the generator's raw
output (before the guided filter), per image: what the generator's update actually sees.

For a training run's checkpoint (its generator and both discriminators, the state they reached
together), on the run's own training photos (the photo folder minus its held-out people,
resized to the run's --image_size), this prints for every term of the run's weights and for
each content network named on the command line:
  - the unweighted value (mean over the batches),
  - the weighted gradient norm per image (median over images),
  - its ratio to the texture term's (the adversarial term the content and structure terms
    must balance: texture is what draws the hatching on skin).
The adversarial, tv and landmark terms do not depend on the content network; the content and
structure terms are recomputed with each network on the same outputs.

    .venv/bin/python bench/bench_term_gradients.py --run checkpoints/my-run
    .venv/bin/python bench/bench_term_gradients.py --run RUN --networks hed-vgg16 random --json out.json

Fixture-free: it reads only the run folder and the photos its config.json names.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from media.decode import read_image_rgb  # noqa: E402
from media.folders import list_images  # noqa: E402
from losses.registry import TERMS  # noqa: E402
from models.content_network import build_content_network, resolve_content_network  # noqa: E402
from models.discriminator import Discriminator  # noqa: E402
from models.generator import Generator  # noqa: E402
from representations.structure import Structure  # noqa: E402
from representations.texture import texture_weights  # noqa: E402
from training.objective import Objective, discriminator_specs  # noqa: E402
from utils.errors import ToonFaceError  # noqa: E402


def load_photos(cfg: dict, limit: int) -> torch.Tensor:
    """(N, 3, S, S) in [-1, 1]: the run's training photos (held-out people left out), resized
    (area) to its image size."""
    held = set(str(cfg.get("heldout_people") or "").replace(" ", "").split(",")) - {""}
    size = int(cfg["image_size"])
    paths = [p for p in list_images(cfg["photo_dir"]) if p.stem not in held][:limit]
    if not paths:
        raise ToonFaceError(f"no training photos in {cfg['photo_dir']}")
    out = []
    for p in paths:
        x = torch.from_numpy(np.ascontiguousarray(read_image_rgb(p))).permute(2, 0, 1).float()
        x = F.interpolate(x[None], size=(size, size), mode="area")[0]
        out.append(x / 127.5 - 1.0)
    return torch.stack(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a train.py run folder (ckpt/ and config.json)")
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    ap.add_argument("--networks", nargs="+", default=["hed-vgg16", "random"],
                    help="content networks to compare (vgg19 needs its weights file)")
    ap.add_argument("--vgg-weights", default=None)
    ap.add_argument("--photos", type=int, default=40, help="training photos used")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)

    run = Path(a.run)
    ckpt_path = run / "ckpt" / ("latest.pt" if a.step is None else f"step_{a.step:06d}.pt")
    if not ckpt_path.is_file():
        raise SystemExit(f"error: no checkpoint {ckpt_path}")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    cfg = state["config"]
    # config.json keys: the seed's flags w0..w5, w_<name> for the terms without one
    weights = {t.name: float(cfg.get(t.flag or f"w_{t.name}") or 0.0) for t in TERMS}
    weights = {k: v for k, v in weights.items() if v > 0}
    # face-network and landmark terms need batch landmarks: not measured here
    weights = {k: v for k, v in weights.items() if k not in ("landmark", "landmark_regressor", "identity")}

    G = Generator(**state["generator_config"])
    G.load_state_dict(state["G"])
    G.eval().requires_grad_(False)
    specs = discriminator_specs()
    discs = {}
    for name, spec in specs.items():
        d = Discriminator(spec.in_channels)
        d.load_state_dict(state[spec.checkpoint_key])
        discs[name] = d.requires_grad_(False)
    structure = Structure(cfg.get("superpixel", "felzenszwalb"), int(cfg.get("seg_num", 200)),
                          float(cfg.get("sscolor_power", 1.2)))
    photos = load_photos(cfg, a.photos)
    gen = torch.Generator().manual_seed(a.seed)
    device = torch.device("cpu")

    results: dict[str, dict] = {}
    for network in a.networks:
        net, path = resolve_content_network(network, a.vgg_weights, quiet=True)
        vgg = build_content_network(net, path, seed=int(cfg.get("seed", 0))).requires_grad_(False)
        obj = Objective(weights, discs, vgg, structure, float(cfg.get("gf_eps", 5e-3)), device)
        values: dict[str, list[float]] = {k: [] for k in obj.weights}
        norms: dict[str, list[float]] = {k: [] for k in obj.weights}
        gen.manual_seed(a.seed)
        for i in range(0, len(photos), a.batch):
            photo = photos[i:i + a.batch]
            with torch.no_grad():
                raw0 = G(photo)
            tex_w = texture_weights(gen)
            for name in obj.weights:
                raw = raw0.clone().requires_grad_(True)
                single = Objective({name: obj.weights[name]}, discs, vgg, structure, obj.gf_eps, device)
                terms, _ = single.generator_terms(photo, raw, {}, tex_w, True)
                (g,) = torch.autograd.grad(obj.weights[name] * terms[name], raw)
                values[name].append(float(terms[name].detach()))
                # per image: the batch-mean loss spreads 1/B over each image; times B gives the
                # pull one image would feel alone
                norms[name] += (g.flatten(1).norm(dim=1) * len(photo)).tolist()
        row = {k: {"weight": obj.weights[k], "value": statistics.fmean(values[k]),
                   "grad_norm": statistics.median(norms[k])} for k in obj.weights}
        ref = row.get("texture", {}).get("grad_norm")
        for k in row:
            row[k]["vs_texture"] = row[k]["grad_norm"] / ref if ref else float("nan")
        results[net] = row

    step = state["step"]
    print(f"run {run} step {step}: {len(photos)} training photos at {cfg['image_size']} px, "
          f"its discriminators and generator")
    print(f"{'network':<10} {'term':<10} {'weight':>8} {'value':>10} {'|grad| w.':>11} {'/texture':>9}")
    for net, row in results.items():
        for k, r in row.items():
            print(f"{net:<10} {k:<10} {r['weight']:>8g} {r['value']:>10.4g} {r['grad_norm']:>11.4g} "
                  f"{r['vs_texture']:>9.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"run": str(run), "step": step, "results": results},
                                           indent=1) + "\n")


if __name__ == "__main__":
    try:
        main()
    except ToonFaceError as e:
        raise SystemExit(f"error: {e}")
