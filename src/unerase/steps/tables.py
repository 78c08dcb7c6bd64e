"""Table step: gather every metric file into the long CSV and the paper-style Markdown table."""
from __future__ import annotations

from ..atomic import atomic_path, read_json
from ..progress import setup_logging
from ..tables import long_table, paper_table, to_markdown


def run(*, metrics, long_csv, paper_md, methods, method_labels, threads=1, log=None):
    setup_logging(log)
    records = []
    for path in metrics:
        m = read_json(path)
        records.append(dict(concept=m["concept"], model=m["model"], prompt_set=m["prompt_set"], accuracy=m["accuracy"],
                            images=m["images"], evaluator=m["evaluator"]["name"], evaluator_sha256=m["evaluator"]["sha256"][:12],
                            min_confidence=m["evaluator"]["min_confidence"], metrics_file=path))
    df = long_table(records)
    with atomic_path(long_csv) as tmp:
        df.to_csv(tmp, index=False)
    wide = paper_table(df, methods, method_labels)
    ev = df.iloc[0]
    header = (f"Accuracy (%) of the evaluator ({ev['evaluator']}, sha256 {ev['evaluator_sha256']}, min confidence "
              f"{ev['min_confidence']}) on images generated from the concept's name / from the Concept-Inversion tokens; "
              f"'control' = the other classes' names.\n\n")
    with atomic_path(paper_md) as tmp:
        tmp.write_text(header + to_markdown(wide))
