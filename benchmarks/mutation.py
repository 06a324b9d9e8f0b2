"""Mutation testing of the core modules (`[tool.mutmut]` in pyproject.toml): mutmut changes one
operator, constant or condition at a time and reruns the unit tests that cover it; a mutant the tests
let through ("survived") is a bug they would miss. Runs mutmut (or only reads its last results) and
prints per module: mutants, killed, survived (of them "explained": listed in tests/MUTANTS.md as
equivalent), timeouts, not run and score = killed / checked (a timeout is not counted as killed: under
load a slow but correct test run times out too).
Goal (issue 16): >= 90 % in every module, every survivor left either killed by a new test or listed
in tests/MUTANTS.md as equivalent (`--survivors` prints the ones that are not).

    pip install -e .[dev]                        # mutmut, pinned
    python benchmarks/mutation.py [--modules infer.ensemble data.labels ...] [--report-only] [--retest] [--survivors]

Results are kept in mutants/ (git-ignored) and reused: mutmut re-tests only mutants of functions that
changed, so after adding tests run `--retest` (the mutants not killed last time). A mutant that loops
forever costs seconds (timeout_multiplier 3, timeout_constant 5 s).
"""

import argparse
import collections
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LISTED = re.compile(r"^- (drowsy\.\S+__mutmut_\d+):")
MUTMUT = Path(sys.executable).with_name("mutmut")
LET_THROUGH = ("survived", "no tests")  # mutmut's statuses of a mutant the tests did not kill (timeouts aside)


def statuses() -> dict[str, str]:
    """mutmut's last status of every mutant, by name."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=REPO, capture_output=True, text=True, check=True
    )
    pairs = (line.strip().partition(": ") for line in out.stdout.splitlines())
    return {name: status for name, _, status in pairs if "__mutmut_" in name}


def explained(path: Path = REPO / "tests" / "MUTANTS.md") -> set[str]:
    """Survivors listed in tests/MUTANTS.md as equivalent (lines `- NAME: change; why`)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return {m.group(1) for m in map(LISTED.match, lines) if m}


def _module_of(name: str) -> str:
    """drowsy.monitor.state.x_f__mutmut_3 -> drowsy.monitor.state (functions start with x_, methods with xǁ)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def table(status_by_name: dict[str, str], listed: set[str]) -> list[tuple]:
    """Per module: mutants, killed, survived (a mutant no test runs counts as survived), of those the ones
    explained in MUTANTS.md, timeouts, not run, score = killed / checked."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    explained_in: collections.Counter = collections.Counter()
    for name, status in status_by_name.items():
        status = "survived" if status in LET_THROUGH else status
        counts[_module_of(name)][status] += 1
        explained_in[_module_of(name)] += status == "survived" and name in listed
    rows = []
    for module in sorted(counts):
        c = counts[module]
        mutants, checked = sum(c.values()), c["killed"] + c["survived"] + c["timeout"]
        rows.append(
            (
                module.removeprefix("drowsy."),
                mutants,
                c["killed"],
                c["survived"],
                explained_in[module],
                c["timeout"],
                mutants - checked,
                c["killed"] / checked if checked else float("nan"),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modules",
        nargs="*",
        default=[],
        help="only these (e.g. ensemble monitor.state); default: every module of only_mutate",
    )
    parser.add_argument("--report-only", action="store_true", help="print the last run's table, run nothing")
    parser.add_argument(
        "--retest",
        action="store_true",
        help="re-run only the mutants not killed last time (mutmut keeps every other result; new tests "
        "do not re-run old survivors by themselves)",
    )
    parser.add_argument("--survivors", action="store_true", help="list the survivors MUTANTS.md does not explain")
    parser.add_argument("--max-children", type=int, default=os.cpu_count(), help="parallel mutants (default: CPUs)")
    args = parser.parse_args()
    if not MUTMUT.is_file():
        raise SystemExit(f"{MUTMUT}: not installed; pip install -e .[dev]")
    if not args.report_only:
        globs = [f"drowsy.{m}.*" for m in args.modules]
        if args.retest:
            globs = [
                name
                for name, status in statuses().items()
                if status in (*LET_THROUGH, "timeout")
                and (not args.modules or _module_of(name).removeprefix("drowsy.") in args.modules)
            ]
            if not globs:
                raise SystemExit("nothing to re-test: every mutant of these modules was killed")
        # one thread per test run: parallel mutants on a few cores would otherwise fight for them and time out
        env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.max_children > 1 else None
        subprocess.run(
            [str(MUTMUT), "run", *globs, "--max-children", str(args.max_children)],
            cwd=REPO,
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    status_by_name, listed = statuses(), explained()
    rows = table(status_by_name, listed)
    header = ("module", "mutants", "killed", "survived", "explained", "timeouts", "not run", "score")
    print(f"{header[0]:<18}" + "".join(f"{h:>10}" for h in header[1:]))
    for module, *numbers, score in rows:
        print(f"{module:<18}" + "".join(f"{n:>10}" for n in numbers) + f"{score:>10.1%}")
    totals = [sum(r[i] for r in rows) for i in range(1, 7)]
    checked = totals[1] + totals[2] + totals[4]
    print(
        f"{'all':<18}"
        + "".join(f"{n:>10}" for n in totals)
        + f"{totals[1] / checked if checked else float('nan'):>10.1%}"
    )
    stale = sorted(n for n in listed if status_by_name.get(n) not in LET_THROUGH)
    if stale:
        print(f"\n{len(stale)} mutants listed in tests/MUTANTS.md are killed now or gone: " + ", ".join(stale))
    if args.survivors:
        left = sorted(n for n, s in status_by_name.items() if s in LET_THROUGH and n not in listed)
        print(f"\n{len(left)} survivors not explained in tests/MUTANTS.md (mutmut show NAME for the change):")
        print("\n".join(left))


if __name__ == "__main__":
    main()
