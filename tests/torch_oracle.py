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


def torch_naive_sweep(net, X, y, order, step, lr):
    """The naive sequential sweep: before each single-coordinate step, the loss and its whole
    gradient (and, for Newton, the coordinate's second derivative, by a second backward pass)
    from scratch at the current parameters. Returns the parameters after the sweep."""
    theta = np.asarray(net.params, dtype=np.float64).copy()
    for j in order:
        t = torch.tensor(theta, requires_grad=True)
        (grad,) = torch.autograd.grad(torch_loss(net, t, X, y), t, create_graph=step == "newton")
        g = grad[j].item()
        if step == "gradient":
            theta[j] -= lr * g
        else:
            (second,) = torch.autograd.grad(grad[j], t)
            theta[j] -= g / max(second[j].item(), 1 / lr)
    return theta
