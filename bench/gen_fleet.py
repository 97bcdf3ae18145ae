#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Generate a valid, realistic enterprise fleet repository (docs/DESIGN.md §2).

    bench/gen_fleet.py OUTDIR [--nodes 1000] [--devices 100000]
                              [--devices-per-user 5] [--relays 3] [--seed 1]
                              [--git] [--git-loose]
                              [--sites N] [--control-base PORT]

--sites N replaces the one fleet-wide access rule with a rule per site of N
consecutive nodes (users spread round-robin over the sites), so a device is
allowed on a handful of nodes, as in a company with offices; --control-base
points every node's `control` at 127.0.0.1:PORT+i (the control-plane scale
benchmark runs 1,000 buoys on loopback).

Writes OUTDIR/fleet.yaml, OUTDIR/nodes/<name>.yaml, OUTDIR/relays/<name>.yaml
and OUTDIR/users/<name>.yaml.  The output is a pure function of the options:
the same seed gives byte-identical files (and, with --git, the same commit id).

The fleet is meant to be *valid*: every name matches its pattern, every access
selector resolves to at least one usable node of the needed role, entry-pool
addresses are unique across the fleet, device public keys are unique, pinned
device addresses are unique, inside network.tunnel_pool and never the
network, gateway (.1) or broadcast address, and the cascade inner MTU stays
above 1280 on every node.

YAML is written with plain string formatting (no emitter) so that the default
size (1,000 nodes, 100,000 devices, ~20,000 files) takes a few seconds.
"""

import argparse
import base64
import ipaddress
import os
import random
import subprocess
import sys

FLEET_ID = "corp.example.com"
USER_DOMAIN = "corp.example.com"
NODE_DOMAIN = "nodes.corp.example.com"

REGIONS = [
    "eu-ams", "eu-fra", "eu-lon", "eu-par", "eu-waw", "eu-sto", "eu-mad",
    "eu-mil", "us-nyc", "us-sfo", "us-chi", "us-dal", "us-sea", "ca-tor",
    "sa-sao", "ap-sin", "ap-tok", "ap-syd", "ap-bom", "af-jnb",
]

# (display, slug) — the display form is free UTF-8, the slug goes into names.
FIRST = [
    ("Anna", "anna"), ("Ben", "ben"), ("Chloé", "chloe"), ("David", "david"),
    ("Elif", "elif"), ("Fatima", "fatima"), ("George", "george"),
    ("Hana", "hana"), ("Ivan", "ivan"), ("José", "jose"), ("Kai", "kai"),
    ("Lena", "lena"), ("Łukasz", "lukasz"), ("Maria", "maria"),
    ("Noah", "noah"), ("Olivia", "olivia"), ("Priya", "priya"),
    ("Quentin", "quentin"), ("Rafael", "rafael"), ("Søren", "soren"),
    ("Tomás", "tomas"), ("Uma", "uma"), ("Viktor", "viktor"),
    ("Wei", "wei"), ("Ximena", "ximena"), ("Yuki", "yuki"), ("Zoë", "zoe"),
    ("Amir", "amir"), ("Bianca", "bianca"), ("Carlos", "carlos"),
    ("Dmitri", "dmitri"), ("Emma", "emma"), ("Farid", "farid"),
    ("Greta", "greta"), ("Hiro", "hiro"), ("Ingrid", "ingrid"),
    ("Jonas", "jonas"), ("Kateřina", "katerina"), ("Liam", "liam"),
    ("Mei", "mei"),
]
LAST = [
    ("Smith", "smith"), ("Müller", "mueller"), ("García", "garcia"),
    ("Nguyễn", "nguyen"), ("Kowalski", "kowalski"), ("O'Brien", "obrien"),
    ("Rossi", "rossi"), ("Dubois", "dubois"), ("Jansen", "jansen"),
    ("Andersson", "andersson"), ("Novák", "novak"), ("Yılmaz", "yilmaz"),
    ("Tanaka", "tanaka"), ("Kim", "kim"), ("Singh", "singh"),
    ("Silva", "silva"), ("Ivanova", "ivanova"), ("Cohen", "cohen"),
    ("Okafor", "okafor"), ("Haddad", "haddad"), ("Larsen", "larsen"),
    ("Fischer", "fischer"), ("Moreau", "moreau"), ("Costa", "costa"),
    ("Papadopoulos", "papadopoulos"), ("Horváth", "horvath"),
    ("Chen", "chen"), ("Wang", "wang"), ("Patel", "patel"),
    ("Johnson", "johnson"), ("Brown", "brown"), ("Lopez", "lopez"),
    ("Schmidt", "schmidt"), ("Virtanen", "virtanen"), ("Nielsen", "nielsen"),
    ("Popescu", "popescu"), ("Santos", "santos"), ("Mendoza", "mendoza"),
    ("Kovač", "kovac"), ("Berg", "berg"),
]
DEVICE_NAMES = [
    "laptop", "phone", "tablet", "desktop", "workstation", "home-pc",
    "macbook", "iphone", "pixel", "ipad", "thinkpad", "travel-laptop",
    "backup-phone", "lab-box", "kiosk",
]
AWG_PORTS = [51820, 51820, 51820, 51821, 4500, 8443, 1194, 53]


def yq(s):
    """A YAML double-quoted scalar."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pool_for(devices):
    """Smallest IPv4 pool (at least /16) with room for twice the devices."""
    need = max(2 * devices + 3, 1 << 16)
    host_bits = max(16, (need - 1).bit_length())
    if host_bits > 22:
        host_bits = 24
        base = ipaddress.IPv4Address("10.0.0.0")
    else:
        base = ipaddress.IPv4Address("10.64.0.0")
    prefix = 32 - host_bits
    net = ipaddress.IPv4Network((int(base) & ~((1 << host_bits) - 1) & 0xFFFFFFFF,
                                 prefix))
    if 2 * devices + 3 > net.num_addresses:
        sys.exit("gen_fleet: too many devices for an IPv4 tunnel pool")
    return net


