"""Task-vector erasure steps: fine-tune on the concept, then negate τ at the α the search picks."""
from __future__ import annotations

import torch
from safetensors.torch import load_file

from ..atomic import read_json, write_json
from ..components import load_base_unet_state, save_unet_patch
from ..evaluation import classifier_accuracy
from ..images_io import save_grid
from ..progress import log as logger
from ..prompts import build_prompts
from ..sampling import generate
from ..task_vector import finetune_on_concept, negate, task_vector
from ._shared import concept_bank, load_model, start
from .select_alpha import search_alpha


def run_finetune(*, manifest, concept_images, finetuned, steps, lr, batch_size, grad_clip, seed, checkpoint, threads=1, log=None):
    device = start(threads, log)
    model = load_model(manifest, device)
    finetune_on_concept(model, concept_bank(model, concept_images), steps=steps, lr=lr, batch_size=batch_size,
                        grad_clip=grad_clip, seed=seed, checkpoint=checkpoint)
    save_unet_patch(model.unet.state_dict(), None, finetuned, metadata=dict(kind="fine-tuned on concept, empty captions"))


def run_alpha_search(*, manifest, finetuned, classifier, selected, choice, grid, alphas, alpha_rule, max_target_accuracy,
                     min_control_accuracy, concept_text, label, classes, templates, num_images, seed, guidance_scale, num_steps,
                     batch_size, precision="float32", threads=1, log=None):
    """θ − α·τ for the α grid, in the rule's order, each scored on its name and control images with
    the evaluator (argmax, whatever evaluation.min_confidence says, so a metric-only change re-runs
    no attack); the first α meeting both criteria becomes the "tv" model. One model load for all α."""
    device = start(threads, log)
    model = load_model(manifest, device, precision=precision)
    # θ and τ in float32 whatever the sampling precision; θ − α·τ is cast on load_state_dict.
    base = ({k: v.detach().clone() for k, v in model.unet.state_dict().items()} if precision == "float32"
            else load_base_unet_state(read_json(manifest)["path"]))
    tau = task_vector(base, load_file(finetuned))
    sets = {s: build_prompts(s, templates, concept_text, label, classes, num_images, None) for s in ("name", "control")}
    seeds = [seed + i for i in range(num_images)]  # the seeds of every generation job: the chosen α's cells repeat here
    name_images = {}

    def score(alpha: float) -> dict:
        model.unet.load_state_dict(negate(base, tau, alpha), strict=False)
        out = {}
        for prompt_set, key in (("name", "target"), ("control", "control")):
            prompts, labels = sets[prompt_set]
            x = generate(model, prompts, seeds, guidance_scale, num_steps, batch_size)
            out[key] = classifier_accuracy(x, torch.tensor(labels), classifier, min_confidence=0.0)["accuracy"]
            if prompt_set == "name":
                name_images[alpha] = x
        logger.info("task vector alpha %g: concept %.2f, other classes %.2f", alpha, out["target"], out["control"])
        return out

    alpha, why, results = search_alpha(score, alphas, max_target_accuracy, min_control_accuracy, alpha_rule)
    logger.info("task vector: chose alpha %g (%s) from %s", alpha, why, results)
    save_unet_patch(negate(base, tau, alpha), None, selected, metadata=dict(kind="task vector", alpha=alpha))
    # one row of ten name-prompt images per scored α, smallest α on top
    save_grid(grid, torch.cat([name_images[r["alpha"]][:10] for r in results]))
    write_json(choice, dict(alpha=alpha, reason=why, rule=alpha_rule, candidates=results, grid=list(map(float, alphas)),
                            max_target_accuracy=max_target_accuracy, min_control_accuracy=min_control_accuracy))
