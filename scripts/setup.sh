#!/usr/bin/env bash
# One-time set-up, safe to rerun: torch + torchvision, hrgraph itself (editable,
# with the test extras), and Graphviz's `dot` binary where we can install it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# torch and torchvision must come as a matching pair; install the pinned pair
# only where no working pair is present, so an existing (e.g. GPU) install is kept.
if ! "$PYTHON" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "setup: installing torch==2.14.1 torchvision==0.29.1" >&2
    "$PYTHON" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi

if ! "$PYTHON" -c "import hrgraph, pytest, hypothesis, graphviz, rich" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .setup-stamp ]; then
    echo "setup: installing hrgraph (editable) with test extras" >&2
    "$PYTHON" -m pip install --quiet -e ".[test]"
    touch .setup-stamp
fi

if ! command -v dot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing Graphviz (apt-get install graphviz)" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
            || echo "setup: apt-get could not install graphviz" >&2
    fi
fi
if ! command -v dot >/dev/null 2>&1; then
    cat >&2 <<'MSG'
setup: WARNING: Graphviz's `dot` binary is not installed. Everything works except
rendering diagrams to SVG/PNG/PDF (DOT output still works). Install it with one of:
    sudo apt-get install graphviz      # Debian/Ubuntu
    brew install graphviz              # macOS
    conda install -c conda-forge graphviz
MSG
fi
