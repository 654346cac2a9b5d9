"""Plans: JSON round trip, the hash covers exactly what determines the weights, one-line errors."""

import json

import pytest

from oodbench.errors import UserError
from oodbench.methods.setar.plan import NONE_HASH, Plan, PlanEntry


def _plan(**kw):
    entries = [("vision", "W_up", 11, 0.15), ("vision", "W_up", 10, 0.0), ("text", "W_up", 6, 0.25)]
    return Plan.from_entries(entries, **kw)


def test_round_trip(tmp_path):
    plan = _plan(prune="minor", seed=5)
    plan.search = {"searcher": "setar-s", "lambda": 0.1}
    path = plan.save(tmp_path / "sub" / "plan.json")
    back = Plan.load(path)
    assert back.entries == plan.entries and back.prune == "minor" and back.seed == 5
    assert back.search == {"searcher": "setar-s", "lambda": 0.1}
    data = json.loads(path.read_text())
    assert data["hash"] == plan.hash() and data["format"] == "oodbench-setar-plan"
    assert data["entries"][0] == {"tower": "vision", "weight_type": "W_up", "layer": 11, "ratio": 0.15}


def test_hash_covers_what_determines_the_weights():
    base = _plan().hash()
    # entry order, ratio-0 entries, search settings and (for minor) the seed do not change the weights
    reordered = Plan.from_entries([("text", "W_up", 6, 0.25), ("vision", "W_up", 11, 0.15)])
    assert reordered.hash() == base
    assert _plan(seed=9).hash() == base
    p = _plan()
    p.search = {"lambda": 3}
    assert p.hash() == base
    # ratios, prune strategy, and the seed of random pruning do
    assert Plan.from_entries([("vision", "W_up", 11, 0.20), ("text", "W_up", 6, 0.25)]).hash() != base
    assert _plan(prune="principal").hash() != base
    assert _plan(prune="random", seed=1).hash() != _plan(prune="random", seed=2).hash()
    # nothing modified -> the vanilla key
    assert Plan.from_entries([("vision", "W_up", 3, 0.0)]).hash() == NONE_HASH == Plan().hash()


def test_official_settings_list_is_accepted():
    plan = Plan.from_dict([["visual", "W_up", 11, 0.15], ["text", "W_up", 0, 0.2], ["visual", "W_p", None, 0.1]])
    assert plan.entries[0] == PlanEntry("vision", "W_up", 11, 0.15)
    assert plan.entries[2] == PlanEntry("vision", "W_p", -1, 0.1)


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"),
    ('{"entries": [["text", "W_up", 1, Infinity]]}', "ratio must be"),
    ('{"entries": 3}', "'entries' must be a list"),
    ('{"entries": [{"tower": "vision", "weight_type": "W_up", "layer": 1}]}', "lacks ratio"),
    ('{"entries": [{"tower": "audio", "weight_type": "W_up", "layer": 1, "ratio": 0.1}]}', "unknown tower"),
    ('{"entries": [{"tower": "text", "weight_type": "W_zz", "layer": 1, "ratio": 0.1}]}', "unknown weight type"),
    ('{"entries": [{"tower": "text", "weight_type": "W_up", "layer": 1, "ratio": -0.1}]}', "ratio must be"),
    ('{"entries": [{"tower": "text", "weight_type": "W_up", "layer": 1, "ratio": 2.5}]}', "absolute rank"),
    ('{"entries": [{"tower": "text", "weight_type": "W_up", "layer": 1.5, "ratio": 0.1}]}', "layer must be"),
    ('{"entries": [["text", "W_up", 1, 0.1], ["text", "W_up", 1, 0.2]]}', "appears twice"),
    ('{"entries": [], "prune": "biggest"}', "unknown prune strategy"),
    ('{"format": "something-else", "entries": []}', "not a SeTAR plan"),
    ('{"entries": [["text", "W_up", 1, 0.1]], "hash": "0000"}', "does not match"),
])
def test_malformed_plan_files_give_one_line_errors(tmp_path, content, fragment):
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(UserError) as exc:
        Plan.load(path)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg and str(path) in msg


def test_missing_plan_file(tmp_path):
    with pytest.raises(UserError, match="plan file not found"):
        Plan.load(tmp_path / "nope.json")


def test_describe_and_with_entry():
    p = _plan().with_entry(PlanEntry("vision", "W_up", 11, 0.3))
    assert p.ratios()[("vision", "W_up", 11)] == 0.3 and len(p.entries) == 3
    assert p.describe() == "t6:0.25 v11:0.3"
