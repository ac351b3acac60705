"""The command line under fire: 240 generated invocations (existing keys with values of the wrong
type, sign or range; typos of real keys; unknown group options), run one after another as the
shell would. Each ends with exit code 0 (it trained), 2 (one ``error:`` line naming the key) or 3
(the run diverged: one ``error:`` line saying so, its rows kept); no traceback reaches the user."""

import random

import pytest

from tests.helpers.commands import run_many

pytestmark = pytest.mark.slow  # 240 command lines run one after another: the full tier (pytest -m slow)

# the keys of the README's configuration table that a run on MNIST reads
KEYS = [
    "seed",
    "data.n_tasks",
    "data.samples_per_task",
    "data.batch_size",
    "data.epochs_per_task",
    "data.eval_batch_size",
    "data.task_seed",
    "data.max_rotation",
    "data.transform",
    "data.shuffle",
    "data.eval_tasks",
    "data.download",
    "data.offline_fallback",
    "data.drop_last_test_sample",
    "model.hidden_sizes",
    "model.init",
    "algo.alpha_init",
    "algo.opt_lr",
    "algo.opt_wt",
    "algo.glances",
    "algo.memories",
    "algo.replay_batch_size",
    "algo.grad_clip_norm",
    "algo.learn_lr",
    "algo.sync_update",
    "algo.second_order",
    "algo.fast_mlp",
    "algo.use_old_task_memory",
    "algo.memory_snapshot",
    "trainer.num_threads",
    "trainer.tf32",
    "trainer.devices",
    "trainer.accelerator",
    "trainer.precision",
    "trainer.enable_progress_bar",
    "resume",
]
BAD_VALUES = ["abc", "-1", "0", "-0.5", "2.5", "1e9", "[1,2]", "null", "true", "''"]
GROUPS = {"algo": "lamaml", "data": "mnist_rot", "model": "mlp", "pass": "single", "trainer": "cpu", "logger": "csv"}


def typo(word: str, rng: random.Random) -> str:
    k = rng.randrange(len(word))
    edits = [word[:k] + word[k + 1 :], word[:k] + rng.choice("abcdefghijklmnopqrstuvwxyz_") + word[k:]]
    if k + 1 < len(word):
        edits.append(word[:k] + word[k + 1] + word[k] + word[k + 2 :])
    return rng.choice([e for e in edits if e != word] or [word + "x"])


def invocations(n_values: int = 180, n_keys: int = 40, n_groups: int = 20, seed: int = 0) -> list[tuple[str, str]]:
    """(override, the name its error must carry): bad values of real keys, typos of real keys, typos
    of group options."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n_values):
        key = rng.choice(KEYS)
        cases.append((f"{key}={rng.choice(BAD_VALUES)}", key))
    for _ in range(n_keys):
        group, _, leaf = rng.choice(KEYS).rpartition(".")
        key = f"{group}.{typo(leaf, rng)}" if group else typo(leaf, rng)
        cases.append((f"{key}=1", key))
    for _ in range(n_groups):
        group, option = rng.choice(sorted(GROUPS.items()))
        wrong = typo(option, rng)
        cases.append((f"{group}={wrong}", f"{group}={wrong}"))
    return cases


def test_every_generated_command_line_ends_cleanly(tiny_mnist_root, tmp_path):
    cases = invocations()
    assert len(cases) >= 200
    base = [
        f"data.root={tiny_mnist_root}",
        "data.download=false",
        "data.n_tasks=2",
        "data.samples_per_task=10",
        "logger=none",
        "trainer.enable_progress_bar=false",
    ]
    argv = []
    for k, (override, _) in enumerate(cases):
        key = override.split("=", 1)[0]
        kept = [b for b in base if b.split("=", 1)[0] != key]
        argv.append([*kept, override, f"hydra.run.dir={tmp_path / str(k)}"])
    outcomes = run_many(argv, tmp_path)
    problems = []
    for (override, name), outcome in zip(cases, outcomes):
        lines = outcome["error_lines"]
        fine = not outcome["traceback"] and outcome["code"] in (0, 2, 3)
        if outcome["code"] == 2:
            fine = fine and len(lines) == 1 and name.split("=")[0] in lines[0]
        if outcome["code"] == 3:
            fine = fine and len(lines) == 1 and "diverged" in lines[0]
        if not fine:
            problems.append(f"{override}: exit {outcome['code']}, {lines or outcome['stderr_tail']}")
    assert not problems, "\n".join(problems)
    codes = [o["code"] for o in outcomes]
    assert codes.count(2) > len(cases) / 2  # most of them are wrong, and said to be
