"""`egma.train`'s CLI with every dropout switched off, for runs whose losses are compared across process counts.

Dropout masks are drawn per process, so 2 processes x 2 studies cannot draw the masks 1 process x 4 draws;
with p = 0 the step-1 losses must agree. Run by tests/test_train.py under torchrun:
    python -m torch.distributed.run --standalone --nproc_per_node N tests/train_worker.py <egma.train arguments>
"""
import sys

import torch

import egma.train
from egma.model import build_model


def build_model_without_dropout(*args, **kwargs):
    model = build_model(*args, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        # attention dropout inside scaled_dot_product_attention (BERT) and stochastic depth (timm)
        # are attributes, not nn.Dropout modules
        for attribute in ("dropout_prob", "attention_dropout", "drop_prob"):
            if isinstance(getattr(module, attribute, None), float):
                setattr(module, attribute, 0.0)
    return model


if __name__ == "__main__":
    egma.train.build_model = build_model_without_dropout
    egma.train.main(sys.argv[1:])
