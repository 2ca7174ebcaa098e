"""Slow, obviously-correct references for egma.losses: one study (or one image-report pair) at a time,
written straight from DESIGN section 3, on unpadded per-study tensors. Used by tests/test_losses.py and
benchmarks/bench_losses.py; never by the library.

Inputs: P (b, n, d) patches; S list of (m_k, d) sentences; GS list of (m_k, n) gaze; has_gaze list of bool.
"""
import torch
import torch.nn.functional as F

EPS = 1e-6  # the documented min-max / row-normalisation guard of egma.losses
COUNTS = [3, 1, 5, 2, 1, 4, 2]               # ragged, with one-sentence reports
HAS_GAZE = [True, True, False, True, False, True, True]
SCALE = 1 / 0.07


def random_batch(counts=COUNTS, has_gaze=HAS_GAZE, n=9, d=8, seed=0, dtype=torch.float64):
    """A padded batch whose padding (features and gaze) and no-gaze studies' gaze are junk that must not count."""
    g = torch.Generator().manual_seed(seed)
    b, m = len(counts), max(counts)
    patches = F.normalize(torch.randn(b, n, d, generator=g, dtype=dtype), dim=-1)
    sentences = F.normalize(torch.randn(b, m, d, generator=g, dtype=dtype), dim=-1)
    mask = torch.arange(m)[None] < torch.tensor(counts)[:, None]
    gaze = torch.rand(b, m, n, generator=g, dtype=dtype) * (torch.rand(b, m, n, generator=g) < 0.4)
    gaze = gaze / gaze.amax(-1, keepdim=True).clamp_min(1e-12)  # max-normalised per sentence, as GS is
    image_emb = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=-1)
    text_emb = F.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=-1)
    labels = (torch.rand(b, 5, generator=g) < 0.4).to(dtype)
    if b > 2:
        labels[1] = labels[0]  # two reports stating the same findings ...
        labels[2] = 0          # ... and one stating none
    return dict(patches=patches, sentences=sentences, mask=mask, gaze=gaze, has_gaze=torch.tensor(has_gaze),
                image_emb=image_emb, text_emb=text_emb, labels=labels, scale=torch.tensor(SCALE, dtype=dtype))


def cross_entropy(logits_row: torch.Tensor, target: int) -> torch.Tensor:
    return torch.log(torch.exp(logits_row - logits_row.max()).sum()) + logits_row.max() - logits_row[target]


def clip(image, text, s):
    b = len(image)
    logits = [[s * image[k] @ text[l] for l in range(b)] for k in range(b)]
    rows = torch.stack([torch.stack(r) for r in logits])
    return 0.5 * (sum(cross_entropy(rows[k], k) for k in range(b)) / b
                  + sum(cross_entropy(rows[:, l], l) for l in range(b)) / b)


def semantic_matching(image, text, labels, s, temperature):
    """MedCLIP: soft cross-entropy of each image's row (and each text's column) against the softmax of the
    label cosines / temperature; a label vector of zeros is similar to itself only."""
    b = len(image)
    target = torch.zeros(b, b, dtype=image.dtype)
    for k in range(b):
        cosines = []
        for l in range(b):
            nk, nl = labels[k].norm(), labels[l].norm()
            cosines.append(torch.tensor(1.0, dtype=image.dtype) if k == l else
                           (labels[k] @ labels[l] / (nk * nl) if nk > 0 and nl > 0 else torch.tensor(0.0, dtype=image.dtype)))
        weights = torch.exp(torch.stack(cosines) / temperature)
        target[k] = weights / weights.sum()
    total = 0.0
    for k in range(b):
        image_row = torch.stack([s * image[k] @ text[l] for l in range(b)])
        text_row = torch.stack([s * text[k] @ image[l] for l in range(b)])
        total = total - 0.5 * (target[k] @ torch.log_softmax(image_row, 0) + target[k] @ torch.log_softmax(text_row, 0))
    return total / b


