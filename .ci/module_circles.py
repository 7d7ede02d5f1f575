#!/usr/bin/env python3
"""Module circles in sdk/: parses `use crate::…`, `use super::…`, `use self::…` (and inline
`crate::a::b` / `super::a` paths) per file, resolves names re-exported by a parent (`pub use`)
to the file that defines them, builds the file graph and prints its strongly connected parts.
Usage: cycles.py [git-ref]   (no ref: the working tree)"""
import re, subprocess, sys, glob, os
ref = sys.argv[1] if len(sys.argv) > 1 else None
root = 'sdk'
def files():
    if ref:
        out = subprocess.run(['git','ls-tree','-r','--name-only',ref,root],capture_output=True,text=True).stdout.split()
    else:
        out = glob.glob(root+'/**/*.rs', recursive=True)
    return [f for f in out if f.count('/') <= 2 and f.endswith('.rs')]
def read(f):
    if ref: return subprocess.run(['git','show',f'{ref}:{f}'],capture_output=True,text=True).stdout
    return open(f).read()
def modpath(f):
    p = f[len(root)+1:-3].split('/')
    if p[-1] in ('mod','lib'): p = p[:-1]
    return tuple(p)
FILES = files(); MOD = {modpath(f): f for f in FILES}
SRC = {}
for f in FILES:
    s = read(f)
    s = s.split('\n#[cfg(test)]')[0]           # unit tests are not part of the layering
    s = re.sub(r'//[^\n]*', '', s)
    SRC[f] = s
def expand(tree):
    """'a::{b, c::{d, e}}' -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = re.sub(r'\s+', '', tree)
    def split_top(s):
        parts, depth, cur = [], 0, ''
        for ch in s:
            if ch == '{': depth += 1
            if ch == '}': depth -= 1
            if ch == ',' and depth == 0: parts.append(cur); cur = ''
            else: cur += ch
        if cur: parts.append(cur)
        return parts
    i = tree.find('{')
    if i < 0: return [re.sub(r'\bas\w+$', '', tree)]
    prefix, inner = tree[:i], tree[i+1:tree.rfind('}')]
    out = []
    for p in split_top(inner):
        out += [prefix + x for x in expand(p)]
    return out
def uses(f):
    """(is_pub, absolute path tuple)"""
    here = modpath(f); res = []
    for m in re.finditer(r'(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);', SRC[f]):
        for p in expand(m.group(2)):
            p = p.split('as')[0] if '::' not in p.split('as')[-1] and ' as ' in m.group(2) else p
            segs = [x for x in p.split('::') if x]
            ab = absolute(here, segs)
            if ab: res.append((bool(m.group(1)), ab))
    body = re.sub(r'(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;', '', SRC[f])
    for m in re.finditer(r'\b((?:crate|super)(?:::\w+)+)', body):
        ab = absolute(here, m.group(1).split('::'))
        if ab: res.append((False, ab))
    return res
def absolute(here, segs):
    if not segs: return None
    is_modfile = MOD.get(here, '').endswith(('mod.rs', 'lib.rs'))
    base = list(here)
    if segs[0] == 'crate': base, segs = [], segs[1:]
    elif segs[0] == 'self': segs = segs[1:]
    elif segs[0] == 'super':
        # a file's `super` is its parent module
        while segs and segs[0] == 'super': base = base[:-1]; segs = segs[1:]
    elif tuple(here + (segs[0],)) in MOD: pass   # `use child::x` in a mod.rs
    else: return None
    return tuple(base) + tuple(s for s in segs if s != '*' and s != 'self')
def reexports(mod):
    """name -> absolute path, from `pub use` lines in that module's file"""
    f = MOD.get(mod); out = {}
    if not f: return out
    for is_pub, p in uses(f):
        if is_pub and p: out[p[-1]] = p
    return out
def target(p, depth=0):
    """the file that defines path p"""
    k = len(p)
    while k > 0 and p[:k] not in MOD: k -= 1
    mod = p[:k]
    if k < len(p) and depth < 8:
        r = reexports(mod).get(p[k])
        if r and r != p and r[:len(mod)+1] != p[:len(mod)+1] or (r and len(r) > k+1 and r[:k] == mod and r[k] != p[k]):
            return target(r + p[k+1:], depth+1)
        if r and r != p and r[:k] == mod and len(r) > k+1:
            return target(r, depth+1)
    return MOD.get(mod)
G = {f: set() for f in FILES}
for f in FILES:
    for is_pub, p in uses(f):
        if is_pub: continue          # a re-export is a door, not a dependency
        t = target(p)
        if t and t != f: G[f].add(t)
# Tarjan
idx, low, st, on, sccs, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in G[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(sorted(c))
for v in sorted(G):
    if v not in idx: sc(v)
print(f'{len(FILES)} files, {sum(len(v) for v in G.values())} edges, {len(sccs)} circle(s)')
for c in sccs:
    print('circle:', ' '.join(c))
    for a in c:
        print('   ', a, '->', ', '.join(sorted(b for b in G[a] if b in c)))
# the shortest circle through each file of a circle; WHY="coder/a.rs>coder/b.rs" lists the paths behind an edge
from collections import deque
def shortest(v):
    prev = {v: None}; q = deque([v])
    while q:
        a = q.popleft()
        for b in sorted(G[a]):
            if b == v:
                path = [a]
                while prev[path[-1]] is not None: path.append(prev[path[-1]])
                return list(reversed(path)) + [v]
            if b not in prev: prev[b] = a; q.append(b)
seen = set()
for c in sccs:
    for v in c:
        p = shortest(v)
        key = frozenset(p)
        if p and key not in seen:
            seen.add(key); print('  shortest via', v.replace('sdk/',''), ':', ' -> '.join(x.replace('sdk/','') for x in p))
if os.environ.get('WHY'):
    for pair in os.environ['WHY'].split(','):
        a, b = ['sdk/'+x for x in pair.split('>')]
        print(pair, sorted({'::'.join(p) for ip, p in uses(a) if not ip and target(p) == b}))
sys.exit(1 if sccs else 0)
