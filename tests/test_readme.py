"""Every command line of the README runs as written: each Sacred command's configuration
resolves (print_config), and each make target exists and calls scripts whose
configuration resolves. A renamed option or named config then breaks the suite, not a
user."""
import importlib
import os
import re
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SACRED_SCRIPTS = ("pkey_train.py", "transporter_train.py", "agent_train.py", "preprocess.py",
                  "experiments.py")


def readme_commands():
    """The lines of the README's code blocks, with backslash continuations joined."""
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = re.findall(r"```\n(.*?)```", f.read(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line:
                commands.append(line)
    return commands


def sacred_argv(words):
    """[script, updates...] of a `python SCRIPT.py [command] with ...` line (None if it
    runs no Sacred script): env-variable assignments and the python binary dropped."""
    while words and re.match(r"^[A-Z_]+=", words[0]):
        words = words[1:]
    if len(words) < 2 or not words[0].endswith("python") or \
            os.path.basename(words[1]) not in SACRED_SCRIPTS:
        return None
    script, rest = os.path.basename(words[1]), words[2:]
    updates = rest[rest.index("with") + 1:] if "with" in rest else []
    return [script, *updates]


def make_argvs(words):
    """The Sacred command lines a `make TARGET VAR=...` line would run (make -n)."""
    printed = subprocess.run(["make", "-n", "--no-print-directory", *words[1:]], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    found = []
    for line in printed.splitlines():
        if not any(script in line for script in SACRED_SCRIPTS):
            continue  # e.g. the test target's shell lines
        argv = sacred_argv(shlex.split(line.replace(".venv/bin/python", "python")))
        if argv:
            found.append(argv)
    return found


COMMANDS = readme_commands()


def argvs_of(command):
    """The Sacred command lines a README line runs: its own, or those of a make target."""
    words = shlex.split(command)
    if words[0] == "make":
        return make_argvs(words)
    argv = sacred_argv(words)
    return [argv] if argv else []


def test_the_readme_has_the_commands_of_each_task():
    scripts = {argv[0] for command in COMMANDS for argv in argvs_of(command)}
    assert scripts == set(SACRED_SCRIPTS)
    assert {"make demo", "make test"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_resolves(command, capsys):
    argvs = argvs_of(command)
    if command.startswith(("make demo", "make figure2")):
        assert argvs, f"{command}: make -n shows no script"
    for script, *updates in argvs:
        module = importlib.import_module(script[:-3])
        # print_config resolves named configs and updates as the command would, and fails
        # on an option the script does not have.
        module.ex.run_commandline([script, "print_config", "with", *updates])
        printed = capsys.readouterr().out
        assert "Configuration" in printed, f"{command}: {printed[-500:]}"
