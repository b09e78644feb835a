"""Independent PyTorch reference for `seriatim bench made` training speed (not used at run time).

Same network: MADE 784-500-500-784 on 28x28 binary images, one mask set in natural order (hidden
degrees drawn uniformly in 1..783, M[o,i] = deg(o) >= deg(i), strict at the output), ReLU, no direct
path, Bernoulli loss, Adam, batch 100. The masks are buffers multiplied into the weights on every
forward pass, as in the usual PyTorch MADE. Prints training examples/s (the median of 30 timed steps
after 5 warm-up steps). Usage: python3 made_torch.py  (needs torch)
"""
import time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(1)

class MaskedLinear(nn.Linear):
    def __init__(self, inputs, outputs, mask):
        super().__init__(inputs, outputs)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)

D, H = 784, [500, 500]
degrees = [torch.arange(1, D + 1)] + [torch.randint(1, D, (h,)) for h in H]
layers = []
for a, b in zip(degrees[:-1], degrees[1:]):
    layers += [MaskedLinear(len(a), len(b), b[:, None] >= a[None, :]), nn.ReLU()]
layers.append(MaskedLinear(H[-1], D, degrees[0][:, None] > degrees[-1][None, :]))
model = nn.Sequential(*layers)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
data = (torch.rand(1000, D) < 0.2).float()

def step(i):
    x = data[(i * 100) % 1000:(i * 100) % 1000 + 100]
    opt.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(x), x, reduction="sum") / 100
    loss.backward()
    opt.step()

for i in range(5):
    step(i)
times = []
for i in range(30):
    t = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - t)
times.sort()
print(f"PyTorch {torch.__version__} MADE 784-500-500-784 training, batch 100: {100 / times[len(times) // 2]:.0f} examples/s")
