#!/usr/bin/env python3
"""The dams CNN student in PyTorch, for `dams bench student` (same architecture, same batch).

Usage: student_torch_bench.py N_SEGMENTS BATCH WIDTH N_MELS FRAMES THREADS
Prints one line: `segments_per_s <float>` (one training epoch on random features, after a
warm-up batch). Exits 3 when torch is not installed.
"""
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit(3)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x))))


class Cnn(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.b1, self.b2, self.b3 = Block(1, w, 2), Block(w, 2 * w, 1), Block(2 * w, 4 * w, 1)
        self.head = nn.Linear(8 * w, 3)

    def forward(self, x):
        h = self.b3(self.b2(self.b1(x))).flatten(2)
        return self.head(torch.cat([h.mean(2), h.amax(2)], 1))


def main():
    n, batch, width, n_mels, frames, threads = map(int, sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(n, 1, n_mels, frames)
    y = (torch.rand(n, 3) > 0.5).float()
    model = Cnn(width)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.ones(3))

    def step(i):
        opt.zero_grad()
        loss = loss_fn(model(x[i : i + batch]), y[i : i + batch])
        loss.backward()
        opt.step()

    step(0)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        step(i)
    print(f"segments_per_s {n / (time.perf_counter() - t0):.3f}")


if __name__ == "__main__":
    main()
