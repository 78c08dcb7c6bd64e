"""Figure step: M-ErasureBench's Concept Reproduction Rate grid as a heat map, from the long table."""
from __future__ import annotations

from ..progress import setup_logging


def crr_grid(*, long_csv, figure, methods, method_labels, attacks, threads=1, log=None):
    """M-ErasureBench's CRR grid (models by modality and access, each the mean over concepts) as a heat map, from
    accuracy.csv; `attacks`: prompt set -> {label, access, modality}."""
    import numpy as np
    import pandas as pd

    from ..figures import crr_heatmap
    from ..tables import modality_headers, modality_order

    setup_logging(log)
    df = pd.read_csv(long_csv)
    rows, columns = modality_order(["base", *methods], attacks)
    mean = df.groupby(["model", "prompt_set"])["accuracy"].mean()
    rates = np.array([[mean.get((m, s), np.nan) for s in columns] for m in rows], dtype=float)
    labels = modality_headers(attacks)
    concepts = " / ".join(df["concept"].unique())
    crr_heatmap(figure, rates, [method_labels.get(m, m) for m in rows], [labels[s] for s in columns],
                f"Concept reproduction rate, mean over {concepts} (M-ErasureBench's grid)")
