"""rounds.py: --repeat N: the server order of each round, the median record of a figure over
rounds, and which records belong to a round. A round measures every server once; its order is
rotated so that slow drift in a shared machine falls on every server alike."""
import statistics


def order(items, rnd):
    """The order of round `rnd` (0-based): `items` rotated to start at item rnd mod len."""
    if not items:
        return []
    k = rnd % len(items)
    return list(items[k:]) + list(items[:k])


def is_round(rec):
    """True for one round's raw record (its "round" is a number, 1..N)."""
    r = rec.get("round")
    return isinstance(r, int) and not isinstance(r, bool)


def split(records):
    """(records without per-round ones: medians and everything measured once, per-round ones)."""
    return ([r for r in records if not is_round(r)], [r for r in records if is_round(r)])


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def median_record(recs, n_rounds):
    """One record standing for `recs` (one record per round, ok or not): every numeric figure
    is the median of that figure over the ok rounds (each figure its own median, so two
    figures may come from different rounds); other fields come from the first ok round.
    None when no round was ok."""
    ok = [r for r in recs if r.get("status") == "ok"]
    if not ok:
        return None
    keys = []
    for r in ok:
        keys += [k for k in r if k not in keys and k not in ("round", "status", "kind")]
    out = {}
    for k in keys:
        vals = [r[k] for r in ok if r.get(k) is not None]
        if vals and all(_number(v) for v in vals):
            m = statistics.median(vals)
            out[k] = int(m) if all(isinstance(v, int) for v in vals) and m == int(m) \
                else round(m, 4)
        else:
            out[k] = next((r[k] for r in ok if k in r), None)
    out["rounds_ok"] = len(ok)
    out["rounds"] = n_rounds
    return out


def values(rounds, key, **match):
    """{round: value of `key`, or None for a failed round} of the per-round records that
    match every field in `match`."""
    out = {}
    for r in rounds:
        if all(r.get(k) == v for k, v in match.items()):
            out[r["round"]] = r.get(key) if r.get("status") == "ok" else None
    return out