def filip_scores(P, S, s):
    b = len(P)
    z_image, z_text = torch.zeros(b, b, dtype=P.dtype), torch.zeros(b, b, dtype=P.dtype)
    for k in range(b):
        for l in range(b):
            x = s * P[k] @ S[l].T                      # n x m_l
            z_image[k, l] = x.max(dim=1).values.mean()  # each patch's best sentence
            z_text[k, l] = x.max(dim=0).values.mean()   # each sentence's best patch
    return z_image, z_text


def filip(P, S, s):
    z_image, z_text = filip_scores(P, S, s)
    b = len(P)
    image_term = sum(cross_entropy(z_image[k], k) for k in range(b)) / b
    text_term = sum(cross_entropy(z_text[:, l], l) for l in range(b)) / b  # a text's scores over all images
    return 0.5 * (image_term + text_term)


def mlce(x, y):
    """log(1 + sum_{y=0} e^x) + log(1 + sum_{y=1} e^-x) for one row."""
    return torch.log(1 + torch.exp(x[~y]).sum()) + torch.log(1 + torch.exp(-x[y]).sum())


def gaze_term(P_k, S_k, GS_k, s, a, threshold):
    x = s * P_k @ S_k.T                                   # n x m
    labels = GS_k > threshold                             # m x n
    sentence_rows = torch.stack([mlce(x[:, j], labels[j]) for j in range(len(S_k))]).mean()
    patch_rows = torch.stack([mlce(x[i], labels[:, i]) for i in range(len(P_k))]).mean()
    return a * sentence_rows + (1 - a) * patch_rows


def mlce_loss(P, S, GS, has_gaze, s, a=0.5, threshold=0.0):
    terms = [gaze_term(P[k], S[k], GS[k], s, a, threshold) for k in range(len(P)) if has_gaze[k]]
    return torch.stack(terms).mean() if terms else torch.zeros((), dtype=P.dtype)


def _minmax(row):
    return (row - row.min()) / (row.max() - row.min() + EPS)


def _rownorm(row):
    return (row + EPS) / (row + EPS).sum()


def egm_weights(P_k, S_k, GS_k, s, sparsity):
    x = s * P_k @ S_k.T
    omega = lambda w: w * (w >= sparsity)  # noqa: E731
    text_to_image = torch.stack([_rownorm(omega(_minmax(x[:, j])) + GS_k[j]) for j in range(len(S_k))])
    image_to_text = torch.stack([_rownorm(omega(_minmax(x[i])) + GS_k[:, i]) for i in range(len(P_k))])
    return text_to_image, image_to_text


def egm_study(P_k, S_k, GS_k, s, sparsity):
    text_to_image, image_to_text = egm_weights(P_k, S_k, GS_k, s, sparsity)
    mapped_sentences, mapped_patches = text_to_image @ P_k, image_to_text @ S_k
    image_logits = s * F.normalize(mapped_patches, dim=-1) @ P_k.T
    image_side = torch.stack([cross_entropy(image_logits[i], i) for i in range(len(P_k))]).mean()
    if len(S_k) == 1:  # no text-side negatives: image side alone
        return image_side
    text_logits = s * F.normalize(mapped_sentences, dim=-1) @ S_k.T
    text_side = torch.stack([cross_entropy(text_logits[j], j) for j in range(len(S_k))]).mean()
    return 0.5 * (text_side + image_side)


def egm_loss(P, S, GS, has_gaze, s, sparsity=2 / 7, include_without_gaze=False):
    values = []
    for k in range(len(P)):
        if has_gaze[k]:
            values.append(egm_study(P[k], S[k], GS[k], s, sparsity))
        elif include_without_gaze:
            values.append(egm_study(P[k], S[k], torch.zeros_like(GS[k]), s, sparsity))
    return torch.stack(values).mean() if values else torch.zeros((), dtype=P.dtype)


def per_study(batch):
    """The same batch unpadded, as the references take it."""
    counts = batch["mask"].sum(1).tolist()
    return ([batch["sentences"][k, :c] for k, c in enumerate(counts)],
            [batch["gaze"][k, :c] for k, c in enumerate(counts)])
