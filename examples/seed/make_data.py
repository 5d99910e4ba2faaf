"""A tiny stand-in for the 20 newsgroups data: two topics, deterministic, a few KB."""

import pickle
import random
from pathlib import Path

TOPICS = {
    "sci.space": [
        "orbit",
        "rocket",
        "launch",
        "nasa",
        "moon",
        "shuttle",
        "satellite",
        "planet",
        "mission",
        "astronaut",
    ],
    "rec.autos": [
        "engine",
        "car",
        "wheel",
        "brake",
        "dealer",
        "sedan",
        "tire",
        "transmission",
        "mileage",
        "fuel",
    ],
}
COMMON = ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as", "was"]


def make_documents(n_per_topic: int = 200, seed: int = 20) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    docs = []
    for label, words in TOPICS.items():
        for _ in range(n_per_topic):
            body = [
                rng.choice(words) if rng.random() < 0.35 else rng.choice(COMMON) for _ in range(40)
            ]
            docs.append((" ".join(body), label))
    rng.shuffle(docs)
    return docs


def write_dataset(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = pickle.dumps({"documents": make_documents()}, protocol=4)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path