def site_rules(sites):
    """access: rules, one per site: (name, users, entries, exits)."""
    out = []
    for name, users, entries, exits in sites:
        out.append(f"  - name: {name}\n"
                   f"    users: [{', '.join(users)}]\n"
                   f"    entry: [{', '.join(entries)}]\n"
                   f"    exit: [{', '.join(exits)}]\n"
                   f"    hops: 2\n")
    return "".join(out)


def fleet_yaml(regions, pool, sites=None):
    sel = ", ".join(yq("region:" + r) for r in regions)
    access = f"""\
  - name: everyone
    users: ["*"]
    entry: [{sel}]
    exit: [{sel}]
    hops: 2
""" if sites is None else site_rules(sites)
    return f"""\
# Generated by bench/gen_fleet.py — a synthetic enterprise fleet.
version: 1
fleet:
  id: {FLEET_ID}
  name: "Example Corp VPN"
  preset: enterprise
network:
  tunnel_pool: {pool}
  tunnel_pool6: fd7a:5048:4152::/64
  dns: [1.1.1.1, 9.9.9.9]
  mtu: 1500
protocols:
  amneziawg: true
  xray: true
amneziawg:
  port: 51820
  jc: 4
  jmin: 40
  jmax: 70
  s1: 52
  s2: 77
  s3: 31
  s4: 16
  h1: "1000000000-1099999999"
  h2: "1500000000-1599999999"
  h3: 3288052141
  h4: 2528465083
xray:
  port: 443
  decoy: www.example.org:443
  server_names: [www.example.org, cdn.example.org]
  short_ids: ["", 6ba85179e30d4fc2]
  flow: xtls-rprx-vision
entry_pool:
  rotate: 10m
access:
{access}retention:
  audit: 400d
  metrics: 90d
reconcile:
  sweep: 30s
review:
  required: true
relay:
  embedded: true
account_sync: false
"""


