"""Mutation testing of the core modules (`[tool.mutmut]` in pyproject.toml): mutmut changes one
operator, constant or condition at a time and reruns the unit tests that cover it; a mutant the tests
let through ("survived") is a bug they would miss. Runs mutmut (or only reads its last results) and
prints per module: mutants, killed, survived, timeouts, not run and score = killed / checked (a
timeout is not counted as killed: under load a slow but correct test run times out too).
Goal (issue 16): >= 90 % in every module, every survivor left either killed by a new test or listed
in tests/MUTANTS.md as equivalent.

    pip install -e .[dev]                        # mutmut, pinned
    python benchmarks/mutation.py [--modules ensemble labels ...] [--report-only] [--survivors]

Results are kept in mutants/ (git-ignored) and reused: mutmut re-tests only what changed. A mutant
that loops forever costs seconds (timeout_multiplier 3, timeout_constant 5 s).
"""

import argparse
import collections
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")


def results() -> dict[str, collections.Counter]:
    """mutmut's status of every mutant, counted per module (drowsy.<module>)."""
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=REPO, capture_output=True, text=True, check=True)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in out.stdout.splitlines():
        name, _, status = line.strip().partition(": ")
        if "__mutmut_" in name:
            counts[_module_of(name)][status] += 1
    return counts


def _module_of(name: str) -> str:
    """drowsy.monitor.state.x_f__mutmut_3 -> drowsy.monitor.state (functions start with x_, methods with xǁ)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def table(counts: dict[str, collections.Counter]) -> list[tuple]:
    rows = []
    for module in sorted(counts):
        c = counts[module]
        c["survived"] += c.pop("no tests", 0)  # a mutant no test runs: let through
        checked = c["killed"] + c["survived"] + c["timeout"]
        score = c["killed"] / checked if checked else float("nan")
        rows.append((module.removeprefix("drowsy."), sum(c.values()), c["killed"], c["survived"], c["timeout"],
                     sum(c.values()) - checked, score))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=[],
                        help="only these (e.g. ensemble monitor.state); default: every module of only_mutate")
    parser.add_argument("--report-only", action="store_true", help="print the last run's table, run nothing")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants too")
    parser.add_argument("--max-children", type=int, default=os.cpu_count(), help="parallel mutants (default: CPUs)")
    args = parser.parse_args()
    if not MUTMUT.is_file():
        raise SystemExit(f"{MUTMUT}: not installed; pip install -e .[dev]")
    if not args.report_only:
        globs = [f"drowsy.{m}.*" for m in args.modules]
        subprocess.run([str(MUTMUT), "run", *globs, "--max-children", str(args.max_children)], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    rows = table(results())
    print(f"{'module':<20} {'mutants':>8} {'killed':>7} {'survived':>9} {'timeouts':>9} {'not run':>8} {'score':>7}")
    for module, mutants, killed, survived, timeouts, not_run, score in rows:
        print(f"{module:<20} {mutants:>8} {killed:>7} {survived:>9} {timeouts:>9} {not_run:>8} {score:>7.1%}")
    totals = [sum(r[i] for r in rows) for i in range(1, 6)]
    checked = totals[1] + totals[2] + totals[3]
    print(f"{'all':<20} {totals[0]:>8} {totals[1]:>7} {totals[2]:>9} {totals[3]:>9} {totals[4]:>8} "
          f"{totals[1] / checked if checked else float('nan'):>7.1%}")
    if args.survivors:
        out = subprocess.run([str(MUTMUT), "results"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        print("\nsurvivors (mutmut show NAME for the change):\n" + out)


if __name__ == "__main__":
    main()
