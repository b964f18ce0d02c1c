"""ICC profiles built byte by byte for the colour-management tests (no profile file ships with
the test machines, and Pillow's ``ImageCms.createProfile`` makes only sRGB, Lab and XYZ).

Layout follows ICC.1:2001-04 (version 2.1 profiles): a 128-byte header, a tag table, then the
tag data, each tag 4-byte aligned. Colorants are D50-adapted with the Bradford transform, as
ICC requires and as LittleCMS itself does for its built-in sRGB.

Also the colour science the tests use as their oracle, written from the standards:
sRGB (IEC 61966-2-1) and Adobe RGB (1998) primaries, white points and transfer curves.
"""
from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_GAMMA = 563 / 256  # Adobe RGB (1998) spec, section 4.3.4.2: 2 + 51/256
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white_xy) -> np.ndarray:
    """3x3 linear RGB -> XYZ (columns: the primaries scaled so that RGB=1 is the white)."""
    p = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    return p * np.linalg.solve(p, xy_to_xyz(*white_xy))


def bradford(src_white: np.ndarray, dst_white: np.ndarray) -> np.ndarray:
    """Chromatic adaptation matrix src -> dst (von Kries in the Bradford cone space)."""
    s, d = BRADFORD @ src_white, BRADFORD @ dst_white
    return np.linalg.inv(BRADFORD) @ np.diag(d / s) @ BRADFORD


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 transfer function, [0, 1] linear -> [0, 1] encoded."""
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def xyz_d50_to_srgb8(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) XYZ (D50 PCS) -> uint8 sRGB, relative colorimetric (clipped)."""
    to_d65 = bradford(D50, xy_to_xyz(*D65_XY))
    m = np.linalg.inv(rgb_to_xyz_matrix(SRGB_PRIMARIES, D65_XY)) @ to_d65
    lin = xyz @ m.T
    return np.rint(srgb_encode(lin) * 255).astype(np.uint8)


def adobe_rgb8_to_srgb8(rgb: np.ndarray) -> np.ndarray:
    """uint8 Adobe RGB (1998) -> uint8 sRGB, by the standards' matrices (both white points D65)."""
    lin = np.power(rgb.astype(np.float64) / 255.0, ADOBE_GAMMA)
    xyz = lin @ rgb_to_xyz_matrix(ADOBE_PRIMARIES, D65_XY).T
    out = xyz @ np.linalg.inv(rgb_to_xyz_matrix(SRGB_PRIMARIES, D65_XY)).T
    return np.rint(srgb_encode(out) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------- the bytes
def _s15f16(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15f16(v) for v in xyz)


def _gamma_curve(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)


def _text(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode("ascii") + b"\0"


def _profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    entries, data = [], b""
    for sig, body in tags.items():
        pad = (-len(data)) % 4
        data += b"\0" * pad
        entries.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body
    data += b"\0" * ((-len(data)) % 4)
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class
              + space + pcs + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 4
              + struct.pack(">I", 0) + b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 1)
              + b"".join(_s15f16(v) for v in D50) + b"test" + b"\0" * 44)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + data


def matrix_rgb_profile(primaries=ADOBE_PRIMARIES, gamma: float = ADOBE_GAMMA,
                       name: str = "Adobe RGB (1998)-compatible test profile") -> bytes:
    """A display RGB profile: pure-gamma curves and D50-adapted colorants of ``primaries`` (D65 white)."""
    m = bradford(xy_to_xyz(*D65_XY), D50) @ rgb_to_xyz_matrix(primaries, D65_XY)
    tags = {b"desc": _desc(name), b"cprt": _text("public domain test data"), b"wtpt": _xyz_tag(D50)}
    for i, c in enumerate("rgb"):
        tags[f"{c}XYZ".encode()] = _xyz_tag(m[:, i])
    for c in "rgb":
        tags[f"{c}TRC".encode()] = _gamma_curve(gamma)
    return _profile(b"mntr", b"RGB ", b"XYZ ", tags)


def gray_profile(gamma: float = 1.8, name: str = "Gray gamma 1.8 test profile") -> bytes:
    """A display gray profile: Y = (v / 255) ** gamma, on the D50 white."""
    tags = {b"desc": _desc(name), b"cprt": _text("public domain test data"),
            b"wtpt": _xyz_tag(D50), b"kTRC": _gamma_curve(gamma)}
    return _profile(b"mntr", b"GRAY", b"XYZ ", tags)


# A linear CMYK model (exact under any interpolation of its CLUT): XYZ = D50 * (1 - K . cmyk),
# each ink absorbing a share of X, Y and Z. Kept >= 5% of the white at full coverage.
CMYK_ABSORPTION = np.array([[0.45, 0.15, 0.05, 0.30],   # X  (c, m, y, k)
                            [0.25, 0.40, 0.05, 0.30],   # Y
                            [0.05, 0.20, 0.50, 0.20]])  # Z


def cmyk_to_xyz(cmyk: np.ndarray) -> np.ndarray:
    """(..., 4) ink coverage in [0, 1] -> (..., 3) XYZ (D50) of the test CMYK profile."""
    return D50 * (1.0 - cmyk @ CMYK_ABSORPTION.T)


def cmyk_profile(name: str = "Linear CMYK test profile") -> bytes:
    """An output (printer) CMYK profile with an A2B0 lut16Type to the XYZ PCS (2-point grid)."""
    grid = 2
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 4, indexing="ij")).reshape(4, -1).T  # c slowest
    xyz = cmyk_to_xyz(corners)
    clut = np.clip(np.rint(xyz * 32768.0), 0, 65535).astype(">u2")  # u1Fixed15 XYZ encoding
    identity = b"".join(_s15f16(v) for v in np.eye(3).ravel())
    lut = (b"mft2" + b"\0" * 4 + struct.pack(">BBBB", 4, 3, grid, 0) + identity
           + struct.pack(">HH", 2, 2)
           + np.tile(np.array([0, 65535], ">u2"), 4).tobytes() + clut.tobytes()
           + np.tile(np.array([0, 65535], ">u2"), 3).tobytes())
    tags = {b"desc": _desc(name), b"cprt": _text("public domain test data"),
            b"wtpt": _xyz_tag(D50), b"A2B0": lut}
    return _profile(b"prtr", b"CMYK", b"XYZ ", tags)
