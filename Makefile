# Two commands for a fresh machine (see README):
#   make demo   install, generate a small MsPacman dataset, train PermaKey briefly, write keypoint pictures
#   make test   install, run the linter (ruff) and the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test demo bench figure2 games table1 table2 probes clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# The linter first (settings in pyproject.toml), then the suite, one pytest-xdist worker per
# core this process may use (nproc; at most 4), each test file in one worker so its shared
# tiny runs are made once; the 15 slowest tests are listed at the end (where the suite's
# 10 minutes go). pytest exits 5 when it collects no tests: that is a broken suite, not a
# pass.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests -n $(TEST_WORKERS) --dist loadfile --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

demo: install
	$(PY) pkey_train.py with quick

# Seconds per step, memory and fraction of the matmul roofline of every training step
# (about 25 minutes on 2 cores; `$(PY) bench.py --steps 3 --warmup 1` for a quick look).
bench: install
	$(PY) bench.py

# The paper's Figure 2 on a CPU: PermaKey and Transporter for BUDGET minutes each, clean and
# with distractor bars, one after another; a second call continues (experiments.py).
BUDGET ?= 30
figure2: install
	$(PY) experiments.py figure2 with budget=$(BUDGET)

# Keypoints on every game of the paper (MsPacman, Seaquest, Frostbite, BattleZone,
# SpaceInvaders, each with its K): both methods' recipes for GAMES_BUDGET minutes each, one
# after another, then a table and a picture per game; a second call continues.
GAMES_BUDGET ?= 11
games: install
	$(PY) experiments.py games with budget=$(GAMES_BUDGET)

# The paper's Table 1 on one game: the keypoint agents (AGENTS, default PKey-GNN,
# Transporter-GNN and the fixed-keypoint control), SEEDS training seeds of STEPS
# environment steps (one count for all, or one per agent: SEEDS=5,5,3), one run after
# another, and their floors (random policies; each agent run's own policy at the end of
# its warm-up), each scored by the authors' protocol, deterministic and with sticky
# actions; a second call continues (experiments.py). `make table1 GAME=seaquest`: another game.
GAME ?= mspacman
SEEDS ?= 3
STEPS ?= 100000
table1: install
	$(PY) experiments.py table1 with $(GAME) seeds=$(SEEDS) steps=$(STEPS) $(if $(AGENTS),agents=$(AGENTS))

# The paper's Table 2: table1 with distractor bars (noise_type="both") on the keypoint
# trainings and the agents' frames: PKey-GNN and Transporter-GNN with 5 training seeds,
# the control with 3 (TABLE2_SEEDS, one count per agent of TABLE2_AGENTS); files
# table2_<game>.*; a second call continues.
TABLE2_AGENTS ?= PKey-GNN,Transporter-GNN,Control-GNN
TABLE2_SEEDS ?= 5,5,3
table2: install
	$(PY) experiments.py table1 with $(GAME) noise_type=both agents=$(TABLE2_AGENTS) seeds=$(TABLE2_SEEDS) steps=$(STEPS)

# AtariARI-style linear probes (issue 40, docs/probes.md): for each game of GAMES (default
# MsPacman, Seaquest, Frostbite, BattleZone) and keypoint seed (PROBE_SEEDS: one count for
# all games; default 3 on MsPacman and Seaquest, 1 on the others), table1's keypoint runs
# (trained if missing), then one probe per RAM variable on every representation:
# docs/results/probes_table.md; a second call continues. `make probes GAMES=mspacman PROBE_SEEDS=1`.
probes: install
	$(PY) experiments.py probes with $(if $(GAMES),probe_games=$(GAMES)) $(if $(PROBE_SEEDS),probe_seeds=$(PROBE_SEEDS))

clean:
	rm -rf $(VENV)
