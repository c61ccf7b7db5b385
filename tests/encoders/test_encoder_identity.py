import shutil

import pytest

from reclm_dagster.encoders.identity import cpu_supports_bf16, weight_files, weights_hash


@pytest.fixture
def fake_model(tmp_path):
    folder = tmp_path / "fake-model"
    (folder / "2_Dense").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x00\x01weights" * 100_000)  # > one 1 MiB chunk
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(b"dense layer")
    (folder / "config.json").write_text('{"hidden_size": 4}')
    return folder


def test_weight_files_sorted_and_recursive(fake_model):
    names = [p.relative_to(fake_model).as_posix() for p in weight_files(fake_model)]
    assert names == ["2_Dense/pytorch_model.bin", "model.safetensors"]


def test_hash_stable_and_location_independent(fake_model, tmp_path):
    first = weights_hash(fake_model)
    assert first == weights_hash(fake_model)
    copy = shutil.copytree(fake_model, tmp_path / "elsewhere")
    assert weights_hash(copy) == first


def test_hash_changes_with_weights_not_with_config(fake_model, tmp_path):
    before = weights_hash(fake_model)
    (fake_model / "config.json").write_text('{"hidden_size": 8}')
    assert weights_hash(fake_model) == before
    with (fake_model / "2_Dense" / "pytorch_model.bin").open("ab") as fh:
        fh.write(b"!")
    assert weights_hash(fake_model) != before


def test_hash_without_weights_raises(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError):
        weights_hash(tmp_path)


def test_cpu_supports_bf16_matches_cpuinfo():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    expected = "amx_bf16" in flags or "avx512_bf16" in flags
    assert cpu_supports_bf16() is expected
