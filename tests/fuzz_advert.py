#!/usr/bin/env python3
"""Fuzz advert.decode: python3 tests/fuzz_advert.py --runs N [--seed S]

Inputs: random bytes and mutations of valid adverts (bit flips, byte changes, truncation,
length-field corruption, insertions/deletions, splices of two adverts, extra/repeated
fields). Checks: decode raises nothing but AdvertError (with a one-line reason), and every
accepted advert re-encodes to bytes that decode to the same Advert. Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from bmx7wg.advert import (AdvertError, HEADER_SIZE, MAGIC, MAX_SIZE, decode,  # noqa: E402
                           encode)
from bmx7wg.model import Advert  # noqa: E402


@dataclass
class Stats:
    runs: int = 0
    accepted: int = 0
    rejected: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


def random_network(rng: random.Random, host: bool) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    v6 = rng.random() < 0.6
    bits = 128 if v6 else 32
    lengths = [p for p in (0, 1, 7, 8, 9, 16, 20, 24, 31, 32, 48, 56, 64, 127, 128) if p <= bits]
    plen = bits if host else rng.choice(lengths)
    addr = rng.getrandbits(bits) >> (bits - plen) << (bits - plen) if plen else 0
    cls = ipaddress.IPv6Network if v6 else ipaddress.IPv4Network
    return cls((addr, plen))


def random_advert(rng: random.Random) -> Advert:
    """A valid advert that fits MAX_SIZE."""
    while True:
        addrs = list(dict.fromkeys(random_network(rng, True) for _ in range(rng.randint(0, 3))))
        n_nets = rng.choice([0, 1, 2, 5, 20, 40])
        nets = list(dict.fromkeys(random_network(rng, False) for _ in range(n_nets)))
        adv = Advert(public_key=base64.b64encode(rng.randbytes(32)).decode(),
                     port=rng.randint(1, 65535), addresses=tuple(addrs), networks=tuple(nets))
        try:
            encode(adv)
            return adv
        except AdvertError:
            continue  # too many networks for 300 bytes: draw again


def field_offsets(data: bytes) -> list[int]:
    """Offsets of field headers in a well-formed encoding."""
    out, pos = [], HEADER_SIZE
    while pos + 1 < len(data):
        out.append(pos)
        pos += 2 + data[pos + 1]
    return out


def mutate(rng: random.Random, good: bytes, other: bytes) -> bytes:
    data = bytearray(good)
    kind = rng.randrange(10)
    if kind == 0:                                   # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == 1:                                 # random byte values
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 2:                                 # truncation
        del data[rng.randrange(len(data)):]
    elif kind == 3:                                 # length-field corruption
        offs = field_offsets(good)
        if offs:
            data[rng.choice(offs) + 1] = rng.choice([0, 1, 2, 31, 33, 255, rng.randrange(256)])
    elif kind == 4:                                 # splice two adverts
        data = data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    elif kind == 5:                                 # insert random bytes
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.randbytes(rng.randint(1, 8))
    elif kind == 6:                                 # delete a range
        i = rng.randrange(len(data))
        del data[i:i + rng.randint(1, 8)]
    elif kind == 7:                                 # append a field (unknown or known)
        ftype = rng.choice([1, 2, 3, 4, 5, 0x7F, 0xFF, 0])
        value = rng.randbytes(rng.choice([0, 1, 2, 5, 17, 32]))
        data += bytes([ftype, len(value)]) + value
    elif kind == 8:                                 # repeat an existing field
        offs = field_offsets(good)
        if offs:
            o = rng.choice(offs)
            data += good[o:o + 2 + good[o + 1]]
    else:                                           # version byte / magic
        data[rng.randrange(HEADER_SIZE)] = rng.randrange(256)
    return bytes(data)


def random_input(rng: random.Random, corpus: list[bytes]) -> bytes:
    r = rng.random()
    if r < 0.1:
        return rng.randbytes(rng.randint(0, MAX_SIZE + 20))
    if r < 0.2:                                     # random bytes behind a valid header
        return MAGIC + bytes([0x10]) + rng.randbytes(rng.randint(0, 60))
    good, other = rng.choice(corpus), rng.choice(corpus)
    data = mutate(rng, good, other)
    if rng.random() < 0.3:                          # stack mutations
        data = mutate(rng, data if len(data) > HEADER_SIZE else good, other)
    return data


def check(data: bytes, stats: Stats) -> None:
    try:
        adv = decode(data)
    except AdvertError as e:
        stats.rejected += 1
        reason = e.reason
        if not isinstance(reason, str) or not reason or "\n" in reason or str(e) != reason:
            stats.failures.append(f"bad reason {reason!r} for {data.hex()}")
        key = " ".join(str(reason).split()[:2])
        stats.reasons[key] = stats.reasons.get(key, 0) + 1
        return
    except Exception:
        stats.failures.append(f"decode({data.hex()}) raised:\n{traceback.format_exc()}")
        return
    stats.accepted += 1
    try:
        again = encode(adv)
        if decode(again) != adv:
            stats.failures.append(f"re-encoding changed the advert: {data.hex()}")
        if len(again) > len(data):
            stats.failures.append(f"re-encoding grew {len(data)} -> {len(again)}: {data.hex()}")
    except Exception:
        stats.failures.append(
            f"accepted {data.hex()} but re-encoding failed:\n{traceback.format_exc()}")


def run(runs: int, seed: int | None = None, max_failures: int = 10) -> Stats:
    rng = random.Random(seed)
    corpus = [encode(random_advert(rng)) for _ in range(64)]
    stats = Stats()
    start = time.perf_counter()
    for _ in range(runs):
        check(random_input(rng, corpus), stats)
        stats.runs += 1
        if len(stats.failures) >= max_failures:
            break
    stats.seconds = time.perf_counter() - start
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    stats = run(args.runs, seed)
    print(f"seed {seed}: {stats.runs} runs in {stats.seconds:.2f} s ({stats.rate:,.0f} runs/s), "
          f"accepted {stats.accepted}, rejected {stats.rejected}")
    for reason, n in sorted(stats.reasons.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {n:7d}  {reason} ...")
    for failure in stats.failures:
        print("FAIL:", failure, file=sys.stderr)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
