"""The redesign changed no number: seeded short runs (tests/digest_runs.py) of PermaKey,
Transporter and a PermaKey-GNN agent end with the same weights, bit for bit, as they did
at the commit named in tests/recorded_digests.json, on a CPU of the kind they were recorded on."""
import json
import os

import pytest

import digest_runs

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recorded_digests.json")


def test_seeded_short_runs_end_with_the_recorded_weights(tmp_path):
    with open(RECORDED) as f:
        recorded = json.load(f)
    cpu = digest_runs.cpu_kind()
    if cpu not in recorded["by_cpu"]:
        pytest.skip(f"no digests recorded for {cpu}: run `python tests/digest_runs.py "
                    f"CHECKOUT` with a checkout of {recorded['recorded_at_commit']} and add them")
    assert digest_runs.digests(str(tmp_path)) == recorded["by_cpu"][cpu]
