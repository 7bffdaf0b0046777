import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import test_policy_incremental as inc
from bmx7wg import history, policy
from policy_world import advert as mk_advert, context, key, node_id_starting, originator, rules

A = node_id_starting("1", "a")     # A < C as strings: without history the lowest nodeId wins ties
C = node_id_starting("9", "c")
B = node_id_starting("5", "b")
NET = "10.1.0.0/16"
OPEN = rules({"network": "10.0.0.0/8", "hysteresis": "20"})


def restarted(sel, origs, ads, now, rules_=OPEN):
    """A new helper's first call: a fresh Policy, previous = what the state file kept (or None)."""
    kept = json.loads(json.dumps({"history": history.dump(sel)}))["history"] if sel else None
    return policy.Policy().select(context(origs, rules_, previous=history.seed(kept), now=now), ads)


def test_holder_kept_by_hysteresis_keeps_the_prefix_across_a_restart():
    # A holds NET alone; C comes later 10 % better: hysteresis (20 %) keeps A
    first = policy.select(context([originator(A, metric=100)], OPEN, now=1), {A: mk_advert(A, networks=[NET])})
    ads = {A: mk_advert(A, networks=[NET]), C: mk_advert(C, networks=[NET])}
    origs = [originator(A, metric=100), originator(C, metric=110)]
    running = policy.select(context(origs, OPEN, previous=first, now=2), ads)
    assert running.holders[NET] == A
    assert restarted(None, origs, ads, now=50).holders[NET] == C        # what a restart did before
    again = restarted(running, origs, ads, now=50)
    assert again.holders[NET] == A and again.holder_since[NET] == 1
    assert again.peers == policy.select(context(origs, OPEN, previous=running, now=50), ads).peers


def test_older_claim_keeps_the_prefix_across_a_restart():
    origs = [originator(n, metric=100) for n in (A, C)]
    older_c = policy.select(context(origs, OPEN, now=1), {C: mk_advert(C, networks=[NET])})
    ads = {n: mk_advert(n, networks=[NET]) for n in (A, C)}
    running = policy.select(context(origs, OPEN, previous=older_c, now=2), ads)
    assert running.holders[NET] == C
    assert restarted(None, origs, ads, now=9).holders[NET] == A         # lowest nodeId
    again = restarted(running, origs, ads, now=9)
    assert again.holders[NET] == C
    assert {c: t for c, t in again.claimed_since.items() if c[0] == NET} == {(NET, C): 1, (NET, A): 2}


def test_older_key_claim_keeps_the_key_across_a_restart():
    origs = [originator(A), originator(C)]
    first = policy.select(context(origs, now=10), {C: mk_advert(C, public_key=key("k"))})
    ads = {n: mk_advert(n, public_key=key("k")) for n in (A, C)}
    running = policy.select(context(origs, previous=first, now=20), ads)
    assert running.peers[C].status == "accepted"
    assert restarted(None, origs, ads, now=30).peers[C].status == "rejected"
    again = restarted(running, origs, ads, now=30)
    assert again.peers[C].status == "accepted" and again.peers[A].reason == f"key already used by node {C[:8]}"


def test_kept_history_is_contested_claims_and_networks_not_tunnel_addresses():
    origs = [originator(n, metric=100) for n in (A, B, C)]
    ads = {A: mk_advert(A, networks=[NET]), C: mk_advert(C, networks=[NET]),
           B: mk_advert(B, networks=["10.2.0.0/16"])}
    sel = policy.select(context(origs, OPEN, now=7), ads)
    assert history.dump(sel) == {"holders": [[NET, A, 7], ["10.2.0.0/16", B, 7]],
                                 "claims": [[NET, A, 7], [NET, C, 7], ["10.2.0.0/16", B, 7]],
                                 "key_claims": []}
    assert history.dump(None) == {"holders": [], "claims": [], "key_claims": []}
    only_addresses = {n: mk_advert(n) for n in (A, B)}
    assert history.seed(history.dump(policy.select(context(origs, OPEN, now=7), only_addresses))) is None


