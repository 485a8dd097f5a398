"""Merge a partial `mixgemm tune` output into a profile: entries of the same (key, N, K, M bucket,
group size) are replaced, new ones added, the kernel list updated.
    python3 tools/merge_profile.py profiles/nvidia_h100_80gb_hbm3.json partial.json [-o merged.json]"""
import argparse
import json
from pathlib import Path


def entry_key(e: dict) -> tuple:
    return (e["key"], e["n"], e["k"], e["m"], e["group_size"])


def merge(base: dict, part: dict) -> dict:
    if (base.get("version"), base.get("gpu"), base.get("sms")) != (part.get("version"), part.get("gpu"), part.get("sms")):
        raise SystemExit(f"profiles differ in version/gpu/sms: {base.get('gpu')} vs {part.get('gpu')}")
    entries = {entry_key(e): e for e in base["entries"]}
    replaced = sum(entry_key(e) in entries for e in part["entries"])
    entries.update({entry_key(e): e for e in part["entries"]})
    out = dict(base)
    out["entries"] = sorted(entries.values(), key=entry_key)
    out["kernels"] = sorted({n for e in out["entries"] for n in e["times_us"]})
    print(f"{len(part['entries'])} entries merged ({replaced} replaced), {len(out['entries'])} in all, "
          f"{len(out['kernels'])} kernels")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("base")
    ap.add_argument("partial")
    ap.add_argument("-o", "--out", default=None, help="default: overwrite base")
    a = ap.parse_args()
    doc = merge(json.loads(Path(a.base).read_text()), json.loads(Path(a.partial).read_text()))
    Path(a.out or a.base).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
