#!/usr/bin/env python3
"""Checks iotids' privacy accountant (crate iotids-privacy) against Google's dp-accounting.

The command under test prints one line of JSON,
{"sampling_rate","noise_multiplier","steps","delta","epsilon","order","accountant":"rdp"},
for the flags --sampling-rate Q --noise-multiplier S --steps T --delta D, and the same
with the noise multiplier it computed (plus "target_epsilon") for --target-epsilon E in
place of --noise-multiplier. Both `iotids privacy` and the crate's example accept them:

    python3 tests/reference/check_dp.py target/release/iotids privacy
    python3 tests/reference/check_dp.py $CARGO_TARGET_DIR/debug/examples/epsilon

The reference is dp-accounting's RDP accountant with its default orders
(tests/reference/requirements.txt pins the version):
RdpAccountant().compose(SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)),
steps)).get_epsilon(δ).

Two checks, over a grid of federated-learning-like cases (q 0.05..1, σ 0.3..5, 10..2000
rounds), DP-SGD-like ones (q 0.001..0.01, up to 10⁵ steps) and edge cases:

1. ε: the relative difference must be at most 1 % (absolute 1e-9 where dp-accounting's
   ε is ~0; both infinite counts as equal).
2. target ε: the σ the command computes for a target must spend, according to
   dp-accounting, at most target·1.01, and at least target·0.99 (it is the smallest σ
   that meets the target, not just any).

Prints a table per check and the largest relative difference; exits 1 when a case fails,
2 when the command cannot be run or prints something else than the JSON.
"""
import importlib.metadata
import json
import math
import subprocess
import sys

try:
    import dp_accounting
    from absl import logging as absl_logging
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("check_dp.py needs dp-accounting: pip install -r tests/reference/requirements.txt")

# dp-accounting warns (on stderr) for every fractional order whose series it gives up on.
absl_logging.set_verbosity(absl_logging.ERROR)

RELATIVE_TOLERANCE = 0.01
ZERO_EPSILON = 1e-9


def grid():
    """The (q, σ, steps, δ) cases, at least 40."""
    cases = []
    # Federated learning: a sizeable fraction of clients per round, few rounds.
    fl_steps = [10, 100, 500, 2000]
    for i, q in enumerate([0.05, 0.1, 0.25, 0.5, 1.0]):
        for j, sigma in enumerate([0.3, 0.8, 1.5, 5.0]):
            steps = fl_steps[(i + j) % len(fl_steps)]
            delta = 1e-5 if (i + j) % 2 == 0 else 1e-6
            cases.append((q, sigma, steps, delta))
    # DP-SGD: small batches out of a large dataset, many steps.
    sgd_steps = [1000, 10000, 100000]
    for i, q in enumerate([0.001, 0.004, 0.01]):
        for j, sigma in enumerate([0.6, 1.0, 1.5, 4.0]):
            steps = sgd_steps[(i + j) % len(sgd_steps)]
            delta = 1e-5 if j % 2 == 0 else 1e-6
            cases.append((q, sigma, steps, delta))
    # Edges: one step, huge noise, no sampling, no noise, tiny q with little noise,
    # a larger δ.
    cases += [
        (0.01, 1.0, 1, 1e-5),
        (0.5, 20.0, 1, 1e-6),
        (0.1, 50.0, 100, 1e-5),
        (0.0, 1.0, 1000, 1e-5),
        (0.2, 0.0, 10, 1e-5),
        (1.0, 0.5, 1, 1e-5),
        (0.001, 0.5, 100, 1e-6),
        (0.02, 1.1, 5000, 1e-3),
        (0.3, 2.0, 0, 1e-5),
        (0.7, 1.2, 300, 1e-5),
    ]
    return cases


TARGET_CASES = [
    # (q, steps, δ, target ε)
    (0.1, 100, 1e-5, 8.0),
    (0.05, 500, 1e-5, 3.0),
    (0.25, 50, 1e-6, 5.0),
    (1.0, 20, 1e-5, 10.0),
    (0.5, 2000, 1e-5, 1.0),
    (0.01, 10000, 1e-5, 3.0),
    (0.004, 100000, 1e-6, 1.0),
    (0.001, 1000, 1e-5, 0.5),
]


