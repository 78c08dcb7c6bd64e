# Replicates over seeds (issue #9). Every seed in `seeds` other than `seed` is the whole workflow again -- its own
# base model, evaluator, concept images, erasures, attacks and sampling, all drawn from that seed -- as a module of
# this Snakefile under replicates/seed-N/ (its rules named seedN_*); `seed` itself is the main run in results/.
# The seed summary puts the listed seeds' accuracy tables side by side: n, mean and a 95 % interval per cell.
for replicate_seed in [s for s in config["seeds"] if s != config["seed"]]:
    replicate = f"seed{replicate_seed}"
    replicate_rules = f"seed{replicate_seed}_"

    module:
        name:
            replicate
        snakefile:
            "../Snakefile"
        config:
            {**config, "seed": replicate_seed, "seeds": []}
        prefix:
            f"replicates/seed-{replicate_seed}"

    use rule * from replicate exclude all as replicate_rules*


if config["seeds"]:

    rule seed_summary:
        localrule: True
        input:
            tables=[f"{replicate_dir(s)}results/tables/accuracy.csv" for s in config["seeds"]],
            tv_records=[f"{replicate_dir(s)}results/erased/{c}/tv/erasure.json" for s in config["seeds"] for c in CONCEPTS]
            if "tv" in METHODS else [],
        output:
            seeds_csv="results/tables/seeds.csv",
            seeds_md="results/tables/seeds.md",
        log:
            log_path("seed_summary", "seeds"),
        params:
            code=package_code("seed_summary.py"),
            seeds=config["seeds"],
        conda:
            "../envs/report.yaml"
        script:
            "../scripts/seed_summary.py"
