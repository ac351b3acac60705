"""The IDX format of MNIST and Fashion-MNIST, plain or gzipped, read with its header checked.

An IDX file is a 4-byte magic (0, 0, dtype 0x08 = uint8, number of dimensions), one big-endian
int32 per dimension, then the values: its size is fully determined by the header, so a truncated
download or a foreign file is named before anything reads it.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch

from lamaml_pl.errors import ConfigError


def read_idx(path: Path, what: str) -> torch.Tensor:
    """The uint8 array stored in ``path`` (``.gz``: gzipped). ``what`` names the data set in errors."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise ConfigError(f"data.root: the {what} file {path} could not be read ({err}); replace or delete it") from err
    ndim = 3 if "images" in path.name else 1
    problem, dims = None, []
    if len(data) < 4 + 4 * ndim:
        problem = f"it holds {len(data)} bytes, fewer than an IDX header"
    elif data[:4] != bytes((0, 0, 8, ndim)):
        problem = f"its magic number is {data[:4].hex()}, not {bytes((0, 0, 8, ndim)).hex()} (uint8, {ndim}-d)"
    else:
        dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        expected = 4 + 4 * ndim + math.prod(dims)
        if len(data) != expected:
            shape = "x".join(map(str, dims))
            problem = f"its header announces {shape} values ({expected} bytes) but it holds {len(data)} bytes"
    if problem:
        raise ConfigError(
            f"data.root: the {what} file {path} is truncated or not an IDX file ({problem}); "
            "delete it (it is downloaded again when online) or point data.root elsewhere"
        )
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return torch.from_numpy(values.copy())
