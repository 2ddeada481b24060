"""`make lint` gives every shell script of the repository to shellcheck."""
import subprocess

from tests.tools.setup_env_fakes import REPO


def shell_scripts(cwd):
    """The Makefile's list of shell scripts, for the git checkout ``cwd``."""
    out = subprocess.run(['make', '-s', '-f', str(REPO / 'Makefile'), 'shell-scripts'], cwd=cwd,
                         check=True, capture_output=True, text=True).stdout
    return sorted(out.splitlines())


def test_every_sh_or_bash_shebang_is_listed(tmp_path):
    files = {
        'tools/a.sh': '#!/usr/bin/env bash\necho a\n',
        'tools/run': '#!/bin/sh\necho run\n',
        'with space/b c': '#!/bin/bash -eu\necho b\n',
        'new.sh': '#!/usr/bin/env sh\n',  # not added to git yet: still linted
        'tools/x.py': '#!/usr/bin/env python\n"""#!/bin/sh"""\n',
        'notes.txt': 'text\n#!/bin/sh\n',
        'zsh.sh': '#!/bin/zsh\n',
        'ignored/run.sh': '#!/bin/bash\n',
        '.gitignore': 'ignored/\n',
        'gone.sh': '#!/bin/bash\n',
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    subprocess.run(['git', 'init', '-q'], cwd=tmp_path, check=True)
    tracked = [path for path in files if path not in ('new.sh', 'ignored/run.sh')]
    subprocess.run(['git', 'add', '--', *tracked], cwd=tmp_path, check=True)
    (tmp_path / 'gone.sh').unlink()  # tracked, deleted from the working tree
    assert shell_scripts(tmp_path) == ['new.sh', 'tools/a.sh', 'tools/run', 'with space/b c']


def test_the_repository_scripts_are_listed():
    assert {'.ci/run', 'tools/setup_env.sh', 'tools/dist_explain.sh'} <= set(shell_scripts(REPO))
