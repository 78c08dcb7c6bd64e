#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (its image has torch but no diffusers, transformers, open_clip or Snakemake, and
# no network), fetched here into the git-ignored .whl/ (~48 MB, under `run`'s 64 MiB carry limit) for Python 3.12.
# Then, from the repository root:  run(command="bash bench/device/bench.sh 400", carry=[".whl"])
#                                  run(command="bash bench/device/dag.sh 320", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
PINS="diffusers==0.42.1 transformers==5.23.0 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 regex==2026.11.19
snakemake==9.27.1 immutables==0.21 configargparse==1.9.0 docutils==0.22.4 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3
humanfriendly==10.0 jsonschema==4.26.0 jsonschema_specifications==2025.9.1 referencing==0.37.0 rpds_py==2026.9.1
nbformat==5.11.1 fastjsonschema==2.22.3 jupyter_core==5.9.1 traitlets==5.16.1 pulp==3.3.2 tenacity==9.2.1
smart_open==7.7.1 snakemake_interface_common==1.23.0 snakemake_interface_executor_plugins==9.4.0
snakemake_interface_logger_plugins==2.1.0 snakemake_interface_report_plugins==1.3.0 snakemake_interface_scheduler_plugins==2.0.2
snakemake_interface_storage_plugins==4.4.1 throttler==1.2.3 yte==1.9.4 argparse_dataclass==2.0.0 dpath==2.2.0
conda_inject==1.3.2 sqlmodel==0.0.37 sqlalchemy==2.0.58 greenlet==3.5.6 pydantic==2.14.4 pydantic_core==2.50.5
annotated_types==0.8.0 typing_inspection==0.4.5 packaging==25.0 typing_extensions==4.16.0 platformdirs==4.14.9
attrs==26.1.0 tabulate==0.10.0"
for pin in $PINS; do
  [ "$pin" = "connection_pool==0.0.3" ] && continue
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$pin"
done
# connection_pool ships only an sdist: build its (pure-Python) wheel here
.venv/bin/pip wheel -q --no-deps -w .whl connection_pool==0.0.3
du -sh .whl
