"""Study: do the warnings bnlint gives a small BERT at transformers' default init (BNL301 on
the pooler, BNL902 on the first layer) mean it will not train?

Run ``python -m bench.studies.transformers_init`` (needs ``bnlint[hf]``; a few minutes on a
2-core CPU; nothing is downloaded). Builds the README's ``tiny_bert`` config (vocabulary 1000,
hidden 64, 2 layers) and prints each layer-0 weight's gradient norm at initialisation next to
the pooler's and the classifier's. Then trains it on a synthetic task it can learn (the label is
the first token's id mod 3; tokens drawn from the vocabulary without the padding id 0; batch 64;
seeds 0, 1 and 2) three ways: the default init (initializer_range 0.02) with the probe's
optimizer (SGD, lr 0.01, momentum 0.9); the default init with Adam (lr 1e-3); and with SGD at
initializer_range 0.069, BERT-base's 0.02 scaled to this width (0.02 * sqrt(768 / 64)), at
which neither warning fires.
"""

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, BertConfig

STEPS, EVERY, BATCH, TOKENS, VOCAB = 1000, 50, 64, 16, 1000
SEEDS, LEARNED = (0, 1, 2), 0.1  # "learned": the training loss below 0.1 (chance is ln 3 = 1.1)
WIDTH_SCALED_INIT = 0.02 * (768 / 64) ** 0.5


def tiny_bert(initializer_range=0.02):
    return AutoModelForSequenceClassification.from_config(BertConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, num_labels=3, initializer_range=initializer_range))


def batch(gen):
    ids = torch.randint(1, VOCAB, (BATCH, TOKENS), generator=gen)
    return ids, ids[:, 0] % 3


def loss_of(model, ids, labels):
    return F.cross_entropy(model(ids, torch.ones_like(ids)).logits, labels)


def gradients():
    torch.manual_seed(0)
    model = tiny_bert().train()
    loss_of(model, *batch(torch.Generator().manual_seed(0))).backward()
    print("| weight | gradient norm at init |\n| --- | --- |")
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embeddings" not in name and any(
                k in name for k in ("layer.0.", "pooler", "classifier")):
            print(f"| {name} | {p.grad.norm():.3g} |")


def train(initializer_range, make_optimizer, seed):
    """The training loss every EVERY steps."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = tiny_bert(initializer_range).train()
    optimizer = make_optimizer(model.parameters())
    losses = []
    for step in range(STEPS + 1):
        loss = loss_of(model, *batch(gen))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVERY == 0:
            losses.append(loss.item())
    return losses


def main():
    gradients()
    runs = {
        "init 0.02, SGD lr 0.01 momentum 0.9": (0.02, lambda p: torch.optim.SGD(
            p, lr=0.01, momentum=0.9)),
        "init 0.02, Adam lr 1e-3": (0.02, lambda p: torch.optim.Adam(p, lr=1e-3)),
        f"init {WIDTH_SCALED_INIT:.3f}, SGD lr 0.01 momentum 0.9": (
            WIDTH_SCALED_INIT, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    }
    print(f"\n| run | seed | first step with loss < {LEARNED} | loss at step {STEPS} |")
    print("| --- | --- | --- | --- |")
    for name, (init, make) in runs.items():
        for seed in SEEDS:
            losses = train(init, make, seed)
            first = next((i * EVERY for i, x in enumerate(losses) if x < LEARNED), None)
            print(f"| {name} | {seed} | {first if first is not None else 'never'} | "
                  f"{losses[-1]:.3f} |")


if __name__ == "__main__":
    main()
