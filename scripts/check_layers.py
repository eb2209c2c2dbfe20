#!/usr/bin/env python3
"""Fails when a module of src/ imports a layer above its own, or when modules
import each other in a circle. ARCHITECTURE.md draws the same picture; this
keeps the picture true.

A reference is any `crate::<module>` path (in a `use` line or inline) and any
`super::<sibling>` path, outside comments. Usage: scripts/check_layers.py [src]
"""
import re
import sys
from pathlib import Path

# Layers from the bottom up. A module may use modules of lower layers, and of
# its own layer unless the pair is listed in SEPARATE; never a higher one.
LAYERS = [
    ("domain", ["domain"]),
    ("base", ["config", "metrics", "compress", "tls", "datadir", "bundle"]),
    ("backends", ["store", "upstream", "cluster"]),
    ("cache", ["cache"]),
    ("services", ["manage", "auth", "session", "origin", "visibility", "web"]),
    ("routes", ["registry", "api"]),
    ("server", ["server"]),
    ("entry", ["cli", "client", "proptests"]),
]
# Same layer, but neither may reach into the other.
SEPARATE = {("registry", "api"), ("api", "registry")}
# Layers a module must reach only through the one between: api/ goes
# through manage/ (the query/command layer), the routes never see the store.
FORBIDDEN = {"api": {"cache", "store", "upstream"}, "registry": {"store"}}

RANK = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
LAYER_NAME = {m: name for name, mods in LAYERS for m in mods}
CRATE_REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
SUPER_REF = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+super::\{([^}]*)\}", re.S)


def code_lines(path):
    """The file's lines with comments removed (doc comments name modules)."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        yield number, line.split("//", 1)[0]


def module_of(src, path):
    """`cache/download.rs` -> ('cache', 'cache::download')."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts[0], "::".join(parts)


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    bin_only = {"main", "cli_manage"}  # the binary's own crate: not layered
    errors, edges = [], {}
    files = sorted(p for p in src.rglob("*.rs") if p.name != "lib.rs")
    for path in files:
        top, module = module_of(src, path)
        if top in bin_only:
            continue
        if top not in RANK:
            errors.append(f"{path}: module `{top}` has no layer in scripts/check_layers.py")
            continue
        parent = module.rsplit("::", 1)[0] if "::" in module else None
        is_dir_module = path.name == "mod.rs"
        text_lines = list(code_lines(path))
        for number, line in text_lines:
            for target in CRATE_REF.findall(line):
                if target == top:
                    continue
                if target not in RANK:
                    continue  # crate-root items (none today) or macros
                why = None
                if RANK[target] > RANK[top]:
                    why = (f"layer `{LAYER_NAME[top]}` must not use the higher "
                           f"layer `{LAYER_NAME[target]}`")
                elif (top, target) in SEPARATE:
                    why = f"`{top}` and `{target}` are kept apart"
                elif target in FORBIDDEN.get(top, ()):
                    why = f"`{top}` must not use `{target}` (it goes through the layer between)"
                if why:
                    errors.append(f"{path}:{number}: uses crate::{target}: {why}")
        # Sibling references inside one module (for the cycle check): a file
        # using `super::x` where x is a sibling file.
        if parent is None or is_dir_module:
            continue
        siblings = set()
        joined = "\n".join(l for _, l in text_lines)
        for group in USE_GROUP.findall(joined):
            siblings.update(re.findall(r"\b([a-z_][a-z0-9_]*)\b", group))
        siblings.update(SUPER_REF.findall(joined))
        for name in siblings:
            sibling_file = path.parent / f"{name}.rs"
            sibling_dir = path.parent / name / "mod.rs"
            if sibling_file.exists() or sibling_dir.exists():
                edges.setdefault(module, set()).add(f"{parent}::{name}")
    # Files of one module naming each other through crate:: paths count too.
    for path in files:
        top, module = module_of(src, path)
        if top in bin_only or top not in RANK:
            continue
        for _, line in code_lines(path):
            for full in re.findall(r"\bcrate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)+)", line):
                parts = full.split("::")
                for n in range(len(parts), 1, -1):
                    cand = "::".join(parts[:n])
                    rel = Path(src, *parts[:n])
                    if (rel.with_suffix(".rs").exists() or (rel / "mod.rs").exists()):
                        if cand != module and not module.startswith(cand + "::") \
                                and not cand.startswith(module + "::"):
                            edges.setdefault(module, set()).add(cand)
                        break
    errors.extend(find_cycles(edges))
    if errors:
        print("check_layers: the code does not keep the layering of ARCHITECTURE.md:")
        for e in errors:
            print("  " + e)
        return 1
    print(f"check_layers: {len(files)} files keep the layering (no upward use, no cycle)")
    return 0


def find_cycles(edges):
    """Import cycles among the files of the crate (Tarjan's SCCs)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append("import cycle: " + " <-> ".join(sorted(group)))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
