"""Task-vector erasure (Ilharco et al. 2023; Pham et al. 2024): fine-tune the UNet on the concept's
images with EMPTY captions, take τ = θ_ft − θ, and negate it: θ_erased = θ − α·τ. The edit does not
depend on any prompt, which is why it resists input-side attacks such as Concept Inversion."""
from __future__ import annotations

import torch
from safetensors.torch import load_file

from ..atomic import read_json
from ..checkpoint import Checkpointer, rng_state, set_rng_state
from ..components import Components, load_components
from ..diffusion import LatentBank, denoising_loss
from ..evaluation import erasure_score, scores_by_token
from ..inversion import load_token_set
from ..progress import Progress, log
from ..prompts import build_prompts, control_prompts, names_concept
from ..sampling import generate
from ..seeding import image_seeds
from ..text import encode
from .alpha_search import search_alpha, search_alpha_by_erasure_score
from .job import ErasureJob, ErasureResult


def finetune_on_concept(components: Components, bank: LatentBank, *, steps: int, lr: float, batch_size: int,
                        grad_clip: float, seed: int, checkpoint: str | None = None, checkpoint_every: int = 100,
                        ema_decay: float | None = None) -> None:
    """Fine-tune every UNet parameter in place on the concept images, captions empty. With `ema_decay`, the UNet
    ends as diffusers' EMAModel average of its steps (the released scripts' --use_ema: decay min(ema_decay,
    (1 + s) / (10 + s)) at step s), so θ_ft and τ are the averaged weights'."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    unet = components.unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0, fused=True)  # decay would leak into τ
    ema = None
    if ema_decay is not None:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(unet.parameters(), decay=ema_decay)
    ckpt = Checkpointer(checkpoint, dict(steps=steps, lr=lr, bs=batch_size, clip=grad_clip, seed=seed,
                                         **({"ema": ema_decay} if ema is not None else {})), checkpoint_every)
    start = 0
    if state := ckpt.load():
        unet.load_state_dict(state["unet"]); opt.load_state_dict(state["opt"]); gen.set_state(state["gen"])
        set_rng_state(state["rng"]); start = state["step"]
        if ema is not None:
            ema.load_state_dict(state["ema"])
            ema.to(device=components.device)  # the checkpoint loads on the CPU; EMAModel keeps its shadow where loaded
    context = encode(components.tokenizer, components.text_encoder, [""]).expand(batch_size, -1, -1)
    progress = Progress("task-vector fine-tune", steps, start)
    for step in range(start, steps):
        idx = torch.randint(0, len(bank), (batch_size,), generator=gen)
        loss = denoising_loss(unet, components.scheduler, bank.draw(idx, gen), context, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), grad_clip)
        opt.step()
        if ema is not None:
            ema.step(unet.parameters())
        progress.update(step, loss.item())
        ckpt.maybe_save(step, steps, lambda: dict(unet=unet.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), rng=rng_state(),
                                                  **({"ema": ema.state_dict()} if ema is not None else {})))
    if ema is not None:
        ema.copy_to(unet.parameters())
    unet.eval().requires_grad_(False)
    ckpt.clear()


def task_vector(base: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """τ = θ_ft − θ over the floating-point tensors both state dicts share, on the base's device (the
    fine-tuned file loads on the CPU; on a GPU the base lives there: the default DAG's TV jobs failed on an H200)."""
    if set(base) != set(finetuned):
        raise ValueError("base and fine-tuned UNets have different parameters")
    return {k: finetuned[k].to(base[k].device).float() - base[k].float() for k in base if base[k].is_floating_point()}


