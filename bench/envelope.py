"""Benchmark the protocol's hot paths: sealing and opening a batch, and the merge.

Usage::

    .venv/bin/python bench/envelope.py [--ops 500] [--merge-ops 10000] [--rounds 15]

It builds a 500-operation batch of registration-like operations (about 1 KB each: names drawn
from real Dari/Pashto name lists with spelling variants, random ids, document and phone numbers,
so the JSON is not trivially compressible), seals it with each suite (suite 1, X25519 and
ChaCha20-Poly1305, is the headline figure) and opens it again. Then it applies 10,000 registry
operations (creates, concurrent edits from several devices, set changes, deletes and restores)
with ``apply_registry_op``, the function the server calls once per operation. Figures are
medians over the rounds. The last line is one JSON object with ``seal_ms``, ``open_ms`` and
``merge_ops_per_s`` (and the breakdown), for scripts.

Goals on the project's 2-core machine: seal + open under 10 ms; merge at least 100,000 ops/s.
Figures are printed, never asserted. Seal and open include the batch's JSON (dump, parse and
validation), because that is what a tablet and a server pay; the breakdown shows where the time
goes, and ``seal_bytes_ms`` / ``open_bytes_ms`` give the envelope alone, on bytes. On a machine
shared with other work, medians move; the best runs are printed too.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import time
import uuid
import zlib
from collections.abc import Callable

from campsync_sync import (
    HLC,
    Batch,
    DeleteOp,
    Entity,
    FieldWrite,
    PatchOp,
    RecordState,
    RestoreOp,
    SetChange,
    Suite,
    TransportKeyPair,
    apply_registry_op,
    decode_batch,
    join,
    key_id,
    node_id_for,
    op_state,
    open_envelope,
    read_operation,
    seal,
    signing_public_bytes,
)
from campsync_sync.envelope import EnvelopeHeader
from campsync_sync.keys import RecipientPrivate
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GIVEN = [
    "Mohammad",
    "Muhammad",
    "Mohammed",
    "Ahmad",
    "Ahmed",
    "Abdul",
    "Abdol",
    "Fatima",
    "Fatimah",
    "Zahra",
    "Gul",
    "Hamid",
    "Hameed",
    "Nazanin",
    "Shabnam",
    "Rahim",
    "Karim",
    "Wahid",
    "Farid",
    "Sayed",
    "Bibi",
    "Mariam",
    "Maryam",
    "Habibullah",
    "Zabihullah",
]
FAMILY = [
    "Stanekzai",
    "Stanikzai",
    "Ahmadzai",
    "Popal",
    "Barakzai",
    "Safi",
    "Mohmand",
    "Wardak",
    "Hotak",
    "Noorzai",
    "Alokozai",
    "Sultani",
    "Rahimi",
    "Karimi",
    "Hashimi",
]
LOCAL = ["محمد", "احمد", "عبدالله", "فاطمه", "زهرا", "گل", "حمید", "کریم", "رحیم", "مریم"]
PLACES = [
    "Torkham",
    "Spin Boldak",
    "Jalalabad",
    "Kabul",
    "Kandahar",
    "Khost",
    "Kunar",
    "Laghman",
    "Nangarhar",
    "Helmand",
    "Paktia",
    "Ghazni",
    "Logar",
    "Herat",
]


def hlc(rng: random.Random, node: int, base_ms: int, spread: int = 86_400_000) -> str:
    return str(HLC(base_ms + rng.randrange(spread), rng.randrange(4), node))


def person_op(rng: random.Random, node: int, base_ms: int, spread: int = 86_400_000) -> PatchOp:
    def w(value: object) -> FieldWrite:
        return FieldWrite(value=value, hlc=hlc(rng, node, base_ms, spread))

    fields = {
        "household_id": w(str(uuid.UUID(int=rng.getrandbits(128), version=4))),
        "relationship_to_head": w(rng.choice(["head", "spouse", "child", "parent"])),
        "given_name": w(rng.choice(GIVEN)),
        "family_name": w(rng.choice(FAMILY)),
        "father_name": w(f"{rng.choice(GIVEN)} {rng.choice(GIVEN)}"),
        "given_name_local": w(rng.choice(LOCAL)),
        "sex": w(rng.choice(["female", "male"])),
        "date_of_birth": w(
            f"{rng.randint(1940, 2024)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
        ),
        "document_number": w(
            f"{rng.randint(1000, 1403)}-{rng.randint(0, 9999):04}-{rng.randint(0, 99999):05}"
        ),
        "phone": w(f"+937{rng.randint(0, 99_999_999):08}"),
    }
    if rng.random() < 0.3:
        fields["dob_estimated"] = w(True)
    sets = {
        "vulnerabilities": [
            SetChange(element=e, present=True, hlc=hlc(rng, node, base_ms, spread))
            for e in rng.sample(
                ["disability", "chronic_illness", "single_parent"], rng.randint(0, 2)
            )
        ]
    }
    gen = uuid.UUID(int=rng.getrandbits(128), version=4)
    return PatchOp(op_id=gen, entity="person", id=gen, fields=fields, sets=sets)


def batch_ops(rng: random.Random, n: int, node: int, base_ms: int) -> list[PatchOp]:
    return [person_op(rng, node, base_ms) for _ in range(n)]


def timings_ms(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(median, best) of ``rounds`` runs: the median is the figure; the best shows the cost
    without the noise of a shared machine."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    return timings_ms(fn, rounds)[0]


class Keys:
    """A receiver's key resolver, with key objects loaded once as a server caches them."""

    def __init__(self, device: Ed25519PrivateKey, transport: TransportKeyPair) -> None:
        self.device = device.public_key()
        self.transport = transport.private_key()

    def sender_key(self, header: EnvelopeHeader) -> Ed25519PublicKey:
        return self.device

    def recipient_key(self, header: EnvelopeHeader, suite: Suite) -> RecipientPrivate:
        return self.transport


