"""Readable generated names for runs that were not given one ("brisk-otter-417")."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fair", "fleet",
    "gentle", "glad", "grand", "hardy", "keen", "kind", "lively", "lucid", "merry", "nimble",
    "noble", "plucky", "proud", "quick", "quiet", "rapid", "sharp", "shy", "steady", "sunny",
    "swift", "tidy", "vivid", "warm", "wise", "witty",
)
_NOUNS = (
    "albatross", "badger", "beacon", "bison", "cedar", "comet", "crane", "dolphin", "falcon",
    "ferry", "finch", "gull", "harbor", "heron", "keel", "kestrel", "lark", "lynx", "marlin",
    "mast", "otter", "pelican", "puffin", "rudder", "schooner", "seal", "sloop", "sparrow",
    "tern", "tide", "walrus", "whale", "wren", "yawl",
)


def generate_run_name() -> str:
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randint(100, 999)}"
