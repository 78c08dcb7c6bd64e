"""Result tables: one long CSV of every (concept, model, prompt set) cell, and the paper-style
Markdown table (Task-Vector paper, Table 2): rows = erased concepts, columns = methods, each cell
"accuracy of the erased model / accuracy after Concept Inversion"."""
from __future__ import annotations

import pandas as pd


def long_table(records: list[dict]) -> pd.DataFrame:
    """records: dicts with concept, model, prompt_set, accuracy, images, evaluator."""
    df = pd.DataFrame(records)
    return df.sort_values(["concept", "model", "prompt_set"]).reset_index(drop=True)


def _pct(x) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.1f}"


def paper_table(df: pd.DataFrame, methods: list[str], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Wide table: per concept the base model's accuracy, then per method 'erased / inverted', then
    the method's accuracy on the other classes (control)."""
    labels = labels or {}
    acc = df.set_index(["concept", "model", "prompt_set"])["accuracy"]
    rows = []
    for concept in sorted(df["concept"].unique(), key=list(df["concept"]).index):
        row = {"concept": concept, "base": _pct(acc.get((concept, "base", "name"))),
               "base (inverted)": _pct(acc.get((concept, "base", "inversion")))}
        for m in methods:
            name = labels.get(m, m)
            row[name] = f"{_pct(acc.get((concept, m, 'name')))} / {_pct(acc.get((concept, m, 'inversion')))}"
        for m in methods:
            row[f"{labels.get(m, m)} control"] = _pct(acc.get((concept, m, "control")))
        row["base control"] = _pct(acc.get((concept, "base", "control")))
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no optional `tabulate` dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