def bench_envelope(n_ops: int, rounds: int) -> dict[str, float]:
    rng = random.Random(7)
    device = Ed25519PrivateKey.generate()
    device_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    node = node_id_for(device_id)
    ops = batch_ops(rng, n_ops, node, 1_790_000_000_000)
    batch = Batch.of(
        batch_id=uuid.uuid4(), device_id=device_id, seq=1, hlc=str(HLC(1, 0, node)), ops=ops
    )
    plaintext = batch.model_dump_json().encode()
    figures = {
        "batch_ops": float(n_ops),
        "plaintext_kib": len(plaintext) / 1024,
        "json_dump_ms": median_ms(batch.model_dump_json, rounds),
        "deflate_ms": median_ms(lambda: zlib.compress(plaintext, 1), rounds),
    }
    compressed = zlib.compress(plaintext, 1)
    figures["inflate_ms"] = median_ms(lambda: zlib.decompress(compressed), rounds)
    for suite in Suite:
        transport = TransportKeyPair.generate(suite.key_kind)
        recipient = transport.public_key()
        keys = Keys(device, transport)
        header = EnvelopeHeader(
            typ="push",
            aud="bench",
            snd=str(device_id),
            skid=key_id(signing_public_bytes(device)),
            rkid=transport.kid,
            batch=batch.batch_id,
            seq=1,
        )

        def do_seal(s: Suite = suite, h: EnvelopeHeader = header, r: object = recipient) -> bytes:
            body = batch.model_dump_json().encode()
            return seal(body, h, recipient_key=r, signing_key=device, suite=s)  # type: ignore[arg-type]

        sealed = do_seal()

        def do_open(data: bytes = sealed, k: Keys = keys) -> Batch:
            return decode_batch(open_envelope(data, keys=k, deployment_id="bench", typ="push"))

        assert do_open() == batch
        suffix = "" if suite is Suite.X25519_CHACHA20POLY1305 else f"_suite{int(suite)}"
        figures[f"sealed_kib{suffix}"] = len(sealed) / 1024
        seal_ms, seal_best = timings_ms(do_seal, rounds)
        open_ms, open_best = timings_ms(do_open, rounds)
        figures |= {f"seal_ms{suffix}": seal_ms, f"open_ms{suffix}": open_ms}
        figures |= {f"seal_best_ms{suffix}": seal_best, f"open_best_ms{suffix}": open_best}
        if not suffix:
            opened = open_envelope(sealed, keys=keys, deployment_id="bench", typ="push")
            figures["decode_batch_ms"] = median_ms(functools.partial(decode_batch, opened), rounds)
            # The envelope alone, on bytes: what seal and open cost without the batch's JSON.
            seal_bytes = functools.partial(
                seal, plaintext, header, recipient_key=recipient, signing_key=device
            )
            open_bytes = functools.partial(
                open_envelope, sealed, keys=keys, deployment_id="bench", typ="push"
            )
            figures["seal_bytes_ms"] = median_ms(seal_bytes, rounds)
            figures["open_bytes_ms"] = median_ms(open_bytes, rounds)
    return figures


