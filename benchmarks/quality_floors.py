"""The spread of the test suite's quality floors over training seeds.

Every quality floor of ``tests/`` on a model the suite trains goes through
``tests.helpers.check_floor`` / ``check_ceiling``. This script runs exactly
those tests once per training seed (``MMXAI_TEST_SEED``), with
``MMXAI_QUALITY_LOG`` set so that each floor records its metric instead of
asserting it, and prints per floor the bound, the value of every seed, the
worst seed's margin and whether the bound held for every seed::

    .venv/bin/python benchmarks/quality_floors.py --seeds 0 1 2 3 4 \
        [--output work_dirs/quality_floors.json] [-k localisation]

A floor belongs below the worst seed with a margin (``docs/development.md``
lists the current figures). Each seed trains the suite's three models (about
4 minutes on 2 cores) and runs the floor tests (about 8 more).
"""
import argparse
import ast
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
from typing import Dict, List

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CHECKS = {'check_floor', 'check_ceiling'}


def _calls(node: ast.AST) -> set:
    return {n.func.id for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def floor_tests() -> List[str]:
    """Node ids of the test functions that check a floor, directly or through a helper."""
    node_ids = []
    for folder, _, files in os.walk(osp.join(REPO, 'tests')):
        for name in sorted(files):
            if not (name.startswith('test_') and name.endswith('.py')):
                continue
            path = osp.join(folder, name)
            tree = ast.parse(open(path).read())
            functions = {f.name: _calls(f) for f in tree.body if isinstance(f, ast.FunctionDef)}
            checking = set(CHECKS)
            while True:  # helpers of the module that check, to a fixpoint
                more = {f for f, calls in functions.items() if calls & checking} - checking
                if not more:
                    break
                checking |= more
            node_ids += [f'{osp.relpath(path, REPO)}::{f}' for f in functions
                         if f.startswith('test_') and f in checking]
    return sorted(node_ids)


def run_seed(seed: int, tests: List[str], extra: List[str]) -> List[dict]:
    """The records of one pytest run of ``tests`` with models trained from ``seed``."""
    with tempfile.TemporaryDirectory() as tmp:
        log = osp.join(tmp, 'floors.jsonl')
        env = dict(os.environ, MMXAI_TEST_SEED=str(seed), MMXAI_QUALITY_LOG=log)
        command = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *extra,
                   *tests]
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f'seed {seed}: pytest failed (a test broke, not a floor):\n'
                     f'{result.stdout[-3000:]}')
        with open(log) as file:
            return [json.loads(line) for line in file]


def summarise(runs: Dict[int, List[dict]]) -> List[dict]:
    """One row per floor: its bound, its value per seed and the worst seed's margin."""
    rows: Dict[str, dict] = {}
    for seed, records in runs.items():
        for record in records:
            row = rows.setdefault(record['name'], dict(name=record['name'], kind=record['kind'],
                                                       bound=record['bound'], values={}))
            row['values'][seed] = record['value']
    for row in rows.values():
        values = list(row['values'].values())
        worst = max(values) if row['kind'] == '<' else min(values)
        row['worst'] = worst
        row['margin'] = row['bound'] - worst if row['kind'] == '<' else worst - row['bound']
        row['holds'] = row['margin'] > 0 or (row['kind'] == '>=' and row['margin'] == 0)
    return sorted(rows.values(), key=lambda r: r['name'])


def markdown(rows: List[dict], seeds: List[int]) -> str:
    lines = ['| floor | bound | ' + ' | '.join(f'seed {s}' for s in seeds) +
             ' | worst margin | holds |', '|---|---|' + '---|' * len(seeds) + '---|---|']
    for row in rows:
        values = ' | '.join(f"{row['values'][s]:.3f}" if s in row['values'] else '-'
                            for s in seeds)
        lines.append(f"| {row['name']} | {row['kind']} {row['bound']:g} | {values} | "
                     f"{row['margin']:+.3f} | {'yes' if row['holds'] else '**no**'} |")
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('-k', dest='keyword', help='only the floor tests matching this')
    parser.add_argument('--output', help='also write the rows as JSON here')
    args = parser.parse_args()
    tests = floor_tests()
    extra = ['-k', args.keyword] if args.keyword else []
    runs = {}
    for seed in args.seeds:
        runs[seed] = run_seed(seed, tests, extra)
        print(f'seed {seed}: {len(runs[seed])} floors measured', flush=True)
        if args.output:  # after every seed: a long run keeps what it measured
            with open(args.output, 'w') as file:
                json.dump(dict(seeds=list(runs), tests=tests, rows=summarise(runs)), file,
                          indent=1)
    print(markdown(summarise(runs), args.seeds))


if __name__ == '__main__':
    main()