def reference_epsilon(q, sigma, steps, delta):
    accountant = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    if steps > 0:  # dp-accounting rejects a count of 0; composing nothing is the same
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


def run(cmd, flags):
    args = cmd + [str(a) for a in flags]
    try:
        out = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as e:
        sys.exit(f"cannot run {' '.join(args)}: {e}")
    if out.returncode != 0:
        print(f"{' '.join(args)} exited {out.returncode}:\n{out.stderr}", file=sys.stderr)
        sys.exit(2)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        print(f"{' '.join(args)} printed no JSON line:\n{out.stdout}", file=sys.stderr)
        sys.exit(2)
    if result.get("accountant") != "rdp":
        print(f"{' '.join(args)}: accountant {result.get('accountant')!r}, not 'rdp'",
              file=sys.stderr)
        sys.exit(2)
    return result


def as_epsilon(value):
    """JSON null is ε = ∞ (no noise)."""
    return math.inf if value is None else float(value)


def difference(got, expected):
    """(relative difference, ok) with the ~0 and ∞ cases handled."""
    if math.isinf(expected) or math.isinf(got):
        return (0.0 if got == expected else math.inf), got == expected
    if abs(expected) <= ZERO_EPSILON:
        return 0.0, abs(got - expected) <= ZERO_EPSILON
    rel = abs(got - expected) / abs(expected)
    return rel, rel <= RELATIVE_TOLERANCE


def check_epsilon(cmd):
    print(f"{'q':>7} {'sigma':>6} {'steps':>7} {'delta':>7} {'iotids eps':>16} "
          f"{'dp-accounting eps':>18} {'order':>6} {'rel diff':>9}")
    worst, failures = 0.0, 0
    cases = grid()
    for q, sigma, steps, delta in cases:
        result = run(cmd, ["--sampling-rate", q, "--noise-multiplier", sigma,
                           "--steps", steps, "--delta", delta])
        got = as_epsilon(result["epsilon"])
        expected = reference_epsilon(q, sigma, steps, delta)
        rel, ok = difference(got, expected)
        worst = max(worst, rel)
        failures += not ok
        print(f"{q:>7g} {sigma:>6g} {steps:>7d} {delta:>7g} {got:>16.10g} "
              f"{expected:>18.10g} {result['order']:>6g} {rel:>9.2e}"
              f"{'' if ok else '  FAIL'}")
    print(f"epsilon: {len(cases)} cases, max relative difference {worst:.3e}, "
          f"{failures} over {RELATIVE_TOLERANCE:.0%}")
    return worst, failures


def check_target(cmd):
    print(f"\n{'q':>7} {'steps':>7} {'delta':>7} {'target':>7} {'iotids sigma':>13} "
          f"{'dp-accounting eps':>18} {'eps/target':>10}")
    failures = 0
    for q, steps, delta, target in TARGET_CASES:
        result = run(cmd, ["--sampling-rate", q, "--target-epsilon", target,
                           "--steps", steps, "--delta", delta])
        sigma = float(result["noise_multiplier"])
        spent = reference_epsilon(q, sigma, steps, delta)
        ratio = spent / target
        ok = (1 - RELATIVE_TOLERANCE) * target <= spent <= (1 + RELATIVE_TOLERANCE) * target
        failures += not ok
        print(f"{q:>7g} {steps:>7d} {delta:>7g} {target:>7g} {sigma:>13.6f} "
              f"{spent:>18.10g} {ratio:>10.6f}{'' if ok else '  FAIL'}")
    print(f"target epsilon: {len(TARGET_CASES)} cases, {failures} outside target·[0.99, 1.01]")
    return failures


def main():
    cmd = sys.argv[1:]
    if not cmd or cmd[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if cmd else 2)
    version = importlib.metadata.version("dp-accounting")
    print(f"dp-accounting {version} against {' '.join(cmd)}\n")
    _, eps_failures = check_epsilon(cmd)
    target_failures = check_target(cmd)
    sys.exit(1 if eps_failures or target_failures else 0)


if __name__ == "__main__":
    main()
