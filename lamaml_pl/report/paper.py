"""Published numbers to compare against (La-MAML paper, Table 1)."""

# (algo, data) -> (RA mean, RA std, BTI mean, BTI std), percent, mean ± std over the paper's seeds
TABLE1 = {
    ("online", "mnist_rot"): (53.38, 1.53, -5.44, 1.70),
    ("online", "mnist_perm"): (55.42, 0.65, -13.76, 1.19),
    ("online", "mnist_many"): (32.62, 0.43, -19.06, 0.86),
    ("ewc", "mnist_rot"): (57.96, 1.33, -20.42, 1.60),
    ("ewc", "mnist_perm"): (62.32, 1.34, -13.32, 2.24),
    ("ewc", "mnist_many"): (33.46, 0.46, -17.84, 1.15),
    ("gem", "mnist_rot"): (67.38, 1.75, -18.02, 1.99),
    ("gem", "mnist_perm"): (55.42, 1.10, -24.42, 1.10),
    ("gem", "mnist_many"): (32.14, 0.50, -23.52, 0.87),
    ("mer", "mnist_rot"): (77.42, 0.78, -5.60, 0.70),
    ("mer", "mnist_perm"): (73.46, 0.45, -9.96, 0.45),
    ("mer", "mnist_many"): (47.40, 0.35, -17.78, 0.39),
    ("cmaml", "mnist_rot"): (77.33, 0.29, -7.88, 0.05),
    ("cmaml", "mnist_perm"): (74.54, 0.54, -10.36, 0.14),
    ("cmaml", "mnist_many"): (47.29, 1.21, -20.86, 0.95),
    ("sync", "mnist_rot"): (74.07, 0.58, -6.66, 0.44),
    ("sync", "mnist_perm"): (70.54, 1.54, -14.02, 2.14),
    ("sync", "mnist_many"): (44.48, 0.76, -24.18, 0.65),
    ("lamaml", "mnist_rot"): (77.42, 0.65, -8.64, 0.403),
    ("lamaml", "mnist_perm"): (74.34, 0.67, -7.60, 0.51),
    ("lamaml", "mnist_many"): (48.46, 0.45, -12.96, 0.073),
}
