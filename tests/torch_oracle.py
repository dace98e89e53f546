"""PyTorch autograd in float64 as an independent oracle: the network is rebuilt from torch
operations (F.linear, F.batch_norm, torch.tanh, F.cross_entropy, ...) reading the same flat
parameter vector, and the gradient comes from torch.autograd. The objective is torch's: its
losses' own reductions where fastgrad's options are PyTorch's defaults, their per-element
values (``reduction="none"``) reduced over the outputs and weighted over the samples where
they are not, and the L2 penalty written out on the weight slices."""
import numpy as np
import torch
import torch.nn.functional as F

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
               "identity": lambda u: u}


def torch_logits(net, theta, X):
    a = torch.as_tensor(X, dtype=torch.float64)
    n_layers = len(net.table)
    for l, (n_in, n_out, off_W, off_b, off_gamma, off_beta, _) in enumerate(net.table.tolist()):
        W = theta[off_W:off_W + n_in * n_out].view(n_in, n_out)
        z = F.linear(a, W.T, theta[off_b:off_b + n_out])
        if l == n_layers - 1:
            return z
        if off_gamma >= 0:
            z = F.batch_norm(z, None, None, weight=theta[off_gamma:off_gamma + n_out],
                             bias=theta[off_beta:off_beta + n_out], training=True, eps=1e-5)
        a = ACTIVATIONS[net.activation](z)


# each loss's per-element values: (logits, targets) -> (N, n_out), or (N,) for cross-entropy
ELEMENT_LOSSES = {
    "cross_entropy": lambda z, t: F.cross_entropy(z, t, reduction="none"),
    "mse": lambda z, t: F.mse_loss(z, t, reduction="none"),
    "squared_error": lambda z, t: 0.5 * F.mse_loss(z, t, reduction="none"),
    "binary_cross_entropy": lambda z, t: F.binary_cross_entropy_with_logits(z, t,
                                                                            reduction="none"),
    # log_input: exp(z) - t z, without Stirling's term (full=False)
    "poisson": lambda z, t: F.poisson_nll_loss(z, t, log_input=True, full=False,
                                               reduction="none"),
}
# the same losses with torch's default reduction, the mean over every element
MEAN_LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss,
               "binary_cross_entropy": F.binary_cross_entropy_with_logits,
               "poisson": lambda z, t: F.poisson_nll_loss(z, t, log_input=True, full=False)}


def torch_loss(net, theta, X, y, sample_weight=None):
    logits = torch_logits(net, theta, X)
    name = net.loss_name
    if name == "cross_entropy":
        target = torch.as_tensor(y, dtype=torch.long)
    else:
        target = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(logits.shape))
    if sample_weight is None and net.output_reduction == "mean" and name in MEAN_LOSSES:
        loss = MEAN_LOSSES[name](logits, target)
        n = len(logits)
    else:
        rows = ELEMENT_LOSSES[name](logits, target)
        if rows.ndim == 2:
            rows = rows.mean(dim=1) if net.output_reduction == "mean" else rows.sum(dim=1)
        weight = (torch.ones(len(logits), dtype=torch.float64) if sample_weight is None
                  else torch.as_tensor(np.asarray(sample_weight, dtype=np.float64)))
        n = weight.sum()
        loss = (weight * rows).sum() / n
    if net.alpha:
        squares = sum((theta[off_W:off_W + n_in * n_out] ** 2).sum()
                      for n_in, n_out, off_W, *_ in net.table.tolist())
        loss = loss + net.alpha / (2 * n) * squares
    return loss


def torch_loss_and_gradient(net, X, y, sample_weight=None):
    theta = torch.tensor(np.asarray(net.params, dtype=np.float64), requires_grad=True)
    loss = torch_loss(net, theta, X, y, sample_weight)
    (grad,) = torch.autograd.grad(loss, theta)
    return loss.item(), grad.numpy()


def torch_naive_sweep(net, X, y, order, step, lr, greedy_steps=0, newton_taken=None,
                      sample_weight=None):
    """The naive sequential sweep: before each single-coordinate step, the loss and its whole
    gradient (and, for Newton, the coordinate's second derivative, by a second backward pass)
    from scratch at the current parameters; with ``greedy_steps``, that many steps each on the
    coordinate of largest |gradient| (order is then ignored). Returns (parameters after the
    sweep, steps that raised the loss, steps whose derivative's sign differs from the
    gradient's at the start). ``newton_taken``, a list, receives the coordinates whose Newton
    step was taken (second derivative above 1/lr) rather than the gradient step."""
    theta = np.asarray(net.params, dtype=np.float64).copy()
    raised = flipped = 0
    start_gradient = None
    coordinates = [None] * greedy_steps if greedy_steps else order
    for j in coordinates:
        t = torch.tensor(theta, requires_grad=True)
        loss = torch_loss(net, t, X, y, sample_weight)
        (grad,) = torch.autograd.grad(loss, t, create_graph=step == "newton")
        if start_gradient is None:
            start_gradient = grad.detach().numpy().copy()
        if j is None:
            j = int(torch.argmax(grad.detach().abs()))
        g = grad[j].item()
        if step == "gradient":
            theta[j] -= lr * g
        else:
            (second,) = torch.autograd.grad(grad[j], t)
            theta[j] -= g / max(second[j].item(), 1 / lr)
            if newton_taken is not None and second[j].item() > 1 / lr:
                newton_taken.append(j)
        # raised: by more than 4 units in the last place of J (fastgrad's RAISED_ULPS)
        raised += torch_loss(net, torch.tensor(theta), X, y, sample_weight).item() - loss.item() > \
            4 * np.finfo(np.float64).eps * abs(loss.item())
        flipped += g * start_gradient[j] < 0
    return theta, raised, flipped
