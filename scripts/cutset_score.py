#!/usr/bin/env python3
"""Scores cut detection on the labelled cut set (fixtures/cutset/labels.txt).

    cutset_score.py LABELS RESULTS

RESULTS holds one line per file, `NAME: FROM/TO ... | T T ...`: each change a detector
claims, as the stretch from where it says the new shot begins to the frame it takes (scenedex:
a scene sample's span start and time; PySceneDetect: a scene's start, twice), then the times
of the frames it samples. Prints recall, precision and coverage over the set:
- recall: labelled changes matched by a claim: one beginning within 2 frames (0.081 s) of a
  hard cut, or one whose stretch overlaps a fade or dissolve (with the same slack);
- precision: claimed starts that match a labelled change;
- coverage: labelled shots (the stretches between changes) with a sampled frame inside.
"""
import sys

SLACK = 0.081


def parse_labels(path):
    labels = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, rest = line.split(":", 1)
        changes = []
        for item in rest.split():
            a, _, b = item.partition("-")
            changes.append((float(a), float(b or a)))
        labels[name.strip()] = changes
    return labels


def parse_results(path):
    results = {}
    for line in open(path):
        if ":" not in line:
            continue
        name, rest = line.split(":", 1)
        starts, _, samples = rest.partition("|")
        claims = [tuple(float(x) for x in c.split("/")) for c in starts.split()]
        results[name.strip()] = (claims, [float(t) for t in samples.split()])
    return results


def matches(change, claim):
    a, b = change
    start, taken = claim
    if a == b:
        return abs(start - a) <= SLACK
    return start <= b + SLACK and taken >= a - SLACK


def score(labels, results):
    found = claimed = right = shots = covered = 0
    missed = []
    for name, changes in labels.items():
        starts, samples = results.get(name, ([], []))
        for c in changes:
            if any(matches(c, t) for t in starts):
                found += 1
            else:
                missed.append(f"{name}@{c[0]:.2f}")
        claimed += len(starts)
        right += sum(1 for t in starts if any(matches(c, t) for c in changes))
        bounds = [0.0] + [b for _, b in changes]
        ends = [a for a, _ in changes] + [float("inf")]
        for lo, hi in zip(bounds, ends):
            shots += 1
            covered += any(lo - SLACK <= t < hi + SLACK for t in samples)
    total = sum(len(c) for c in labels.values())
    return found, total, right, claimed, covered, shots, missed


def main():
    labels = parse_labels(sys.argv[1])
    found, total, right, claimed, covered, shots, missed = score(labels, parse_results(sys.argv[2]))
    print(f"recall {found}/{total}  precision {right}/{claimed}  coverage {covered}/{shots}"
          + (f"  missed: {' '.join(missed)}" if missed else ""))


if __name__ == "__main__":
    main()
