"""One module per workflow step: each `run(...)` takes the rule's named inputs, outputs and params as
keyword arguments, so scripts/ stay thin and tests call steps without Snakemake."""
