"""The PyTorch peer: the training loop and prediction a PyTorch user writes.

``torch.nn`` layers, autograd, ``torch.optim`` with its defaults, batches
gathered by indexing the whole training tensor with a ``randperm`` slice.
The network starts from given weights (a fastnn model's), so that the
accuracy after training can be checked against fastnn's.  Update rules:

* sgd — ``torch.optim.SGD``; Nielsen's L2 term (λ/n)·W is added to the
  weight gradients (not the biases) before the step;
* momentum — ``torch.optim.SGD(momentum=μ)``: b ← μ·b + g, θ ← θ − γ·b;
* adam — ``torch.optim.Adam``.
"""


class TorchMLP:
    """A ``torch.nn.Sequential`` MLP with its optimizer.

    Parameters
    ----------
    torch : module
    weights : list of (ndarray, ndarray)
        (W, b) pairs, W of shape (n_in, n_out).
    hidden : {"sigmoid", "relu"}
    output : {"sigmoid", "softmax"}
        Trained with the matching cross-entropy, mean over the batch.
    optimizer : {"sgd", "momentum", "adam"}
    lr, l2, momentum : float
    n_train : int
        Training-set size n of Nielsen's λ/n.
    """

    def __init__(self, torch, weights, hidden="relu", output="softmax", optimizer="adam",
                 lr=1e-3, l2=0.0, momentum=0.9, n_train=60000):
        self.torch = torch
        nn = torch.nn
        modules = []
        for i, (W, b) in enumerate(weights):
            linear = nn.Linear(*W.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W.T))  # torch stores (n_out, n_in)
                linear.bias.copy_(torch.from_numpy(b))
            modules.append(linear)
            if i < len(weights) - 1:
                modules.append(nn.Sigmoid() if hidden == "sigmoid" else nn.ReLU())
        self.net = nn.Sequential(*modules)
        self.linears = [m for m in modules if isinstance(m, nn.Linear)]
        self.output = output
        if output == "sigmoid":
            self.eye = torch.eye(weights[-1][0].shape[1])
            bce = nn.BCEWithLogitsLoss(reduction="sum")
            self.loss_fn = lambda logits, labels: bce(logits, self.eye[labels]) / len(labels)
        else:
            self.loss_fn = nn.CrossEntropyLoss()
        params = self.net.parameters()
        if optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=lr)
        elif optimizer == "momentum":
            self.opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
        else:
            self.opt = torch.optim.SGD(params, lr=lr)
        self.decay = l2 / n_train

    def train_epoch(self, X, labels, batch_size):
        """One shuffled epoch over the tensors X (float32) and labels (int64)."""
        torch = self.torch
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            self.opt.zero_grad()
            self.loss_fn(self.net(X[rows]), labels[rows]).backward()
            if self.decay:
                with torch.no_grad():  # L2 on the weights only, Nielsen's form
                    for linear in self.linears:
                        linear.weight.grad.add_(linear.weight, alpha=self.decay)
            self.opt.step()

    def predict_proba(self, X):
        """Class probabilities of a NumPy array, as a NumPy array (no autograd)."""
        torch = self.torch
        with torch.no_grad():
            logits = self.net(torch.from_numpy(X))
            out = torch.sigmoid(logits) if self.output == "sigmoid" else torch.softmax(logits, dim=1)
        return out.numpy()

    def accuracy(self, X, labels):
        return float((self.predict_proba(X).argmax(axis=1) == labels).mean())
