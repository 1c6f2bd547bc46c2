"""A plain PyTorch training loop that reports to hypersearch and stops cleanly when told.

By hand (every report is a ``@hypersearch ...`` line on stdout, and nothing stops it)::

    python examples/pytorch_loop.py --lr 0.05 --epochs 5

As the trials of a search: a scheduler's STOP reaches the loop through the decision file
(``hypersearch.client.should_stop()``), the loop ends after that epoch and the script exits 0
by itself; the trial is recorded PRUNED with its curve::

    hypersearch random -n 12 --param lr=1e-3:3e-1:log --metric val_loss \\
        --scheduler median --scheduler-opt n_startup_trials=3 \\
        -- python examples/pytorch_loop.py --lr :lr: --epochs 20

Needs ``pip install 'hypersearch[lightning]'`` (or just torch).
"""

from __future__ import annotations

import argparse

import torch

from hypersearch import client


def make_data(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=generator) * 2 - 1
    y = (
        x @ torch.tensor([[1.5], [-2.0], [0.5]])
        + 0.3
        + 0.05 * torch.randn(n, 1, generator=generator)
    )
    return x, y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    x, y = make_data()
    x_train, y_train, x_val, y_val = x[:96], y[:96], x[96:], y[96:]
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.MSELoss()

    client.listen()  # a STOP gives this script the grace period to end by itself
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in torch.randperm(len(x_train)).split(16):
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            train_loss = loss_fn(model(x_train), y_train).item()
            val_loss = loss_fn(model(x_val), y_val).item()
        client.report(step=epoch, loss=train_loss, val_loss=val_loss)
        if client.should_stop():
            print(f"stopped cleanly at epoch {epoch}", flush=True)
            break  # a real script would save a checkpoint here


if __name__ == "__main__":
    main()
