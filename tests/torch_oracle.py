"""PyTorch autograd in float64 as an independent oracle: the network is rebuilt from torch
operations (F.linear, F.batch_norm, torch.tanh, F.cross_entropy, ...) reading the same flat
parameter vector, and the gradient comes from torch.autograd."""
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


def torch_loss(net, theta, X, y):
    logits = torch_logits(net, theta, X)
    if net.loss_name == "cross_entropy":
        return F.cross_entropy(logits, torch.as_tensor(y, dtype=torch.long))
    target = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(logits.shape))
    if net.loss_name == "mse":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def torch_loss_and_gradient(net, X, y):
    theta = torch.tensor(np.asarray(net.params, dtype=np.float64), requires_grad=True)
    loss = torch_loss(net, theta, X, y)
    (grad,) = torch.autograd.grad(loss, theta)
    return loss.item(), grad.numpy()


def torch_naive_sweep(net, X, y, order, step, lr, greedy_steps=0, newton_taken=None):
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
        loss = torch_loss(net, t, X, y)
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
        raised += torch_loss(net, torch.tensor(theta), X, y).item() - loss.item() > \
            4 * np.finfo(np.float64).eps * loss.item()
        flipped += g * start_gradient[j] < 0
    return theta, raised, flipped
