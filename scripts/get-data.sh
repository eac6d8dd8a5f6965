#!/usr/bin/env bash
# Fashion-MNIST for `make reproduce`: Debian's dataset-fashion-mnist package puts
# the four idx.gz files in /usr/share/datasets/fashion-mnist/, where hrgraph
# looks for them.  Elsewhere, `hrgraph train ... --download` fetches them through
# torchvision into ~/.cache/hrgraph/data/fashion-mnist (or $HRGRAPH_DATA).
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "get-data: installing Fashion-MNIST (apt-get install dataset-fashion-mnist)" >&2
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null)) \
        && exit 0
fi
cat >&2 <<'MSG'
get-data: Fashion-MNIST is not installed and could not be installed here. Either
    sudo apt-get install dataset-fashion-mnist        # Debian/Ubuntu
or fetch it through torchvision (needs the internet):
    python -m hrgraph train specs/resnet18.yaml --recipe recipes/cpu-fashion-mnist.yaml \
        --download --epochs 1 --limit-train 100 -o /tmp/fetch-fashion-mnist
MSG
exit 1