def gen_nodes(rng, n_nodes, regions, control_base=None, info=None):
    """Yield (name, text). Every region gets an entry+exit, non-idle node first."""
    per_region = {r: 0 for r in regions}
    width = max(3, len(str(n_nodes // len(regions) + 1)))
    for i in range(n_nodes):
        region = regions[i % len(regions)]
        k = per_region[region] = per_region[region] + 1
        name = f"{region}-{k:0{width}d}"
        host = f"{name}.{NODE_DOMAIN}"
        first = k == 1
        x = rng.random()
        if first or x < 0.5:
            roles = ["entry", "exit"]
        elif x < 0.8:
            roles = ["entry"]
        else:
            roles = ["exit"]
        lines = [f"region: {region}"]
        y = rng.random()
        if y < 0.6:
            lines.append(f"ssh: deploy@{host}")
        elif y < 0.9:
            lines.append(f"ssh: deploy@{host}:2222")
        else:
            lines.append(f"ssh: {host}")
        if rng.random() < 0.2 and control_base is None:
            lines.append(f"control: {host}:8444")
        if control_base is not None:
            lines.append(f"control: 127.0.0.1:{control_base + i}")
        lines.append("roles: [" + ", ".join(roles) + "]")
        if "entry" in roles:
            # Each node owns a /24 of 100.64.0.0/10: unique across the fleet.
            if i >= 1 << 14:
                sys.exit("gen_fleet: at most 16384 nodes")
            b, c = 64 + (i >> 8), i & 0xFF
            hosts = sorted(rng.sample(range(2, 255), rng.randint(1, 4)))
            lines.append("entry_pool:")
            for h in hosts:
                if rng.random() < 0.1:
                    lines.append(f"  - 100.{b}.{c}.{h}:{rng.choice((443, 8443, 4443))}")
                else:
                    lines.append(f"  - 100.{b}.{c}.{h}")
        if rng.random() < 0.1:
            lines.append("mtu: 1420")
        idle = not first and rng.random() < 0.02
        if idle:
            lines.append("idle: true")
        if info is not None:
            info.append((name, roles, idle))
        lines.append("amneziawg:")
        lines.append(f"  port: {rng.choice(AWG_PORTS)}")
        if rng.random() < 0.05:
            jmin = rng.randint(20, 60)
            lines.append(f"  jc: {rng.randint(3, 10)}")
            lines.append(f"  jmin: {jmin}")
            lines.append(f"  jmax: {jmin + rng.randint(10, 200)}")
        if rng.random() < 0.03:
            lines.append("xray:")
            lines.append(f"  server_names: [{region}.cdn.example.org]")
        yield name, "\n".join(lines) + "\n"


def gen_relays(n_relays, regions):
    for i in range(n_relays):
        region = regions[(i * 7) % len(regions)]
        name = f"relay-{region}"
        if i >= len(regions):
            name += f"-{i // len(regions) + 1}"
        host = f"{name}.relays.{FLEET_ID}"
        yield name, (f"address: {host}:443\n"
                     f"ssh: deploy@{host}\n"
                     f"region: {region}\n")


def make_sites(info, users, size):
    """Group consecutive nodes into sites with at least one usable entry and exit."""
    sites, cur = [], []
    for name, roles, idle in info:
        cur.append((name, roles, idle))
        ent = [n for n, r, i in cur if "entry" in r and not i]
        ext = [n for n, r, i in cur if "exit" in r and not i]
        if len(cur) >= size and ent and ext:
            sites.append((ent, ext))
            cur = []
    if cur:
        ent = [n for n, r, i in cur if "entry" in r and not i]
        ext = [n for n, r, i in cur if "exit" in r and not i]
        if ent and ext:
            sites.append((ent, ext))
        elif sites:
            sites[-1] = (sites[-1][0] + ent, sites[-1][1] + ext)
    rules = []
    for k, (ent, ext) in enumerate(sites):
        members = users[k::len(sites)] or [users[0]]
        rules.append((f"site-{k}", members, ent, ext))
    return rules


def gen_users(rng, n_devices, per_user, pool, names=None):
    n_users = -(-n_devices // per_user)
    # ~5% of devices get a pinned address: unique, never offset 0 (network),
    # 1 (gateway) or the broadcast address.
    n_pinned = n_devices // 20
    pinned_idx = set(rng.sample(range(n_devices), n_pinned))
    base = int(pool.network_address)
    addrs = iter(rng.sample(range(2, pool.num_addresses - 1), n_pinned))
    seen_keys = set()
    used = set()
    dev = 0
    randbytes = rng.randbytes
    b64 = base64.b64encode
    for u in range(n_users):
        fd, fs = rng.choice(FIRST)
        ld, ls = rng.choice(LAST)
        slug = f"{fs}.{ls}"
        name, k = slug, 1
        while name in used:
            k += 1
            name = f"{slug}{k}"
        used.add(name)
        if names is not None:
            names.append(name)
        lines = [f"email: {name}@{USER_DOMAIN}"]
        if u % 50 == 49:
            lines.append("role: admin")
        lines.append(f"full_name: {yq(fd + ' ' + ld)}")
        if rng.random() < 0.01:
            lines.append("disabled: true")
        n = min(per_user, n_devices - dev)
        if n <= len(DEVICE_NAMES):
            dnames = rng.sample(DEVICE_NAMES, n)
        else:
            dnames = DEVICE_NAMES + [f"device-{j}" for j in range(n - len(DEVICE_NAMES))]
        lines.append("devices:")
        for dn in dnames:
            while True:
                key = b64(randbytes(32)).decode()
                if key not in seen_keys:
                    seen_keys.add(key)
                    break
            lines.append(f"  - name: {dn}")
            lines.append(f"    public_key: {key}")
            if dev in pinned_idx:
                lines.append(f"    address: {ipaddress.IPv4Address(base + next(addrs))}")
            dev += 1
        yield name, "\n".join(lines) + "\n"


def write_all(outdir, kind, records):
    d = os.path.join(outdir, kind)
    os.makedirs(d, exist_ok=True)
    n = size = 0
    for name, text in records:
        data = text.encode()
        with open(os.path.join(d, name + ".yaml"), "wb") as f:
            f.write(data)
        n += 1
        size += len(data)
    return n, size


def git_commit(outdir, pack):
    env = dict(os.environ)
    env.update({
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
    })

    def git(*args):
        subprocess.run(["git", "-C", outdir, *args], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "commit.gpgsign=false", "commit", "-q", "-m", "synthetic fleet")
    if pack:
        # Like a clone: one pack, no loose objects.
        git("repack", "-a", "-d", "-q")
        git("prune-packed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--devices-per-user", type=int, default=5)
    ap.add_argument("--relays", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--git", action="store_true",
                    help="git init + commit the output (packed, like a clone)")
    ap.add_argument("--git-loose", action="store_true",
                    help="with --git: keep loose objects instead of repacking")
    ap.add_argument("--sites", type=int, default=0,
                    help="one access rule per site of N consecutive nodes")
    ap.add_argument("--control-base", type=int, default=None,
                    help="node i's control address is 127.0.0.1:PORT+i")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    if a.nodes < 2 or a.devices < 1 or a.devices_per_user < 1 or a.relays < 0:
        ap.error("need --nodes >= 2, --devices >= 1, --devices-per-user >= 1")
    if os.path.exists(a.outdir) and os.listdir(a.outdir):
        ap.error(f"{a.outdir}: exists and is not empty")
    os.makedirs(a.outdir, exist_ok=True)

    rng = random.Random(a.seed)
    regions = REGIONS[:max(1, min(len(REGIONS), a.nodes // 2))]
    pool = pool_for(a.devices)

    files = 1
    size = 0
    info, names = [], []
    for kind, recs in (("nodes", gen_nodes(rng, a.nodes, regions, a.control_base, info)),
                       ("relays", gen_relays(a.relays, regions)),
                       ("users", gen_users(rng, a.devices, a.devices_per_user, pool,
                                           names))):
        if kind == "relays" and a.relays == 0:
            continue
        n, s = write_all(a.outdir, kind, recs)
        files += n
        size += s
    sites = make_sites(info, names, a.sites) if a.sites > 0 else None
    text = fleet_yaml(regions, pool, sites).encode()
    with open(os.path.join(a.outdir, "fleet.yaml"), "wb") as f:
        f.write(text)
    size += len(text)
    if a.git:
        git_commit(a.outdir, pack=not a.git_loose)
    if not a.quiet:
        print(f"gen_fleet: {a.outdir}: {files} files, {size} bytes "
              f"({a.nodes} nodes, {a.relays} relays, "
              f"{-(-a.devices // a.devices_per_user)} users, {a.devices} devices, "
              f"pool {pool}, seed {a.seed})")


if __name__ == "__main__":
    main()
