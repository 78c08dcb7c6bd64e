"""Runs every workflow step once, in DAG order, on the tiny .test config and on the GPU when there is
one: the CUDA paths of the steps, checked on a machine that has no Snakemake installed.

  python bench/gpu_smoke.py OUT_DIR [PRECISION]   # PRECISION overrides sampling.precision
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import yaml

from unerase.atomic import read_json
from unerase.steps import attack, base_model, concept_images, erase, evaluate, finetune_on_concept, generate, train_embedded

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path, precision: str | None = None) -> None:
    cfg = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    if precision:
        cfg["sampling"]["precision"] = precision
    emb, tv, ci, samp = cfg["embedded"], cfg["erasure"]["task_vector"], cfg["attacks"]["concept_inversion"], cfg["sampling"]
    T = cfg["prompts"]["templates"]
    r = lambda p: str(out / p)  # noqa: E731
    t0 = time.perf_counter()
    print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
    train_embedded.run_vae(vae=r("vae"), checkpoint=r("ck/vae.pt"), seed=0, **emb["vae"])
    train_embedded.run_text_to_image(vae=r("vae"), model=r("model"), templates=T, checkpoint=r("ck/t2i.pt"), seed=0, **emb["text_to_image"])
    train_embedded.run_classifier(weights=r("clf.safetensors"), report=r("clf.json"), seed=0, **emb["classifier"])
    base_model.run(manifest=r("manifest.json"), source="embedded", path=None, model=r("model"))
    common = dict(manifest=r("manifest.json"), concept_text="zero", templates=T, seed=0)
    concept_images.run(images=r("ci.safetensors"), grid=r("ci.png"), label=0, num_images=12, **samp, **common)
    erasure = dict(concept_text="zero", label=0, classes=cfg["classes"], templates=T, seed=0, manifest=r("manifest.json"))
    erase.run(concept_images=r("ci.safetensors"), patch=r("esd.safetensors"), record=r("esd.json"), method="esd-x", shared={},
              settings=cfg["erasure"]["esd"], checkpoint=None, **erasure)
    erase.run(patch=r("uce.safetensors"), record=r("uce.json"), method="uce", shared={}, settings=cfg["erasure"]["uce"],
              checkpoint=None, **erasure)
    finetune_on_concept.run_finetune(manifest=r("manifest.json"), concept_images=r("ci.safetensors"), finetuned=r("ft.safetensors"),
                                     steps=tv["finetune_steps"], lr=tv["lr"], batch_size=tv["batch_size"], grad_clip=tv["grad_clip"],
                                     seed=0, checkpoint=None)
    erase.run(finetuned=r("ft.safetensors"), classifier=r("clf.safetensors"), patch=r("tv.safetensors"), record=r("tv.json"),
              method="tv", settings=tv, shared={"sampling": samp, "evaluation.images_per_cell": cfg["evaluation"]["images_per_cell"]},
              checkpoint=None, **erasure)
    attack.run(concept_images=r("ci.safetensors"), artefact=r("emb.safetensors"), record=r("emb.json"), attack="inversion", settings=ci,
               label=0, learned_on="esd-x", unet_patch=r("esd.safetensors"), checkpoint=None, **common)
    attack.run(artefact=r("rab.json"), record=r("rab_record.json"), attack="ring-a-bell", settings=cfg["attacks"]["ring_a_bell"],
               label=0, learned_on="base", checkpoint=None, **common)
    common.pop("concept_text")
    sets = ["name", "inversion", "ring-a-bell", "control"]
    generate.run(images=[r(f"g_{s}.safetensors") for s in sets], grids=[r(f"g_{s}.png") for s in sets], prompt_sets=sets,
                 concept_text="zero", label=0, classes=cfg["classes"], num_images=10, unet_patch=r("esd.safetensors"),
                 attack_sets=["inversion", "ring-a-bell"], artefacts=[r("emb.safetensors"), r("rab.json")], **samp, **common)
    evaluate.run(images=[r(f"g_{s}.safetensors") for s in sets], classifier=r("clf.safetensors"),
                 metrics=[r(f"m_{s}.json") for s in sets], evaluator="digit-cnn", settings={"min_confidence": 0.0},
                 cells=[dict(concept="zero", model="esd-x", prompt_set=s) for s in sets])
    for s in sets:
        print(s, read_json(r(f"m_{s}.json"))["accuracy"])
    print(f"all steps ran in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:3])