def negate(base: dict[str, torch.Tensor], tau: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """θ − α·τ, in the base tensors' dtype."""
    return {k: (base[k].float() - alpha * tau[k]).to(base[k].dtype) for k in tau}


def erase(job: ErasureJob) -> ErasureResult:
    """The registry's entry point: `tv` (config block `erasure.task_vector`) picks α by its
    `alpha_rule` from the name and control images; `tv-es` (block `erasure.tv_es`, with the task
    vector's α grid and control criterion as shared keys, so that a change to `alpha_rule` or
    `max_target_accuracy` re-runs no tv-es job) by the Erasure Score over the Diverse-Inversion set
    (input "diverse_inversion")."""
    if "diverse_inversion" in job.inputs:
        s = dict(job.settings, alphas=job.shared["erasure.task_vector.alphas"],
                 min_control_accuracy=job.shared["erasure.task_vector.min_control_accuracy"],
                 min_control_of_base=job.shared.get("erasure.task_vector.min_control_of_base"))
        return negate_at_searched_alpha(job, s)
    return negate_at_searched_alpha(job, job.settings)


def control_task_texts(job: ErasureJob, s: dict, num_images: int) -> list[str]:
    """Image i's control-task prompt for tv-es's α search: evaluation.control_task.prompts in turn, less those naming the
    concept (as in the control-task table); [] when none are configured. A control-similarity bound needs some."""
    kept = [p for p in job.shared.get("evaluation.control_task", {}).get("prompts", []) if not names_concept(p, job.concept_text)]
    if not kept and s.get("min_control_similarity") is not None:
        raise ValueError(f"erasure.tv_es.min_control_similarity is {s['min_control_similarity']} but evaluation.control_task.prompts "
                         f"has no prompt other than the concept '{job.concept_text}': list the control prompts, or set it to null")
    return control_prompts(kept, num_images) if kept else []


def negate_at_searched_alpha(job: ErasureJob, s: dict, prune=None) -> ErasureResult:
    """θ − α·τ over the α grid of settings `s` in its rule's order, each α scored on its name and
    control images with the configured evaluator (unerase.evaluators; the digit CNN by argmax, whatever
    evaluation.min_confidence says, so a metric-only change re-runs no erasure), stopping at the first α that meets both criteria
    (unerase.erasure.alpha_search). `prune(τ) -> τ'` keeps part of the task vector (pruned TV)."""
    sampling = job.shared["sampling"]
    num_images = job.shared["evaluation.images_per_cell"]
    unet = job.model.unet
    base = {k: v.detach().clone() for k, v in unet.state_dict().items()}  # float32: θ − α·τ is exact there
    tau = task_vector(base, load_file(job.inputs["finetuned"]))
    if prune is not None:
        tau = prune(tau)
    # Sampling precision (float16 on a GPU) needs its own copy; on the embedded default it is this model.
    sampler = job.model if sampling["precision"] == "float32" else load_components(
        read_json(job.manifest)["path"], job.model.device, getattr(torch, sampling["precision"]))
    sets = {p: build_prompts(p, job.templates, job.concept_text, job.label, job.classes, num_images, None) for p in ("name", "control")}
    by_es = "diverse_inversion" in job.inputs
    if by_es:  # the Diverse-Inversion tokens in every template, as the generation jobs draw them
        tokens = load_token_set(sampler, job.inputs["diverse_inversion"], as_token=f"<{job.concept_text.replace(' ', '_')}-diverse-inversion>")
        sets["diverse"] = build_prompts("diverse-inversion", job.templates, job.concept_text, job.label, job.classes, num_images, tokens)
    seeds = image_seeds(job.seed, num_images)  # the generation jobs' seeds: the chosen α's cells repeat these images
    scorer = job.scorer()
    # the Erasure Score's concept score: the evaluator's probability, or the TV paper's CLIP similarity to the name
    es_block = job.shared.get("evaluation.erasure_score", {"score": "probability"}) if by_es else {}
    from ..evaluators import clip_similarity

    similarity = clip_similarity.for_erasure_score(es_block, job.classes)
    # the TV paper's control task (Fig. 4's other axis) on every α, when its prompts are configured
    control_texts = control_task_texts(job, s, num_images) if by_es else []
    control_similarity = clip_similarity.load_prompt_similarity(job.shared["evaluation.control_task"]["clip"]) if control_texts else None

    def negated(alpha: float) -> None:
        sampler.unet.load_state_dict(negate(base, tau, alpha), strict=False)

    def drawn(prompt_set: str):
        """The sampler's images of `prompt_set` on the run's seeds, and the evaluator's scores of them."""
        prompts, labels = sets[prompt_set]
        x = generate(sampler, prompts, seeds, sampling["guidance_scale"], sampling["num_steps"], sampling["batch_size"])
        return x, scorer.score(x, torch.tensor(labels))

    def score(alpha: float) -> dict:
        negated(alpha)  # once per alpha: every prompt set is drawn with these weights
        out, probability = {}, {}
        for prompt_set, key in (("name", "target"), ("control", "control")) + ((("diverse", "diverse"),) if by_es else ()):
            prompts, labels = sets[prompt_set]
            x, scores = drawn(prompt_set)
            out[key] = float(scores.hit.float().mean())
            # the Erasure Score reads the name's and the embeddings' images only
            use_similarity = similarity is not None and prompt_set != "control"
            concept_score = similarity.similarity(x, torch.tensor(labels)) if use_similarity else scores.probability
            probability[prompt_set] = (concept_score, prompts)
        if control_texts:
            x = generate(sampler, control_texts, seeds, sampling["guidance_scale"], sampling["num_steps"], sampling["batch_size"])
            out["control_similarity"] = float(control_similarity.similarity(x, control_texts).mean())
        if by_es:
            name_score = float(probability["name"][0].mean())
            out["erasure_score"] = erasure_score(name_score, scores_by_token(*probability["diverse"]))
        log.info("task vector alpha %g: %s", alpha, ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
        return out

    # the control bound: absolute, or a fraction of the base model's own control accuracy on the same seeds (alpha 0)
    bound = dict(min_control_accuracy=s["min_control_accuracy"])
    if s.get("min_control_of_base") is not None:
        negated(0.0)
        base_control = float(drawn("control")[1].hit.float().mean())
        bound = dict(min_control_accuracy=s["min_control_of_base"] * base_control, min_control_of_base=s["min_control_of_base"],
                     base_control=base_control)
        log.info("task vector: the base model's control accuracy %.3f, bound %.3f", base_control, bound["min_control_accuracy"])
    min_control = bound["min_control_accuracy"]
    if by_es:
        rule = "erasure-score"
        criteria = dict(max_erasure_score=s["max_erasure_score"], erasure_score_by=es_block["score"],
                        min_control_similarity=s["min_control_similarity"], control_task_prompts=sorted(set(control_texts)))
        alpha, why, results = search_alpha_by_erasure_score(score, s["alphas"], s["max_erasure_score"], min_control,
                                                            s["min_control_similarity"])
    else:
        rule, criteria = s["alpha_rule"], dict(max_target_accuracy=s["max_target_accuracy"])
        alpha, why, results = search_alpha(score, s["alphas"], s["max_target_accuracy"], min_control, rule)
    log.info("task vector: chose alpha %g (%s) from %s", alpha, why, results)
    unet.load_state_dict(negate(base, tau, alpha), strict=False)
    return ErasureResult(sorted(tau), dict(alpha=alpha, reason=why, rule=rule, candidates=results, grid=[float(a) for a in s["alphas"]],
                                           **bound, **criteria))
