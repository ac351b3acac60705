"""Out of GPU memory, out of disk, an output folder that cannot be: one line with what to change."""

import errno
import subprocess
import sys

import torch

from lamaml_pl.resource_errors import resource_error
from tests.conftest import ROOT, compose_config


def test_out_of_gpu_memory_names_the_population_and_the_batch_sizes():
    cfg = compose_config(["population.seed=[0,1,2,3,4]", "population.alpha_init=[0.1,0.3]"])
    err = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has 1.2 GiB free")
    message = str(resource_error(err, cfg))
    assert message.startswith("out of GPU memory (CUDA out of memory) training 10 members with data.batch_size=10")
    assert "data.eval_batch_size=10000: lower data.eval_batch_size" in message and "population.*" in message


def test_a_full_disk_says_which_file_and_where_else_to_write():
    cfg = compose_config([])
    err = OSError(errno.ENOSPC, "No space left on device", "/runs/x/checkpoints/.last.ckpt.partial")
    assert str(resource_error(err, cfg)) == (
        "cannot write /runs/x/checkpoints/.last.ckpt.partial: No space left on device. Free space or write "
        "elsewhere (hydra.run.dir=<folder>, hydra.sweep.dir=<folder> for -m)"
    )
    assert resource_error(ValueError("a bug"), cfg) is None  # not a resource: the traceback stays


def test_an_output_folder_under_a_file_is_one_error_before_hydra_starts(tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file where a folder was meant")
    for flags in ([f"hydra.run.dir={blocker}/run"], ["-m", "seed=0,1", f"hydra.sweep.dir={blocker}/sweep"]):
        result = subprocess.run([sys.executable, "train.py", *flags], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 2
        key = flags[-1].split("=")[0]
        assert result.stderr.strip().splitlines() == [
            f"error: {key}={flags[-1].split('=', 1)[1]}: {blocker} is a file, not a folder: give a folder path"
        ]
