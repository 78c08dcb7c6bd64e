"""Ring-A-Bell (Tsai et al. 2024): a black-box prompt attack built from the text encoder alone.

1. A *concept vector*: the mean, over paired prompts with and without the concept (each template
   filled with the concept's name and with the empty anchor), of the difference of the text
   encoder's hidden states (77 x D).
2. Per prompt, a target: the hidden states of a prompt naming the concept plus eta times the vector.
3. A genetic algorithm over K hard-prompt tokens (truncation selection of the best half, refilled to
   the population size by one-point crossover of random parent pairs or copies of a parent, then
   one-token mutation) minimises the squared distance of the candidate's hidden states to the
   target. The population keeps its configured size in every generation. The found token strings are saved as text and generated on every audited model.

Follows chiayi-hsu/Ring-A-Bell (`InversePrompt.ipynb`) with two changes, both recorded in the
artefact: the concept's own word tokens are left out of the search vocabulary by default (the
attack is to find a prompt *without* the name; on the digits model the name is the nearest prompt
and every erasure method blocks it), and the best prompt of a generation is never mutated (the
reference can mutate it away). Fitness is computed in batches, not one prompt at a time.
"""
from __future__ import annotations

import torch

from ..atomic import write_json
from ..progress import Progress
from ..text import encode
from .job import AttackJob


def concept_vector(tokenizer, text_encoder, with_concept: list[str], without_concept: list[str]) -> torch.Tensor:
    """Mean difference of the text encoder's hidden states (77, D) over paired prompts."""
    with torch.no_grad():
        return (encode(tokenizer, text_encoder, with_concept) - encode(tokenizer, text_encoder, without_concept)).mean(0)


def search_vocabulary(tokenizer, exclude_words: list[str]) -> torch.Tensor:
    """Token ids the GA may use: every ordinary token, less the special ones and the tokens of
    `exclude_words` (the concept's name)."""
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_encoder.values())
    excluded = {i for word in exclude_words for i in tokenizer(word, add_special_tokens=False).input_ids}
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special and i not in excluded])


def full_ids(tokens: torch.Tensor, bos: int, eos: int, length: int) -> torch.Tensor:
    """(P, K) token ids -> (P, length) model inputs: start, the K tokens, end, end-padding (SD's pad is end)."""
    P, K = tokens.shape
    out = torch.full((P, length), eos, dtype=torch.long)
    out[:, 0] = bos
    out[:, 1:K + 1] = tokens
    return out


def fitness(text_encoder, tokens: torch.Tensor, target: torch.Tensor, bos: int, eos: int, chunk: int = 256) -> torch.Tensor:
    """Squared distance of each candidate's hidden states to the target (lower is better), (P,)."""
    ids = full_ids(tokens, bos, eos, target.shape[0]).to(text_encoder.device)
    with torch.no_grad():
        return torch.cat([((text_encoder(part)[0] - target) ** 2).sum((1, 2)) for part in ids.split(chunk)]).cpu()


def cached_fitness(text_encoder, tokens: torch.Tensor, target: torch.Tensor, bos: int, eos: int, known: dict[bytes, float]) -> torch.Tensor:
    """`fitness`, encoding only the candidates not already in `known` (token bytes -> fitness), which it extends."""
    keys = [row.numpy().tobytes() for row in tokens]
    new = list(dict.fromkeys(k for k in keys if k not in known))
    if new:
        rows = torch.stack([tokens[keys.index(k)] for k in new])
        known.update(zip(new, fitness(text_encoder, rows, target, bos, eos).tolist()))
    return torch.tensor([known[k] for k in keys])