def merge_workload(n_ops: int) -> list[tuple[uuid.UUID, PatchOp | DeleteOp | RestoreOp]]:
    """A day of a camp: creates, then edits (mostly after a pull, some concurrent), deletes.

    One record in five is created; the rest are edits of 1-3 fields (70% by the creating
    tablet, 20% by another that had pulled the record, 5% concurrent from a stale copy), set
    changes, and about 2.5% deletes and restores each. Clocks advance as in the field.
    """
    rng = random.Random(11)
    nodes = [rng.getrandbits(64) for _ in range(5)]
    now = 1_790_000_000_000
    editable = ["phone", "status", "given_name", "family_name", "father_name", "document_number"]
    seen: dict[uuid.UUID, dict[str, str]] = {}
    creator: dict[uuid.UUID, int] = {}
    deleted: set[uuid.UUID] = set()
    ops: list[tuple[uuid.UUID, PatchOp | DeleteOp | RestoreOp]] = []
    while len(ops) < n_ops:
        now += rng.randrange(50, 5_000)
        op_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        if not seen or rng.random() < 0.2:
            node = rng.choice(nodes)
            op = person_op(rng, node, now, spread=1)
            rid = op.id
            creator[rid] = node
            seen[rid] = {name: write.hlc for name, write in op.fields.items()}
            ops.append((rid, op))
            continue
        roll = rng.random()
        if roll > 0.975 and deleted:
            rid = deleted.pop()
            stamp = str(HLC(now, 0, creator[rid]))
            ops.append((rid, RestoreOp(op_id=op_id, entity="person", id=rid, hlc=stamp)))
            continue
        # Tablets mostly edit what they registered lately.
        rid = ops[-rng.randrange(1, min(len(ops), 200) + 1)][0]
        if rid in deleted:
            continue
        stamp = str(HLC(now, 0, creator[rid] if roll < 0.7 else rng.choice(nodes)))
        if roll > 0.95:
            deleted.add(rid)
            ops.append(
                (
                    rid,
                    DeleteOp(
                        op_id=op_id,
                        entity="person",
                        id=rid,
                        hlc=stamp,
                        reason="duplicate",
                        base=seen[rid],
                    ),
                )
            )
            continue
        stale = roll > 0.9
        fields = {}
        for name in rng.sample(editable, rng.randint(1, 3)):
            value = {
                "phone": f"+937{rng.randint(0, 99_999_999):08}",
                "status": "active",
                "document_number": f"{rng.randint(1000, 1403)}-{rng.randint(0, 99999):05}",
            }.get(name, rng.choice(GIVEN))
            base = None if stale else seen[rid].get(name)
            fields[name] = FieldWrite(value=value, hlc=stamp, base=base)
            seen[rid][name] = stamp
        sets = {}
        if rng.random() < 0.3:
            sets["vulnerabilities"] = [
                SetChange(element="disability", present=rng.random() < 0.7, hlc=stamp)
            ]
        ops.append((rid, PatchOp(op_id=op_id, entity="person", id=rid, fields=fields, sets=sets)))
    return ops


def bench_merge(n_ops: int, rounds: int) -> dict[str, float]:
    ops = merge_workload(n_ops)

    def run() -> dict[uuid.UUID, RecordState]:
        states: dict[uuid.UUID, RecordState] = {}
        for rid, op in ops:
            states[rid], _ = apply_registry_op(Entity.PERSON, states.get(rid), op)
        return states

    apply_ms, apply_best = timings_ms(run, rounds)
    final = run()
    # The same operations through join alone, as a cross-check of the one-pass merge.
    joined: dict[uuid.UUID, RecordState] = {}
    for rid, op in ops:
        joined[rid] = join(joined.get(rid, RecordState()), op_state(op))
    assert joined == final, "apply_registry_op and join disagree"
    raw = [op.model_dump(mode="json") for _, op in ops]
    read_ms = median_ms(lambda: [read_operation(r) for r in raw], max(3, rounds // 3))
    return {
        "merge_ops": float(n_ops),
        "merge_ops_per_s": n_ops / apply_ms * 1000,
        "merge_best_ops_per_s": n_ops / apply_best * 1000,
        "read_ops_per_s": n_ops / read_ms * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--merge-ops", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    f = bench_envelope(args.ops, args.rounds) | bench_merge(args.merge_ops, args.rounds)
    print(f"batch of {args.ops} operations: {f['plaintext_kib']:.0f} KiB of JSON")
    print(
        f"suite 1 (X25519, ChaCha20-Poly1305): seal {f['seal_ms']:.2f} ms + open "
        f"{f['open_ms']:.2f} ms = {f['seal_ms'] + f['open_ms']:.2f} ms (goal < 10 ms), "
        f"sealed {f['sealed_kib']:.0f} KiB; best runs {f['seal_best_ms']:.2f} + "
        f"{f['open_best_ms']:.2f} ms"
    )
    print(
        f"  parts: JSON dump {f['json_dump_ms']:.2f} ms, deflate in one call "
        f"{f['deflate_ms']:.2f} ms, inflate {f['inflate_ms']:.2f} ms, decode_batch "
        f"{f['decode_batch_ms']:.2f} ms"
    )
    print(
        f"  the envelope alone, on bytes (no JSON): seal {f['seal_bytes_ms']:.2f} ms + open "
        f"{f['open_bytes_ms']:.2f} ms (large bodies deflate on several cores)"
    )
    for suite in (Suite.X25519_AES256GCM, Suite.MLKEM768X25519_CHACHA20POLY1305):
        n = int(suite)
        print(
            f"suite {n} ({suite.name}): seal {f[f'seal_ms_suite{n}']:.2f} ms + open "
            f"{f[f'open_ms_suite{n}']:.2f} ms"
        )
    print(
        f"merge (apply_registry_op): {f['merge_ops_per_s']:,.0f} ops/s over {args.merge_ops} "
        f"operations (goal >= 100,000; best run {f['merge_best_ops_per_s']:,.0f})"
    )
    print(f"read_operation (parse + normalise): {f['read_ops_per_s']:,.0f} ops/s")
    print(json.dumps({k: round(v, 3) for k, v in f.items()}))


if __name__ == "__main__":
    main()