def test_an_uncontested_network_overlapping_a_contested_one_keeps_its_incumbent_bonus():
    """Found by the property test below: node D's 2001:db8::/32 and its contested 2000::/3, under
    a rule that allows no overlap. Running, both are incumbents and neither suppresses the other;
    a restart that remembered only the contested one gave it alone the bonus, and D lost its /32."""
    rule = rules({"network": "::/0", "hysteresis": "20", "allow_overlapping_prefix": "0",
                  "break_overlapping_prefix": "0"})
    origs = [originator(A, metric=100), originator(C, metric=0, reachable=False)]
    ads = {A: mk_advert(A, networks=["2001:db8::/32", "2000::/3"]), C: mk_advert(C, networks=["2000::/3"])}
    running = policy.select(context(origs, rule, now=1), ads)
    running = policy.select(context(origs, rule, previous=running, now=2), ads)
    assert "2001:db8::/32" in running.peers[A].accepted_networks
    assert restarted(running, origs, ads, now=3, rules_=rule).peers == running.peers


@pytest.mark.parametrize("data", [None, [], "x", {}, {"claims": "x"}, {"holders": [[1, 2, 3]]},
                                  {"claims": [["p", "n", "3"], ["p", "n", True], ["p", "n", math.nan],
                                              ["p", "n"], ["p", None, 1], "pn1"]}])
def test_damaged_history_is_no_history(data):
    assert history.seed(data) is None


def test_damaged_entries_are_skipped_and_the_rest_kept():
    sel = history.seed({"claims": [["p", "n", 4], ["p", "n", "bad"], ["q", "m", 5.5]], "holders": 3})
    assert sel.claimed_since == {("p", "n"): 4.0, ("q", "m"): 5.5}
    assert sel.holders == {} and sel.key_since == {} and sel.peers == {} and sel.now == 5.5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_restart_with_the_same_inputs_decides_what_the_running_helper_would(data):
    """On random histories (hostile claims, copied keys, metrics, hysteresis, proofs): a helper
    restarted from the state file's history decides, on the same inputs, exactly what the
    running one would: the same peers and the same holder for every prefix and key."""
    rules = inc.draw_rules(data)
    origs = {inc.ME: originator(inc.ME, name="me"), **{n: inc.draw_originator(data, n) for n in inc.POOL[:4]}}
    adverts, proven, sel, now = {}, {}, None, 0.0
    for _ in range(data.draw(st.integers(1, 12))):
        nid = data.draw(st.sampled_from(inc.POOL))
        op = data.draw(st.sampled_from(["advert", "advert", "withdraw", "originator", "prove"]))
        if op == "advert":
            adverts[nid] = inc.draw_advert(data, nid)
            origs.setdefault(nid, inc.draw_originator(data, nid))
        elif op == "withdraw":
            adverts.pop(nid, None)
        elif op == "originator":
            origs[nid] = inc.draw_originator(data, nid)
        else:
            proven[key(data.draw(st.sampled_from(inc.POOL)))] = nid
        now += data.draw(st.sampled_from([0.0, 1.0, 5.0]))
        sel = policy.select(inc.context(rules, origs, proven, sel, now), dict(adverts))
    later = now + data.draw(st.sampled_from([1.0, 30.0]))
    kept = json.loads(json.dumps(history.dump(sel)))
    running = policy.select(inc.context(rules, origs, proven, sel, later), dict(adverts))
    restarted = policy.Policy().select(inc.context(rules, origs, proven, history.seed(kept), later), dict(adverts))
    assert restarted.peers == running.peers
    assert restarted.holders == running.holders


def test_the_file_holds_wall_clock_times_a_restart_maps_back():
    """The policy runs on the monotonic clock; the file shows wall-clock times (offset = wall -
    monotonic), and a restart reading it with its own offset gets its monotonic times back."""
    sel = history.seed({"holders": [["p", "A", 7.0]], "claims": [["p", "A", 7.0], ["p", "B", 9.0]],
                        "key_claims": [["k", "A", 3.0], ["k", "B", 5.0]]})
    assert history.dump(sel, 1000.0) == {"holders": [["p", "A", 1007.0]],
                                         "claims": [["p", "A", 1007.0], ["p", "B", 1009.0]],
                                         "key_claims": [["k", "A", 1003.0], ["k", "B", 1005.0]]}
    again = history.seed(history.dump(sel, 1000.0), 1000.0)
    assert (again.holder_since, again.claimed_since, again.key_since, again.now) == \
        (sel.holder_since, sel.claimed_since, sel.key_since, sel.now)
