#!/usr/bin/env python3
"""Writes the hand-made MessagePack seeds that have no golden vector in schemas/golden/, and the
seeds of the verify_answer target (answer bodies behind a mode byte).

Standard library only: a minimal MessagePack writer covering the types muster's contract uses
(maps with string keys, strings, ints, float64s, bools, nil, arrays, 16-byte UUID binaries), matching
`rmp_serde::to_vec_named`. Run from anywhere: `python3 fuzz/scripts/make_seeds.py`.
"""
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent.parent / "seeds"


def pack(v) -> bytes:
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v < 2**8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 2**16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 2**64:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        assert len(v) < 256
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        assert len(b) < 256
        return b"\xd9" + bytes([len(b)]) + b
    if isinstance(v, list):
        assert len(v) < 16
        return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        assert len(v) < 16
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


def uuid(last: int) -> bytes:
    return bytes.fromhex("0193000000007000800000000000") + struct.pack(">H", last)


PROTOCOL = {
    "id": "p",
    "version": "1",
    "owner": "security",
    "participants": ["devops", "sre"],
    "inputs": {
        "count": {"type": "int", "required": False, "default": 3},
        "ratio": {"type": "number", "default": 0.5, "min": 0.0, "max": 1.5},
        "flag": {"type": "bool", "default": True},
        "env": {"type": "enum", "values": ["staging", "production"], "default": "staging"},
        "tags": {"type": "list", "default": ["a", 1]},
        "name": {"type": "string", "required": True, "description": "who"},
    },
    "steps": [
        {
            "id": "s",
            "owner": "sre",
            "title": "t",
            "timeout": "1m 30s",
            "retry": {"max_attempts": 3, "backoff": "linear", "initial": "1s", "jitter": 0.25},
            "exec": {
                "program": "echo",
                "args": ["{{ inputs.name }}"],
                "env": {"K": "v"},
                "cwd": "/tmp",
            },
            "outputs": {"n": {"type": "int", "from": "stdout_json", "path": "n"}},
        },
        {
            "id": "t",
            "owner": "devops",
            "needs": ["s"],
            "when": "inputs.flag",
            "exec": {"program": "true"},
            "rollback": {"exec": {"program": "false"}},
            "on_failure": "rollback",
            "checkpoint": {"record": ["x"]},
        },
    ],
}

SNAPSHOT = {
    "id": uuid(1),
    "protocol": PROTOCOL,
    "inputs": {"count": "3", "name": "x"},
    "state": "running",
    "started_at": "2026-11-25T12:00:00Z",
    "finished_at": "2026-11-25T12:00:05.5Z",
    "reason": "r",
    "steps": [
        {
            "id": "s",
            "owner": "sre",
            "state": "succeeded",
            "attempt": 1,
            "deliveries": 2,
            "agent": "sre-1",
            "outcome": "timed_out",
            "exit_code": -1,
            "duration_ms": 1500,
            "started_at": "2026-11-25T12:00:00Z",
            "finished_at": "2026-11-25T12:00:01Z",
            "stdout_tail": "out",
            "stderr_tail": "",
            "outputs": {"k": "v"},
        }
    ],
}

ENVELOPE_WITH_PROTOCOL = {
    "schema": 1,
    "id": uuid(2),
    "sender": {"component": "cli", "id": "cli-1"},
    "time": "2026-11-25T12:00:00Z",
    "payload": {
        "kind": "run_triggered",
        "body": {"protocol_id": "p", "inputs": {"name": "x"}, "protocol": PROTOCOL},
    },
}

ENVELOPE_REFUSED = {
    "schema": 1,
    "id": uuid(3),
    "run_id": uuid(4),
    "sender": {"component": "orchestrator", "id": "orch-1"},
    "time": "2026-11-25T12:00:00Z",
    "payload": {
        "kind": "trigger_reply",
        "body": {"status": "refused", "reason": "no", "code": "invalid_input"},
    },
}


# verify_answer: the first byte picks the mode (0 bus envelope, 1 bare SignedAnswer, otherwise a
# body the target signs itself with principal `byte % 3`: 3 bridge, 4 alice, 5 webfront). The
# identities and "now" (2026-11-25T15:00:00Z) are the fuzz target's fixture.
def answer_body(channel, ident, action, issued="2026-11-25T14:59:50Z", expires="2026-11-25T15:05:00Z",
                nonce="0123456789abcdef0123456789abcdef", note=None):
    body = {
        "run_id": uuid(1),
        "prompt": "ESC-12",
        "action": action,
    }
    if note is not None:
        body["note"] = note
    body.update({
        "responder": {"channel": channel, "id": ident},
        "nonce": nonce,
        "issued_at": issued,
        "expires_at": expires,
    })
    return body


BRIDGE, ALICE, WEBFRONT = b"\x03", b"\x04", b"\x05"
CHOOSE = {"action": "choose", "option": "rollback"}
ANSWER_SEEDS = {
    # Accepted as they are.
    "bridge_matrix_bob": BRIDGE + pack(answer_body("matrix", "@bob:example.org", CHOOSE, note="because")),
    "bridge_slack_alice": BRIDGE + pack(answer_body("slack", "U0ALICE", {"action": "acknowledge"})),
    "alice_cli": ALICE + pack(answer_body("cli", "alice", {"action": "approve", "binding": "sha256:ab"})),
    "webfront_http_fill": WEBFRONT
    + pack(answer_body("http", "bob@example.org", {"action": "fill", "fields": {"ticket": "INC-4"}})),
    # Refused, one per check after the signature.
    "expired": BRIDGE + pack(answer_body("matrix", "@bob:example.org", CHOOSE, "2026-11-25T14:00:00Z", "2026-11-25T14:05:00Z")),
    "future": BRIDGE + pack(answer_body("matrix", "@bob:example.org", CHOOSE, "2026-11-25T16:00:00Z", "2026-11-25T16:05:00Z")),
    "too_long": BRIDGE + pack(answer_body("matrix", "@bob:example.org", CHOOSE, "2026-11-25T14:59:00Z", "2026-11-26T15:00:00Z")),
    "wrong_channel": ALICE + pack(answer_body("matrix", "@bob:example.org", {"action": "confirm"})),
    "cli_impersonation": ALICE + pack(answer_body("cli", "bob", {"action": "reject", "reason": "no"})),
    "unknown_identity": BRIDGE + pack(answer_body("matrix", "@mallory:evil.example", CHOOSE)),
    "bad_nonce": BRIDGE + pack(answer_body("matrix", "@bob:example.org", CHOOSE, nonce="ABC")),
    # Signed by nobody the target knows: refused at the signature.
    "bare_signed_answer": b"\x01" + pack({"body": pack(answer_body("cli", "alice", CHOOSE)), "principal": "alice", "signature": bytes(64)}),
}

if __name__ == "__main__":
    (HERE / "verify_answer").mkdir(exist_ok=True)
    for name, data in ANSWER_SEEDS.items():
        (HERE / "verify_answer" / f"{name}.bin").write_bytes(data)
    golden = HERE.parent.parent / "schemas" / "golden" / "signed_answer.msgpack"
    (HERE / "verify_answer" / "bus_envelope.bin").write_bytes(b"\x00" + golden.read_bytes())
    (HERE / "decode_snapshot" / "run_snapshot.msgpack").write_bytes(pack(SNAPSHOT))
    (HERE / "decode_envelope" / "run_triggered_with_protocol.msgpack").write_bytes(pack(ENVELOPE_WITH_PROTOCOL))
    (HERE / "decode_envelope" / "trigger_reply_refused.msgpack").write_bytes(pack(ENVELOPE_REFUSED))
