"""Model folder integrity: checksums written at packaging catch truncated, bit-flipped, missing and added
files; NaN/inf weights are refused before packaging."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from components.integrity import CHECKSUMS_FILE, BundleIntegrityError, check_finite, seal, verify


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "bundle"
    (d / "model").mkdir(parents=True)
    np.savez(
        d / "model" / "itemknn.npz", neighbour_ids=np.arange(12).reshape(3, 4), prior=np.ones(3, np.float32)
    )
    np.save(d / "item_text.npy", np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    torch.save({"w": torch.ones(2, 2), "steps": torch.tensor(3)}, d / "model" / "weights.pt")
    (d / "meta.json").write_text(json.dumps({"model": "itemknn"}))
    return d


def test_seal_then_verify(folder):
    record = seal(folder)
    assert record.name == CHECKSUMS_FILE
    files = json.loads(record.read_text())["files"]
    assert set(files) == {"model/itemknn.npz", "item_text.npy", "model/weights.pt", "meta.json"}
    assert verify(folder) == 4


def test_truncated_file_is_named(folder):
    seal(folder)
    weights = folder / "model" / "itemknn.npz"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(BundleIntegrityError, match=r"itemknn\.npz: \d+ bytes, expected \d+ \(truncated"):
        verify(folder)


def test_bit_flip_is_named(folder):
    seal(folder)
    target = folder / "item_text.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"item_text\.npy: sha256 .* does not match"):
        verify(folder)


def test_missing_added_and_unsealed(folder, tmp_path):
    with pytest.raises(BundleIntegrityError, match="checksums.json: missing"):
        verify(folder)
    seal(folder)
    (folder / "meta.json").unlink()
    with pytest.raises(BundleIntegrityError, match=r"meta\.json: missing"):
        verify(folder)
    (folder / "meta.json").write_text(json.dumps({"model": "itemknn"}))
    (folder / "model" / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleIntegrityError, match=r"extra\.bin: not in checksums\.json"):
        verify(folder)
    assert verify(folder, ignore=("model/extra.bin",)) == 4  # e.g. the model store's own model.yaml
    (folder / CHECKSUMS_FILE).write_text("{not json")
    with pytest.raises(BundleIntegrityError, match="unreadable checksum record"):
        verify(folder)


def test_messages_are_one_line(folder):
    seal(folder)
    (folder / "meta.json").write_text("changed")
    with pytest.raises(BundleIntegrityError) as err:
        verify(folder)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_numpy_weights_are_refused(folder, bad):
    prior = np.ones(3, np.float32)
    prior[1] = bad
    np.savez(folder / "model" / "itemknn.npz", neighbour_ids=np.arange(12).reshape(3, 4), prior=prior)
    with pytest.raises(
        BundleIntegrityError, match=r"itemknn\.npz\[prior\]: 1 of 3 values are NaN or infinite"
    ):
        seal(folder)
    assert not (folder / CHECKSUMS_FILE).exists()


def test_non_finite_torch_weights_are_refused(folder):
    torch.save({"w": torch.tensor([[1.0, float("nan")], [0.0, 1.0]])}, folder / "model" / "weights.pt")
    with pytest.raises(BundleIntegrityError, match=r"weights\.pt\[w\]: 1 of 4"):
        check_finite(folder)


def test_unreadable_weights_are_named(folder):
    (folder / "model" / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(BundleIntegrityError, match=r"weights\.pt: cannot be read"):
        check_finite(folder)
