"""A deterministic iris-like data set (three classes, four features), written as CSV."""

import random
from pathlib import Path

CENTRES = {
    "setosa": (5.0, 3.4, 1.5, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.6, 3.0, 5.6, 2.0),
}


def write_iris(path: str, rows_per_class: int = 50, seed: int = 3) -> Path:
    rng = random.Random(seed)
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    for species, centre in CENTRES.items():
        for _ in range(rows_per_class):
            values = [round(c + rng.gauss(0, 0.3), 2) for c in centre]
            lines.append(",".join(map(str, values)) + f",{species}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out
