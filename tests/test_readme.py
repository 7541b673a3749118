"""Every command line of the README and of docs/usage.md runs as written: each Sacred
command's configuration resolves (print_config), each make target exists and calls
scripts whose configuration resolves, and each other script named exists. A renamed
option or named config then breaks the suite, not a user. Also: every relative link of
the README and of docs/ points to an existing file (and heading), the README stays
short, and docs/README.md names every page of docs/."""
import glob
import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SACRED_SCRIPTS = ("pkey_train.py", "transporter_train.py", "agent_train.py", "preprocess.py",
                  "experiments.py")


# The pages whose code blocks are command lines a user may paste.
COMMAND_PAGES = ("README.md", "docs/usage.md")
README_MAX_LINES = 250


def page_commands(page="README.md"):
    """The lines of a page's code blocks, with backslash continuations joined."""
    with open(os.path.join(ROOT, page)) as f:
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


COMMANDS = page_commands("README.md")
PAGE_COMMANDS = [(page, command) for page in COMMAND_PAGES for command in page_commands(page)]


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


def test_usage_page_has_commands():
    assert {page for page, _ in PAGE_COMMANDS} == set(COMMAND_PAGES)


@pytest.mark.parametrize("page, command", PAGE_COMMANDS,
                         ids=[f"{page}: {command}" for page, command in PAGE_COMMANDS])
def test_page_command_resolves(page, command, capsys):
    argvs = argvs_of(command)
    if command.startswith(("make demo", "make figure2")):
        assert argvs, f"{command}: make -n shows no script"
    words = shlex.split(command)
    if words[0].endswith("python") and words[1].endswith(".py"):
        assert os.path.isfile(os.path.join(ROOT, words[1])), f"{page}: {command}: no {words[1]}"
    for script, *updates in argvs:
        module = importlib.import_module(script[:-3])
        # print_config resolves named configs and updates as the command would, and fails
        # on an option the script does not have.
        module.ex.run_commandline([script, "print_config", "with", *updates])
        printed = capsys.readouterr().out
        assert "Configuration" in printed, f"{command}: {printed[-500:]}"


def markdown_pages():
    """README.md and every markdown page under docs/, relative to the repository."""
    pages = glob.glob("docs/**/*.md", root_dir=ROOT, recursive=True)
    return ["README.md", *sorted(pages)]


def heading_anchors(path):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped,
    spaces as hyphens (headings inside code blocks are not headings)."""
    with open(path) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    anchors = set()
    for heading in re.findall(r"^#+ +(.+?) *$", text, re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def relative_links(page):
    """(target, anchor) of every link and image of a page that is not a URL."""
    with open(os.path.join(ROOT, page)) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    links = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"^[a-z]+:", target):
            path, _, anchor = target.partition("#")
            links.append((path, anchor))
    return links


@pytest.mark.parametrize("page", markdown_pages())
def test_every_relative_link_points_to_a_file(page):
    for path, anchor in relative_links(page):
        target = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path or
                                               os.path.basename(page)))
        assert os.path.exists(target), f"{page}: link to {path}: no such file"
        if anchor and target.endswith(".md"):
            assert anchor in heading_anchors(target), \
                f"{page}: link to {path}#{anchor}: no such heading"


def test_the_link_check_sees_a_broken_link(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n[b](b.md), [self](#a-page), "
                                            "[up](../README.md#two-words), [web](https://x.org)\n")
    (tmp_path / "README.md").write_text("# Two words\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert markdown_pages() == ["README.md", "docs/a.md"]
    assert relative_links("docs/a.md") == [("b.md", ""), ("", "a-page"),
                                           ("../README.md", "two-words")]
    with pytest.raises(AssertionError, match="link to b.md: no such file"):
        test_every_relative_link_points_to_a_file("docs/a.md")
    (tmp_path / "docs" / "b.md").write_text("")
    test_every_relative_link_points_to_a_file("docs/a.md")
    (tmp_path / "README.md").write_text("# Other words\n")
    with pytest.raises(AssertionError, match="two-words: no such heading"):
        test_every_relative_link_points_to_a_file("docs/a.md")


def test_the_readme_is_short():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().splitlines()) <= README_MAX_LINES


def test_the_docs_index_names_every_page():
    index = os.path.join(ROOT, "docs", "README.md")
    named = {os.path.normpath(os.path.join("docs", path))
             for path, _ in relative_links("docs/README.md")}
    pages = set(markdown_pages()) - {"README.md", "docs/README.md"}
    assert pages - named == set(), f"{index} does not name these pages: add one line each"


# --------------------------------------------------------------------------------------
# The README's commands on existing runs execute, as written, on tiny `quick` runs: a run
# folder is enough (the model from its model.json, the data from its config.json).

# `quick` with a few hundred frames and a few steps (typed, so the runs record them)
TINY_QUICK = ["num_frames=400", "num_eval_frames=150", "epochs=1", "steps_per_epoch=3",
              "valid_batches=2", "metrics_frames=16", "valid_metrics_frames=16",
              "num_eval_batches=1", "max_minutes=None"]
RUN_COMMANDS = ("evaluate with", "compare_kpts with")


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """{"permakey_exp/none/mspacman/7/1": tiny PermaKey quick run, "transporter_exp/...":
    tiny Transporter quick run}: the README's run folders, made as `make demo` makes them."""
    root = tmp_path_factory.mktemp("quick_runs")
    made = {}
    for script, folder in (("pkey_train.py", "permakey_exp"),
                           ("transporter_train.py", "transporter_exp")):
        argv = [script, "with", "quick", *TINY_QUICK, f"data_dir={root / 'data'}",
                f"exp_root={root / folder}"] + (["num_pairs=96"] if "transporter" in script
                                                 else [])
        run = importlib.import_module(script[:-3]).ex.run_commandline(argv)
        made[f"{folder}/none/mspacman/7/1"] = run.observers[0].dir
    return made


@pytest.mark.parametrize("command", [c for c in page_commands() if any(
    word in c for word in RUN_COMMANDS) and not c.startswith("python agent_train.py")])
def test_readme_command_on_a_run_folder_executes(command, quick_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # compare_kpts writes into ./compare_kpts
    for readme_path, run_dir in quick_runs.items():
        command = command.replace(readme_path, run_dir)
    script, *rest = shlex.split(command)[1:]
    run = importlib.import_module(script[:-3]).ex.run_commandline([script, *rest])
    assert run.status == "COMPLETED"
    out_dir = run.observers[0].dir
    assert os.path.isfile(os.path.join(out_dir, "batch_0.npz")), os.listdir(out_dir)
