"""Folder datasets: AnimeGAN layout, resize/crop/flip with landmarks, hold-out split, scenery
schedule, and loader workers that survive a mediapipe graph in the parent (the fork rule)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.folders import (ImageFolderDataset, collect_images, resize_crop_flip,
                              resolve_cartoon_dir, split_holdout)
from training.distributed import DistInfo
from training.data import make_loader
from tests.conftest import requires_mediapipe


def test_animegan_layout_takes_style_folder(tmp_path):
    style = tmp_path / "Hayao" / "style"
    style.mkdir(parents=True)
    (tmp_path / "Hayao" / "smooth").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(style / "a.jpg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "Hayao" / "smooth" / "b.jpg")
    assert resolve_cartoon_dir(tmp_path / "Hayao") == style
    assert [p.name for p in collect_images(resolve_cartoon_dir(tmp_path / "Hayao"), "cartoon")] == ["a.jpg"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert resolve_cartoon_dir(plain) == plain


def test_resize_crop_flip_moves_landmarks_with_pixels():
    from faces import transform_landmarks

    img = np.zeros((60, 80, 3), np.uint8)
    img[28:32, 36:40] = 255  # a marked 4x4 block, centre (38, 30) in continuous coordinates
    checked = 0
    for seed in range(12):
        out, scale, crop, flip = resize_crop_flip(img, 24, 30, np.random.default_rng(seed))
        assert out.shape == (24, 24, 3) and scale == (40 / 80, 30 / 60)
        pts = transform_landmarks(np.array([[38.0, 30.0]], np.float32), scale, crop, flip, 24)
        ys, xs = np.nonzero(out[..., 0] > 60)
        if not (2 < pts[0, 0] < 22 and 2 < pts[0, 1] < 22):
            continue
        checked += 1
        # The block's centroid (pixel centres at i + 0.5) is where the point went.
        assert abs(pts[0, 0] - (xs.mean() + 0.5)) < 0.5 and abs(pts[0, 1] - (ys.mean() + 0.5)) < 0.5
    assert checked >= 6


def test_holdout_is_seeded_and_bounded(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(50)]
    train, held = split_holdout(paths, 32, seed=1)
    assert len(held) == 5 and set(train).isdisjoint(held) and len(train) == 45  # at most 10%
    assert split_holdout(paths, 32, seed=1)[1] == held
    assert split_holdout(paths, 32, seed=2)[1] != held
    assert split_holdout(paths[:5], 32, seed=1) == (paths[:5], [])


def test_scenery_schedule_matches_face_ratio():
    from training.data import FaceSchedule

    loop = FaceSchedule(0.2, scenery=True)
    faces = [s for s in range(100) if loop.is_face_step(s)]
    assert len(faces) == 20 and faces[:3] == [4, 9, 14]            # one face batch in five
    assert loop.face_batches_before(10) == 2 == sum(loop.is_face_step(s) for s in range(10))
    plain = FaceSchedule(0.2, scenery=False)
    assert all(plain.is_face_step(s) for s in range(10)) and plain.face_batches_before(7) == 7


@requires_mediapipe
def test_loader_workers_survive_mediapipe_in_parent(demo_data):
    from faces import FaceMeshDetector
    from skimage import data

    photos, _ = demo_data
    with FaceMeshDetector() as det:  # a graph built in this process before the workers start
        assert det.detect(data.astronaut()) is not None
        ds = ImageFolderDataset(collect_images(photos, "photo"), 32)
        it = make_loader(ds, 2, 0, DistInfo(), 0, 1, torch.device("cpu"))
        a, b = next(it)["image"], next(it)["image"]
    assert a.shape == b.shape == (2, 3, 32, 32)
    assert a.min() >= -1 and a.max() <= 1 and not torch.equal(a, b)


def test_items_are_reproducible_from_their_seed(demo_data):
    photos, _ = demo_data
    ds = ImageFolderDataset(collect_images(photos, "photo"), 32, 40)
    assert torch.equal(ds[(3, 77)]["image"], ds[(3, 77)]["image"])
    assert not all(torch.equal(ds[(3, 77)]["image"], ds[(3, s)]["image"]) for s in range(78, 84))


# --------------------------------------------------------- unreadable folders, symbolic links
def _folder_of(tmp_path, name: str, n: int = 2):
    folder = tmp_path / name
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_unreadable_folder_says_why_not_that_it_holds_no_images(tmp_path, monkeypatch):
    from tests.oserrors import deny_reading
    from utils.errors import ToonFaceError

    photos = _folder_of(tmp_path, "photos")
    deny_reading(monkeypatch, photos)
    with pytest.raises(ToonFaceError) as e:
        collect_images(photos, "photo")
    msg = str(e.value)
    assert "Permission denied" in msg and "holds no images" not in msg and str(photos) in msg
    with pytest.raises(ToonFaceError, match="cartoon folder .*cannot read it .Permission denied"):
        resolve_cartoon_dir(photos)  # looking for <folder>/style needs search permission


def test_scanners_report_broken_links_loops_and_linked_folders(tmp_path, caplog):
    import logging
    import os

    root = _folder_of(tmp_path, "photos")
    other = _folder_of(tmp_path, "elsewhere", 1)
    os.symlink("nothere.jpg", root / "dangling.jpg")
    os.symlink("loop.png", root / "loop.png")
    os.symlink(other, root / "linked")
    with caplog.at_level(logging.WARNING):
        good = collect_images(root, "photo")
    assert [p.name for p in good] == ["0.png", "1.png"]
    text = caplog.text
    assert "dangling.jpg (broken symbolic link to nothere.jpg (no such file))" in text
    assert "loop.png (symbolic link loop)" in text
    assert "linked (a symbolic link to a folder: not followed)" in text


def test_items_carry_the_landmarks_transformed_like_their_image(demo_data):
    """``points``: the cached landmarks after the item's own resize / crop / flip (the same
    seed), NaN rows of the same count for a photo without a face, so that a batch stacks."""
    from media.decode import read_image_rgb
    from faces import transform_landmarks

    photos, _ = demo_data
    paths = collect_images(photos, "photo")[:2]
    rng = np.random.default_rng(0)
    pts = (rng.random((468, 2)) * 60 + 2).astype(np.float32)
    ds = ImageFolderDataset(paths, 32, 40, landmarks={paths[0]: pts, paths[1]: None})
    flips = set()
    for seed in range(8):
        item = ds[(0, seed)]
        _, scale, crop, flip = resize_crop_flip(read_image_rgb(paths[0]), 32, 40,
                                                np.random.default_rng(seed))
        flips.add(flip)
        expected = transform_landmarks(pts, scale, crop, flip, 32)
        assert item["points"].dtype == torch.float32 and bool(item["valid"])
        np.testing.assert_array_equal(item["points"].numpy(), expected)
    assert flips == {True, False}
    none = ds[(1, 0)]
    assert not bool(none["valid"]) and none["points"].shape == (468, 2)
    assert torch.isnan(none["points"]).all()
    batch = torch.utils.data.default_collate([ds[(0, 1)], ds[(1, 1)]])
    assert batch["points"].shape == (2, 468, 2)
    assert "points" not in ImageFolderDataset(paths, 32)[0]      # no landmarks: no points