def select(population: torch.Tensor, scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Truncation selection: the `keep` best, best first (stable order on ties)."""
    order = torch.sort(scores, stable=True).indices
    return population[order[: max(1, min(keep, len(population)))]]


def crossover(parents: torch.Tensor, size: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Every parent survives, and children fill the population back up to `size`: each is, with
    probability `rate`, one of the pair i[:c] + j[c:] / j[:c] + i[c:] of two random parents at a random
    cut c in [0, K) (the reference's one-point operator), else a copy of parent i (left to mutation).
    A fixed size keeps the search's cost and selection pressure the same in every generation; letting
    the children's number follow the coin flips makes the population drift from its configured size."""
    out = [parents]
    n, K = parents.shape
    total = n
    while total < size:
        i, j = (int(v) for v in torch.randint(0, n, (2,), generator=gen))
        if torch.rand((), generator=gen).item() < rate:
            cut = int(torch.randint(0, K, (), generator=gen))
            a, b = parents[i], parents[j]
            children = [torch.cat([a[:cut], b[cut:]]), torch.cat([b[:cut], a[cut:]])][: size - total]
        else:
            children = [parents[i].clone()]
        out.extend(c[None] for c in children)
        total += len(children)
    return torch.cat(out)


def mutate(population: torch.Tensor, rate: float, vocabulary: torch.Tensor, gen: torch.Generator, keep_first: bool = True) -> torch.Tensor:
    """With probability `rate`, one random position of a candidate takes a random vocabulary token.
    The first candidate (the best, after `select`) is left alone when `keep_first`."""
    population = population.clone()
    for i in range(1 if keep_first else 0, len(population)):
        if torch.rand((), generator=gen).item() < rate:
            pos = int(torch.randint(0, population.shape[1], (), generator=gen))
            population[i, pos] = vocabulary[int(torch.randint(0, len(vocabulary), (), generator=gen))]
    return population


def genetic_search(text_encoder, target: torch.Tensor, vocabulary: torch.Tensor, *, bos: int, eos: int, length: int,
                   population: int, generations: int, mutation_rate: float, crossover_rate: float, gen: torch.Generator,
                   progress: Progress | None = None) -> tuple[torch.Tensor, float]:
    """The best K-token prompt (ids) for `target` and its fitness. A candidate's fitness depends on its
    tokens alone, so each distinct candidate is scored once: the parents and the copies that no
    mutation touched (about half of every generation) are looked up, not re-encoded."""
    pop = vocabulary[torch.randint(0, len(vocabulary), (population, length), generator=gen)]
    known: dict[bytes, float] = {}
    for g in range(generations):
        scores = cached_fitness(text_encoder, pop, target, bos, eos, known)
        pop = select(pop, scores, keep=population // 2)
        if progress:
            progress.update(g, float(scores.min()))
        if g != generations - 1:
            pop = mutate(crossover(pop, population, crossover_rate, gen), mutation_rate, vocabulary, gen)
            assert len(pop) == population
    best = fitness(text_encoder, pop[:1], target, bos, eos)
    return pop[0].clone(), float(best[0])


def run(job: AttackJob) -> dict:
    s = job.settings
    tok, enc = job.model.tokenizer, job.model.text_encoder
    named = [t.format(job.concept_text) for t in job.templates]
    anchors = [" ".join(t.format("").split()) for t in job.templates]
    vector = concept_vector(tok, enc, named, anchors)
    vocabulary = search_vocabulary(tok, job.concept_text.split() if s["exclude_concept_words"] else [])
    gen = torch.Generator().manual_seed(job.seed)
    found = []
    progress = Progress(f"ring-a-bell ({job.concept_text})", s["num_prompts"] * s["generations"])
    for p in range(s["num_prompts"]):
        start_prompt = named[p % len(named)]
        with torch.no_grad():
            target = encode(tok, enc, [start_prompt])[0] + s["eta"] * vector
        ids, loss = genetic_search(enc, target, vocabulary, bos=tok.bos_token_id, eos=tok.eos_token_id, length=s["prompt_length"],
                                   population=s["population"], generations=s["generations"], mutation_rate=s["mutation_rate"],
                                   crossover_rate=s["crossover_rate"], gen=gen,
                                   progress=_Offset(progress, p * s["generations"]))
        text = tok.decode(ids.tolist())
        retokenised = tok(text, add_special_tokens=False).input_ids
        found.append(dict(prompt=text, token_ids=ids.tolist(), start_prompt=start_prompt, distance=loss,
                          retokenises_exactly=retokenised == ids.tolist()))
    write_json(job.artefact, dict(attack=job.attack, concept=job.concept_text, prompts=[f["prompt"] for f in found], found=found,
                                  settings=dict(s), vocabulary_size=len(vocabulary)))
    return dict(mean_distance=sum(f["distance"] for f in found) / len(found),
                retokenise_exactly=sum(f["retokenises_exactly"] for f in found))


class _Offset:
    """A Progress view that adds an offset: one ETA across all of a job's searches."""

    def __init__(self, progress: Progress, offset: int):
        self.progress, self.offset = progress, offset

    def update(self, step: int, loss: float) -> None:
        self.progress.update(self.offset + step, loss)
