"""Independent PyTorch reference for `seriatim bench pixelcnn` training speed (not used at run time).

Same network: 28x28 binary images, 7x7 type-A masked conv (1 -> 64), 6 residual blocks
h <- h + conv3x3_B(relu(h)) of 64 channels, relu - 1x1 (64) - relu - 1x1 (1), Bernoulli loss,
Adam, batch 32. Prints training images/s (the median step of 30 after one warm-up step). Usage: python3 pixelcnn_torch.py  (needs torch)
"""
import time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

class MaskedConv(nn.Conv2d):
    def __init__(self, cin, cout, k, kind):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (kind == "B"):] = 0
        mask[:, :, k // 2 + 1:, :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

class PixelCNN(nn.Module):
    def __init__(self, f=64, blocks=6):
        super().__init__()
        self.first = MaskedConv(1, f, 7, "A")
        self.blocks = nn.ModuleList([MaskedConv(f, f, 3, "B") for _ in range(blocks)])
        self.head1 = nn.Conv2d(f, f, 1)
        self.head2 = nn.Conv2d(f, 1, 1)

    def forward(self, x):
        h = self.first(x)
        for b in self.blocks:
            h = h + b(F.relu(h))
        return self.head2(F.relu(self.head1(F.relu(h))))

model = PixelCNN()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = (torch.rand(32, 1, 28, 28) < 0.2).float()
def step():
    opt.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(x), x, reduction="sum") / 32
    loss.backward()
    opt.step()
step()
# The median of 30 timed steps, as `seriatim bench pixelcnn` reports: a neighbour's burst on a
# shared machine moves neither much.
times = []
for _ in range(30):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
times.sort()
print(f"PyTorch {torch.__version__} PixelCNN training, batch 32: {32 / times[len(times) // 2]:.1f} images/s")
