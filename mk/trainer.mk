# Trainer targets (included by the top-level Makefile, which defines PY, VENV and STAMP).
.PHONY: bench-trainer bench-trainer-trial test-trainer tiny-tables trainer-tiny trainer-image-lint warm-cache

TRAINER_CACHE ?= runs/cache

bench-trainer: $(STAMP) ## trainer throughput (samples/s, MFU) -> docs/benchmarks.md section trainer-throughput
	$(PY) bench/trainer_throughput.py

bench-trainer-trial: $(STAMP) ## the seed's trials vs HF Trainer / torchvision recipe (CPU: tiny) -> docs/benchmarks.md section trainer-trial
	$(PY) bench/trainer_throughput.py --trial $(if $(shell command -v nvidia-smi),,--device cpu --preset tiny --modes eager --sharing 1,2)

tiny-tables: $(STAMP) ## every seed-grid config of each task in the tiny preset -> bench/tables/tiny_*.csv (~5 min)
	$(PY) bench/tiny_grid_tables.py

test-trainer: $(STAMP) ## the trainer's tests only
	$(PY) -m pytest -q -p no:cacheprovider tests/trainer

trainer-tiny: $(STAMP) ## one tiny-preset SST-2 trial on this machine (a few seconds)
	$(PY) -m trainer train --task sst2 --learning-rate 3e-5 --batch-size 16 --num-epochs 3 --preset tiny \
		--output-dir runs/trainer-tiny --checkpoint-dir runs/trainer-tiny/checkpoint-$$$$

trainer-image-lint: $(STAMP) ## hadolint the trainer Dockerfile (the image itself is built where Docker exists)
	$(VENV)/bin/hadolint trainer_image/Dockerfile

warm-cache: $(STAMP) ## download models + datasets into $(TRAINER_CACHE) (needs the Hugging Face hub)
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 TRANSFORMERS_OFFLINE=0 \
		$(PY) -m trainer warm-cache --tasks sst2,mrpc,cifar10 --cache-dir $(TRAINER_CACHE)
