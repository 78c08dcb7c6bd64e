"""Table step: gather every metric file into the long CSV and the paper-style Markdown table."""
from __future__ import annotations

from ..atomic import atomic_path, read_json
from ..progress import setup_logging
from ..tables import attacks_table, long_table, paper_table, to_markdown


def run(*, metrics, long_csv, paper_md, attacks_md, methods, method_labels, prompt_sets, attacks, threads=1, log=None):
    """`attacks`: prompt set -> {label, access} of each attack in the audit."""
    setup_logging(log)
    records = []
    for path in metrics:
        m = read_json(path)
        attack = attacks.get(m["prompt_set"], {})
        records.append(dict(concept=m["concept"], model=m["model"], prompt_set=m["prompt_set"], attack=attack.get("label", ""),
                            access=attack.get("access", ""), accuracy=m["accuracy"],
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
    headers = {s: f"{a['label']} ({a['access']})" for s, a in attacks.items()} | {"name": "name", "control": "control"}
    by_attack = attacks_table(df, methods, prompt_sets, headers, method_labels)
    with atomic_path(attacks_md) as tmp:
        tmp.write_text(f"Accuracy (%) of the evaluator ({ev['evaluator']}, sha256 {ev['evaluator_sha256']}) per prompt set: "
                       f"each cell is concept by concept ({' / '.join(df['concept'].unique())}) = their mean. White-box attacks are "
                       "learned on the audited model's weights, black-box ones without it (on the base model).\n\n"
                       + to_markdown(by_attack))
