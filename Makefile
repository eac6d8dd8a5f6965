# `make demo` and `make test` each do all the set-up first (scripts/setup.sh).
PYTHON ?= python3

.PHONY: setup demo test test-fast fuzz specs gallery bench bench-train data reproduce results reproduce-ablation results-ablation archive analyses analyses-ablation

setup:
	@bash scripts/setup.sh

demo: setup
	$(PYTHON) -m hrgraph compile specs/hiresnet18.yaml

test: setup
	$(PYTHON) -m pytest -q

test-fast: setup
	$(PYTHON) -m pytest -q -m "not slow"

# New random examples for the loader's fuzz tests (the suite replays a fixed set); under a minute.
fuzz: setup
	HYPOTHESIS_PROFILE=explore $(PYTHON) -m pytest -q tests/test_fuzz.py

# Regenerate the derived specs (Adjusted baselines, Table 2 ablations) and
# docs/zoo.md; tests/test_zoo.py replays these lines and fails if a committed
# file differs from what they produce.
specs:
	hrgraph match specs/plain18.yaml --to specs/hiplain18.yaml -o specs/plain18-adjusted.yaml
	hrgraph match specs/resnet18.yaml --to specs/hiresnet18.yaml -o specs/resnet18-adjusted.yaml
	hrgraph match specs/resnext18.yaml --to specs/hiresnext18.yaml -o specs/resnext18-adjusted.yaml
	hrgraph ablate specs/hiresnet18.yaml --variant in -o specs/hiresnet18-in.yaml
	hrgraph ablate specs/hiresnet18.yaml --variant out -o specs/hiresnet18-out.yaml
	hrgraph ablate specs/hiresnet18.yaml --variant out-all -o specs/hiresnet18-out-all.yaml
	hrgraph ablate specs/hiresnet18.yaml --sweep single -o specs
	hrgraph zoo specs --out docs/zoo.md

# Draw every spec in specs/ to docs/gallery/<name>.svg and write docs/gallery.md;
# tests/test_render.py fails if docs/gallery.md no longer matches specs/.
gallery:
	$(PYTHON) -m hrgraph gallery specs -o docs/gallery

# Compiled models vs hand-written ones, compile time, CLI latency (about 3 min
# on 2 idle cores); writes docs/benchmarks.md and benchmarks/results.json.
bench: setup
	$(PYTHON) benchmarks/run.py

# What `hrgraph train` adds to a bare training loop (about 3 min on 2 idle cores).
bench-train: setup
	$(PYTHON) benchmarks/train_overhead.py

# The paper's Table 1 at CPU scale on real data (docs/results.md): Fashion-MNIST,
# Plain and ResNet families x Original/Adjusted/HiResNet at width 0.25, 8 seeds, one CPU
# thread per run (the grid's threads key). About 4.5 hours on 2 idle cores as one process;
# run two shards side by side to halve it (`make reproduce SHARDS=2`); rerun to resume.
# `make archive` copies the finished runs' records into docs/results/runs/, and
# `make results RUNS=docs/results/runs` rebuilds the reports from those records.
RUNS ?= runs
data:
	@bash scripts/get-data.sh

SHARDS ?= 1
reproduce: setup data
	pids=""; for i in $$(seq 1 $(SHARDS)); do \
		$(PYTHON) -m hrgraph experiment experiments/fashion-mnist-cpu.yaml --runs-dir $(RUNS)/fashion-mnist-cpu \
			--shard $$i/$(SHARDS) --device cpu & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || exit 1; done
	$(MAKE) results analyses

archive:
	$(PYTHON) scripts/archive_runs.py $(RUNS)/fashion-mnist-cpu docs/results/runs/fashion-mnist-cpu
	$(PYTHON) scripts/archive_runs.py $(RUNS)/fashion-mnist-ablation docs/results/runs/fashion-mnist-ablation

results:
	mkdir -p docs/results
	$(PYTHON) -m hrgraph report $(RUNS)/fashion-mnist-cpu -o docs/results/fashion-mnist-cpu.md \
		--csv docs/results/fashion-mnist-cpu.csv --figure docs/results/fashion-mnist-cpu-curves.png --target-acc 0.85 \
		--against docs/results/earlier/fashion-mnist-cpu-2026-11.csv

# The analyses need the runs' checkpoints (the archived records have none).
analyses:
	for seed in 0 1 2; do \
		$(PYTHON) -m hrgraph analyze $(RUNS)/fashion-mnist-cpu/hiresnet18__fashion-mnist__s$$seed --device cpu \
			-o docs/results/hiresnet18-fashion-mnist-s$$seed || exit 1; \
		$(PYTHON) -m hrgraph analyze $(RUNS)/fashion-mnist-cpu/hiresnet18__fashion-mnist__s$$seed --device cpu \
			--block-output pre-relu -o docs/results/hiresnet18-fashion-mnist-s$$seed-pre-relu || exit 1; \
	done

# The paper's Table 2 at CPU scale (docs/results.md): ResNet-18 and its Adjusted version,
# HiResNet-18, -In, -Out (the paper's), -Out-all and the six single-edge variants, 8 seeds
# each, at width 0.25 on Fashion-MNIST, one thread per run (96 runs; about 4.5 hours on 2
# idle cores with SHARDS=2, about 3.3 hours when Table 1's 24 shared runs are reused;
# rerun to resume), then its reports and the analyses of In, Out and Out-all, seeds
# 3-5 (contributions beside their values at initialisation, edge cut) into docs/results/
# (HiResNet-18's own are `make analyses`; seeds 3-5 because the committed analyses were made
# from those runs' checkpoints, any three seeds would do).
# ResNet-18, its Adjusted version and HiResNet-18 (seeds 0-7) are the same runs as Table 1's:
# --reuse-from copies them from $(RUNS)/fashion-mnist-cpu where they finished there on the same
# kind of machine with the same threads and versions (each gets reused.json), else trains them.
REUSE = $(if $(wildcard $(RUNS)/fashion-mnist-cpu),--reuse-from $(RUNS)/fashion-mnist-cpu,)
reproduce-ablation: setup data
	pids=""; for i in $$(seq 1 $(SHARDS)); do \
		$(PYTHON) -m hrgraph experiment experiments/fashion-mnist-ablation.yaml --runs-dir $(RUNS)/fashion-mnist-ablation \
			--shard $$i/$(SHARDS) --device cpu $(REUSE) & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || exit 1; done
	$(MAKE) results-ablation analyses-ablation

results-ablation:
	mkdir -p docs/results
	$(PYTHON) -m hrgraph report $(RUNS)/fashion-mnist-ablation -o docs/results/fashion-mnist-ablation.md \
		--csv docs/results/fashion-mnist-ablation.csv --figure docs/results/fashion-mnist-ablation-curves.png --target-acc 0.85 \
		--against docs/results/earlier/fashion-mnist-ablation-2026-11.csv
	$(PYTHON) -m hrgraph report $(RUNS)/fashion-mnist-ablation --baseline hiresnet18 --target-acc 0.85 \
		-o docs/results/fashion-mnist-ablation-vs-hiresnet18.md --csv docs/results/fashion-mnist-ablation-vs-hiresnet18.csv

analyses-ablation:
	for variant in in out out-all; do for seed in 3 4 5; do \
		$(PYTHON) -m hrgraph analyze $(RUNS)/fashion-mnist-ablation/hiresnet18-$${variant}__fashion-mnist__s$$seed --device cpu \
			-o docs/results/ablation-hiresnet18-$$variant-s$$seed || exit 1; \
	done; done
