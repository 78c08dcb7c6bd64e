"""Steps that build the embedded default: VAE, text-to-image model, classifier evaluator."""
from __future__ import annotations

from ..atomic import write_json
from ..classifier import train_classifier
from ..embedded_model import train_text_to_image, train_vae
from ._shared import start


def run_vae(*, vae, steps, batch_size, lr, kl_weight, seed, checkpoint, threads=1, log=None):
    device = start(threads, log)
    train_vae(vae, steps=steps, batch_size=batch_size, lr=lr, kl_weight=kl_weight, seed=seed, device=device, checkpoint=checkpoint)


def run_text_to_image(*, vae, model, templates, steps, batch_size, lr_unet, lr_text, warmup, grad_clip, empty_caption_prob,
                      lr_schedule, seed, checkpoint, threads=1, log=None):
    device = start(threads, log)
    train_text_to_image(vae, model, templates=templates, steps=steps, batch_size=batch_size, lr_unet=lr_unet, lr_text=lr_text,
                        warmup=warmup, grad_clip=grad_clip, empty_caption_prob=empty_caption_prob, lr_schedule=lr_schedule, seed=seed,
                        device=device,
                        checkpoint=checkpoint)


def run_classifier(*, weights, report, steps, batch_size, lr, test_fraction, seed, threads=1, log=None):
    start(threads, log)
    result = train_classifier(weights, steps=steps, batch_size=batch_size, lr=lr, test_fraction=test_fraction, seed=seed)
    write_json(report, result)
